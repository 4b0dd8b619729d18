"""Labelled images in: class folders (`photos/<label>/*.jpg`) or a CSV of `path,label[,split]`
(also AutoML Vision's import order `SPLIT,path,label`), plus an optional separate test folder.

Every file under a class folder is offered to Pillow, which decides by content whether it is an
image (a JPEG named .png, or a PNG without a suffix, both load). Unreadable files are kept as
samples with their reason, so the data report can list them; they never reach training.

Splits: `test` comes from `--test DIR`, from the CSV's split column, or is held out per class
(stratified) before anything else sees the data; `val` (what the search scores) is held out the
same way from what remains. Seeds are fixed, so a rerun on the same files gives the same split.
"""
from __future__ import annotations

import csv
import hashlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import BadInput
from .images import ImageInfo, UnreadableImage, read_rgb

THUMBNAIL_SIDE = 288    # pixels kept in memory per image (longer side): > every searched input size
SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
               "test": "test", "testing": "test", "unassigned": "", "": ""}
SKIPPED_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini"}


@dataclass
class Sample:
    """One file offered as a labelled image, with what reading it found and which split it is in."""
    path: str
    label: str
    split: str = ""                  # train | val | test ("" until assigned)
    info: ImageInfo | None = None    # format, mode and size as stored in the file
    error: str | None = None         # why the file cannot be used
    sha256: str | None = None        # of the file's bytes: exact duplicates
    excluded: str | None = None      # why a readable image is kept out of training (e.g. leaks into test)

    @property
    def usable(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["info"] = asdict(self.info) if self.info else None
        return data


@dataclass
class Dataset:
    """The labelled samples, their class names (index = class id) and an RGB uint8 thumbnail of each
    readable image."""
    samples: list[Sample]
    labels: list[str]                # sorted class names: index = class id
    source: str                      # what was read (folder or CSV path)
    test_source: str                 # "held out (20 % per class)", "--test DIR" or "CSV split column"
    thumbnails: list[np.ndarray | None] = field(default_factory=list, repr=False)  # uint8 [h, w, 3] per sample

    def indices(self, split: str, include_excluded: bool = False) -> list[int]:
        """Positions of the usable samples in SPLIT (train | val | test), leaving out excluded ones
        unless INCLUDE_EXCLUDED."""
        return [i for i, s in enumerate(self.samples)
                if s.usable and s.split == split and (include_excluded or not s.excluded)]

    def targets(self, indices: list[int]) -> np.ndarray:
        """int64 [N] class ids of the samples at INDICES."""
        position = {label: i for i, label in enumerate(self.labels)}
        return np.array([position[self.samples[i].label] for i in indices], dtype=np.int64)

    def fingerprint(self) -> str:
        """Changes when any file, label or split changes: the key of every cache built on it."""
        digest = hashlib.sha256()
        for sample in self.samples:
            digest.update(f"{sample.path}|{sample.label}|{sample.split}|{sample.sha256}|{sample.excluded}\n".encode())
        return digest.hexdigest()[:16]

    def summary(self) -> dict[str, Any]:
        """JSON-ready counts: files, usable images, and train / val / test images per class (excluded
        ones not counted)."""
        counts = {label: Counter(s.split for s in self.samples if s.label == label and s.usable and not s.excluded)
                  for label in self.labels}
        return {"source": self.source, "test_source": self.test_source, "classes": len(self.labels),
                "labels": self.labels, "files": len(self.samples),
                "usable": sum(s.usable for s in self.samples),
                "per_class": {label: {k: counts[label].get(k, 0) for k in ("train", "val", "test")}
                              for label in self.labels}}


def load(source: Path, test_dir: Path | None = None, test_fraction: float = 0.2, val_fraction: float = 0.2,
         seed: int = 0, progress: Callable[[int, int], None] | None = None,
         keep_in_test: set[str] | None = None) -> Dataset:
    """Read SOURCE (class folders or a CSV) and TEST_DIR, decode every image once, and split.

    KEEP_IN_TEST: sha256 digests of files that must never train (the test images of the run that
    `--compare` measures against): a held-out split puts them in the test split first; one that a
    CSV or --test layout puts in train or val is excluded from training.

    Raises BadInput (exit 2) for a missing source, a bad CSV, fewer than 2 classes or a class
    with no usable image."""
    source = Path(source)
    if not source.exists():
        raise BadInput(f"training data {source} does not exist", "pass a folder of class folders or a CSV file")
    for name, fraction in (("--test-fraction", test_fraction), ("--val-fraction", val_fraction)):
        if not 0 < fraction < 1:
            raise BadInput(f"{name} must be between 0 and 1, got {fraction}", f"e.g. {name} 0.2")
    if source.is_dir():
        samples = _from_folders(source, "")
        origin = f"class folders in {source}"
    else:
        samples = _from_csv(source)
        origin = f"CSV {source}"
    if test_dir is not None:
        if not Path(test_dir).is_dir():
            raise BadInput(f"--test {test_dir} is not a folder", "pass a folder of class folders")
        if any(s.split == "test" for s in samples):
            raise BadInput("both --test and a CSV split column name test images", "use one of the two")
        test_samples = _from_folders(Path(test_dir), "test")
        samples += test_samples
    if not samples:
        raise BadInput(f"{source} holds no files", "put images in one folder per class: photos/<label>/*.jpg")
    thumbnails = _decode(samples, progress)
    labels = sorted({s.label for s in samples if s.split != "test"} | {s.label for s in samples})
    _refuse_fatal(samples, labels, source)
    test_source = (f"--test {test_dir}" if test_dir is not None
                   else "CSV split column" if any(s.split == "test" for s in samples)
                   else f"held out per class ({test_fraction:.0%}, seed {seed})")
    pinned = {i for i, s in enumerate(samples) if keep_in_test and s.usable and s.sha256 in keep_in_test}
    _assign_splits(samples, labels, test_fraction, val_fraction, seed, pinned)
    kept = 0
    for index in pinned:
        if samples[index].split == "test":
            kept += 1
        else:
            samples[index].excluded = "a test image of the --compare run (it must not train the new model)"
    if kept:
        test_source += f"; {kept} test image(s) of the --compare run kept in it"
    return Dataset(samples, labels, origin, test_source, thumbnails)


def _from_folders(root: Path, split: str) -> list[Sample]:
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    loose = [p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")]
    if not folders:
        hint = f" ({len(loose)} loose files found)" if loose else ""
        raise BadInput(f"{root} has no class folders{hint}",
                       "put images in one folder per class: photos/<label>/*.jpg, or pass a CSV of path,label")
    samples = []
    for folder in folders:
        files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")
                       and p.name not in SKIPPED_NAMES)
        if not files:  # an empty class folder still names a class: the fatal check reports it
            samples.append(Sample(path=str(folder), label=folder.name, split=split, error="empty class folder"))
        samples += [Sample(path=str(f), label=folder.name, split=split) for f in files]
    return samples


def _from_csv(path: Path) -> list[Sample]:
    """`path,label[,split]` rows, or AutoML Vision's `SPLIT,path,label`; an optional header row."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise BadInput(f"{path} is not a UTF-8 text CSV", "save it as UTF-8 CSV with rows path,label[,split]") from None
    rows = [(n, [c.strip() for c in row]) for n, row in enumerate(csv.reader(text.splitlines()), 1)
            if row and any(c.strip() for c in row)]
    if rows and [c.lower() for c in rows[0][1][:2]] in (["path", "label"], ["split", "path"], ["set", "path"]):
        header = [c.lower() for c in rows[0][1]]
        rows = rows[1:]
    else:
        header = None
    if not rows:
        raise BadInput(f"CSV {path} has no rows", "write one row per image: path,label[,split]")
    samples = []
    for line, cells in rows:
        automl = cells[0].lower() in SPLIT_NAMES and cells[0] != "" and len(cells) >= 2 and not Path(cells[0]).suffix
        if header and header[0] in ("split", "set"):
            automl = True
        if automl:
            split, file, label = cells[0], cells[1] if len(cells) > 1 else "", cells[2] if len(cells) > 2 else ""
        else:
            file, label, split = cells[0], cells[1] if len(cells) > 1 else "", cells[2] if len(cells) > 2 else ""
        if len(cells) > 3 or not file or not label:
            raise BadInput(f"{path} line {line}: expected path,label[,split] (or SPLIT,path,label), "
                           f"got {','.join(cells)!r}", "fix that row")
        if split.lower() not in SPLIT_NAMES:
            raise BadInput(f"{path} line {line}: unknown split {split!r}",
                           "use train, validation, test or leave it empty")
        if "://" in file:
            raise BadInput(f"{path} line {line}: {file} is a remote path; edgekit never downloads",
                           "copy the images here and write local paths (relative to the CSV)")
        resolved = Path(file) if Path(file).is_absolute() else path.parent / file
        sample = Sample(path=str(resolved), label=label, split=SPLIT_NAMES[split.lower()])
        if not resolved.is_file():
            sample.error = "file not found"
        samples.append(sample)
    return samples


def _decode(samples: list[Sample], progress) -> list[np.ndarray | None]:
    thumbnails: list[np.ndarray | None] = []
    for done, sample in enumerate(samples, 1):
        thumbnail = None
        if sample.error is None:
            try:
                data = Path(sample.path).read_bytes()
                sample.sha256 = hashlib.sha256(data).hexdigest()
                rgb, sample.info = read_rgb(Path(sample.path))
                thumbnail = _shrink(rgb)
            except UnreadableImage as exc:
                sample.error = str(exc)
            except OSError as exc:
                sample.error = f"cannot read the file ({exc.strerror or exc})"
        thumbnails.append(thumbnail)
        if progress:
            progress(done, len(samples))
    return thumbnails


def _shrink(rgb: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] -> at most THUMBNAIL_SIDE on its longer side, with edgekit.frames' area
    resampling, the filter the runtime shrinks a photo with (two area steps stay close to the
    runtime's one; a different filter here would blur or alias what the features see)."""
    from ..frames import resize

    height, width = rgb.shape[:2]
    scale = THUMBNAIL_SIDE / max(height, width)
    if scale >= 1:
        return rgb
    return resize(rgb, (max(1, round(height * scale)), max(1, round(width * scale))), "stretch")


def _refuse_fatal(samples: list[Sample], labels: list[str], source: Path) -> None:
    """The only problems that stop training: fewer than 2 classes, or a class with no usable image."""
    if len(labels) < 2:
        found = f"only '{labels[0]}'" if labels else "none"
        raise BadInput(f"{source} has fewer than 2 classes ({found})",
                       "a classifier needs at least 2 labelled classes: add a folder (or CSV label) per class")
    for label in labels:
        usable = [s for s in samples if s.label == label and s.usable and s.split != "test"]
        if not usable:
            files = [s for s in samples if s.label == label and s.split != "test"]
            why = "it is empty" if all(s.error == "empty class folder" for s in files) or not files else \
                f"none of its {len(files)} file(s) can be read"
            raise BadInput(f"class '{label}' has no usable training image ({why})",
                           "add readable images to it or remove the class")


def _assign_splits(samples: list[Sample], labels: list[str], test_fraction: float, val_fraction: float,
                   seed: int, pinned: set[int] = frozenset()) -> None:
    """Per class: keep given splits; hold out test (when none was given) then val from the rest
    (from rows marked train too, when the class has no validation rows). A class with fewer than
    3 images stays all in train. Own code rather than sklearn's
    train_test_split, which refuses classes with a single member."""
    rng = np.random.default_rng(seed)
    given_test = any(s.split == "test" for s in samples)
    pinned_ids = {id(samples[i]) for i in pinned}
    for label in labels:
        pool = [s for s in samples if s.label == label and s.usable and s.split == ""]
        order = [pool[i] for i in rng.permutation(len(pool))]
        order.sort(key=lambda s: id(s) not in pinned_ids)  # stable: pinned files are held out first
        if not given_test and len(order) >= 3:
            count = max(1, round(len(order) * test_fraction), sum(id(s) in pinned_ids for s in order))
            for sample in order[:count]:
                sample.split = "test"
            order = order[count:]
        has_val = any(s.split == "val" for s in samples if s.label == label)
        # no validation rows for this class: hold them out of its unassigned images first, then of
        # the rows a CSV marked train (AutoML Vision does the same), never score on training images
        marked_train = [s for s in samples if s.label == label and s.usable and s.split == "train"]
        pool = order + [marked_train[i] for i in rng.permutation(len(marked_train))]
        if not has_val and len(pool) >= 3:
            count = max(1, round(len(pool) * val_fraction))
            for sample in pool[:count]:
                sample.split = "val"
            order = order[count:]
        for sample in order:
            sample.split = "train"
    for sample in samples:
        if not sample.split:
            sample.split = "train"
