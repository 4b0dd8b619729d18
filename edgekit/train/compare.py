"""`--compare PREVIOUS_OUT`: is the new model better than the one it would replace?

The previous and the new most-accurate picks (their float TorchScript models, `best_float.pt`)
are evaluated on the union of both test sets (an image is one item by its content, whatever its
path) and on each one alone, with each model's own preprocessing from its train.json. The new
run keeps the previous run's test images out of its training (`test_digests`), so neither model
is scored on an image it learnt. Only classes both models know are scored (a class that one of
them lacks is listed). The new model is promoted only if its accuracy on the union is higher
than the previous model's and no class's recall on the union drops by more than
`max_class_drop` points. The comparison is written to compare.json and the model card.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BadInput
from .images import UnreadableImage, read_rgb


@dataclass
class Comparison:
    """compare.json: the promotion decision, accuracy per test set and recall per shared class (both
    models)."""
    previous: str
    promoted: bool
    reason: str
    sets: dict[str, dict[str, Any]]                 # union / previous_test / new_test -> accuracies, samples
    per_class: dict[str, dict[str, float]]          # label -> previous, new, change (recall on the union, points)
    max_class_drop: float
    shared_labels: list[str]
    only_previous: list[str] = field(default_factory=list)
    only_new: list[str] = field(default_factory=list)
    skipped_files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_previous(folder: Path) -> dict[str, Any]:
    """The previous run's train.json; raises BadInput (exit 2) if FOLDER is not an output of train."""
    manifest = Path(folder) / "train.json"
    if not manifest.is_file():
        raise BadInput(f"--compare {folder} holds no train.json", "pass an output folder (-o) of an earlier "
                                                                       "`edgekit train` run that finished")
    try:
        data = json.loads(manifest.read_text())
        model = Path(folder) / data["picks"]["best"]["float_model"]
    except (ValueError, KeyError, TypeError):
        raise BadInput(f"{manifest} is not a train manifest edgekit can read", "rerun `edgekit train`") from None
    if not model.is_file():
        raise BadInput(f"--compare {folder}: its float model {model.name} is missing",
                       "pass a complete output folder of `edgekit train`")
    return data


def test_digests(previous: dict[str, Any]) -> set[str]:
    """sha256 of each test image of the previous run that can still be read: the new run keeps
    them out of training, so the comparison on them is not scored on images the new model saw."""
    import hashlib

    digests = set()
    for row in previous.get("test_set", []):
        try:
            digests.add(hashlib.sha256(Path(row["path"]).read_bytes()).hexdigest())
        except (OSError, KeyError, TypeError):
            continue  # a moved file: the comparison lists it as skipped
    return digests


def decide(previous_union: float, new_union: float, per_class: dict[str, dict[str, float]],
           max_class_drop: float) -> tuple[bool, str]:
    """The promotion rule: better overall, and no class recall drop beyond MAX_CLASS_DROP points."""
    drops = {label: -row["change"] for label, row in per_class.items() if -row["change"] > max_class_drop + 1e-9}
    if new_union <= previous_union:
        return False, (f"not better overall: {new_union:.1%} vs {previous_union:.1%} on the union of both test sets")
    if drops:
        worst = max(drops, key=drops.get)
        return False, (f"class '{worst}' recall drops {drops[worst]:.1f} points (> --max-class-drop "
                       f"{max_class_drop:g})" + (f", and {len(drops) - 1} more class(es)" if len(drops) > 1 else ""))
    return True, f"better overall ({new_union:.1%} vs {previous_union:.1%}) and no class drops beyond {max_class_drop:g} points"


def compare(previous_dir: Path, previous: dict[str, Any], new: dict[str, Any], new_dir: Path,
            max_class_drop: float) -> Comparison:
    """Evaluate the previous and the new best float models (TorchScript) on both test sets, their union
    and each class; BadInput when they share fewer than 2 classes or no test image can be read."""
    import torch

    from .features import run_model

    old_labels, new_labels = previous["labels"], new["labels"]
    shared = [label for label in new_labels if label in old_labels]
    if len(shared) < 2:
        raise BadInput(f"--compare {previous_dir}: the two models share fewer than 2 classes",
                       "compare models trained on the same classes")
    import hashlib

    # one image is one item, however many paths it has: a previous test image that the new data
    # holds again (kept in the new test split) belongs to both sets and counts once in the union
    sets = {"previous_test": previous["test_set"], "new_test": new["test_set"]}
    items: dict[str, tuple[str, set[str]]] = {}    # sha256 -> (label, sets it is in)
    images, skipped, keys = {}, [], []
    for name, rows in sets.items():
        for row in rows:
            if row["label"] not in shared:
                continue
            path = Path(row["path"])
            try:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                if digest not in items:
                    images[digest] = read_rgb(path)[0]
                    keys.append(digest)
            except (UnreadableImage, OSError):
                skipped.append(str(path))
                continue
            items.setdefault(digest, (row["label"], set()))[1].add(name)
    if not keys:
        raise BadInput("--compare: none of the test images of either run can be read any more",
                       "keep the test images where they were, or compare on a run that still has them")
    predictions = {}
    for who, data, folder in (("previous", previous, previous_dir), ("new", new, new_dir)):
        model = torch.jit.load(str(Path(folder) / data["picks"]["best"]["float_model"]), map_location="cpu").eval()
        pre = data["preprocess"]
        probabilities = run_model(model, [images[k] for k in keys], pre["input_size"][0], pre["mean"], pre["std"])
        predictions[who] = [data["labels"][int(i)] for i in probabilities.argmax(axis=1)]
    truth = [items[k][0] for k in keys]
    origin = [items[k][1] for k in keys]

    def accuracy(who: str, mask) -> float | None:
        chosen = [p == t for p, t, m in zip(predictions[who], truth, mask) if m]
        return round(float(np.mean(chosen)), 4) if chosen else None

    masks = {"union": [True] * len(keys), "previous_test": ["previous_test" in o for o in origin],
             "new_test": ["new_test" in o for o in origin]}
    result_sets = {name: {"samples": int(sum(mask)), "previous": accuracy("previous", mask),
                          "new": accuracy("new", mask)} for name, mask in masks.items()}
    per_class = {}
    for label in shared:
        mask = [t == label for t in truth]
        if any(mask):
            old, fresh = accuracy("previous", mask), accuracy("new", mask)
            per_class[label] = {"previous": old, "new": fresh, "change": round(100 * (fresh - old), 2),
                                "samples": int(sum(mask))}
    promoted, reason = decide(result_sets["union"]["previous"], result_sets["union"]["new"], per_class, max_class_drop)
    return Comparison(str(previous_dir), promoted, reason, result_sets, per_class, max_class_drop, shared,
                      [label for label in old_labels if label not in new_labels],
                      [label for label in new_labels if label not in old_labels], skipped)
