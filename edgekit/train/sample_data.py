"""Real labelled photos that ship inside a registry package, as class folders.

No PyPI, Debian or npm package we could find ships natural RGB photos with class labels (the
dataset packages download at run time). The best real labelled set that does ship is
scikit-image's `lfw_subset`: 100 faces (Labeled Faces in the Wild) and 100 non-face crops of
natural images, 25x25 greyscale. `write_faces` writes them as RGB JPEGs in `face/` and
`non_face/` folders, upscaled 4x (bicubic) so that they are not all flagged as tiny.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

SOURCE = "scikit-image skimage.data.lfw_subset(): 100 faces (LFW) + 100 non-faces, 25x25 greyscale"


def faces() -> tuple[np.ndarray, np.ndarray]:
    """uint8 [200, 25, 25] greyscale images and int [200] labels (1 = face, first 100)."""
    from skimage import data

    images = data.lfw_subset()
    pixels = np.clip(np.round(images * 255), 0, 255).astype(np.uint8)
    return pixels, np.array([1] * 100 + [0] * 100)


def write_faces(folder: Path, per_class: int | None = None, upscale: int = 4) -> dict[str, list[Path]]:
    """Write face/ and non_face/ folders of RGB JPEGs; returns the files per class."""
    from PIL import Image

    pixels, labels = faces()
    written: dict[str, list[Path]] = {"face": [], "non_face": []}
    for index, (image, label) in enumerate(zip(pixels, labels)):
        name = "face" if label == 1 else "non_face"
        if per_class is not None and len(written[name]) >= per_class:
            continue
        target = Path(folder) / name / f"{name}_{index:03d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        picture = Image.fromarray(image).convert("RGB")
        picture = picture.resize((image.shape[1] * upscale, image.shape[0] * upscale), Image.BICUBIC)
        picture.save(target, quality=95)
        written[name].append(target)
    return written


def demo_request(out_dir: Path):
    """`edgekit demo --train`: the whole path on the bundled faces in a few minutes (a 90 s
    budget, two backbones, two sizes, int8 OpenVINO and TFLite; the search times OpenVINO, whose
    conversion is the quickest to measure). The 40 test images make one image 2.5 points, so the
    accuracy-drop gate is 5 points (two images) instead of the default 1, which no single flipped
    image could pass. The demo's own folders under OUT_DIR are replaced on each run."""
    import shutil

    from .pipeline import TrainRequest
    from .search import Space

    photos, out = Path(out_dir) / "photos", Path(out_dir) / "train"
    for folder in (photos, out):
        if folder.exists():
            shutil.rmtree(folder)
    write_faces(photos)
    return TrainRequest(data=photos, out_dir=out, targets=["openvino", "tflite"], precisions=["int8"],
                        budget_s=90.0, trial_timeout_s=30.0, max_accuracy_drop=5.0,
                        space=Space(backbones=["efficientnet_lite0", "efficientnet_lite1"], sizes=[96, 128],
                                    finetune_depths=[1]))
