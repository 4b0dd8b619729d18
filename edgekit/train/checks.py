"""Data checks, before any training: what is wrong with the photos, in a report (table + JSON)
that is saved with the model.

- unreadable or truncated files (listed, skipped);
- exact duplicates (sha256 of the file) and near-duplicates (perceptual hash, `imagehash.phash`,
  Hamming distance <= NEAR_DUPLICATE_BITS of 64) that cross classes (conflicting labels) or
  splits (leakage: the training copy of a test image is excluded from training, so the test
  accuracy stays honest);
- classes with fewer than FEW_IMAGES training images, and imbalance (largest / smallest class
  above IMBALANCE_RATIO);
- mixed image modes (greyscale, CMYK, alpha, 16-bit ... next to RGB) and tiny images (shorter
  side below TINY_SIDE pixels);
- suspected label errors: confident learning (`cleanlab.filter.find_label_issues`) on
  out-of-fold predicted probabilities of a logistic-regression probe over backbone features
  (stratified K-fold, so no image is scored by a model that saw it); the suspects are cleanlab's
  flagged issues and every image whose given label is less likely than not, ranked by label
  quality (self-confidence), with `flagged_by_cleanlab` on each.

Only two problems refuse to train, and `data.load` raises them: fewer than 2 classes, and a
class with no usable image. Everything here is a finding, not an error.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .data import Dataset

NEAR_DUPLICATE_BITS = 4
FEW_IMAGES = 10
IMBALANCE_RATIO = 3.0
TINY_SIDE = 32
TOP_SUSPECTS = 10


@dataclass
class Finding:
    """One data-check result: which check, how serious, one line for the table and the items (paths,
    labels, splits) for the JSON."""
    check: str          # unreadable | duplicate | near-duplicate | few-images | imbalance | modes | tiny | label-error
    severity: str       # warning | info
    message: str
    items: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class DataReport:
    """Every finding, the ranked label-error suspects and the images kept out of training:
    data_report.json."""
    summary: dict[str, Any]
    findings: list[Finding]
    suspects: list[dict[str, Any]]            # ranked label-error suspects
    suspects_method: str = ""
    excluded: list[dict[str, Any]] = field(default_factory=list)  # kept out of training, and why

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.summary, "findings": [asdict(f) for f in self.findings],
                "label_error_suspects": self.suspects, "label_error_method": self.suspects_method,
                "excluded_from_training": self.excluded}

    def by_check(self, check: str) -> list[Finding]:
        return [f for f in self.findings if f.check == check]

    @property
    def warnings(self) -> int:
        return sum(f.severity == "warning" for f in self.findings)


def run_checks(dataset: Dataset) -> DataReport:
    """Every check that needs no model. Marks leaked training copies of test images `excluded`."""
    findings: list[Finding] = []
    samples = dataset.samples
    unreadable = [s for s in samples if not s.usable]
    if unreadable:
        findings.append(Finding("unreadable", "warning", f"{len(unreadable)} file(s) cannot be used and are skipped",
                                [{"path": s.path, "label": s.label, "reason": s.error} for s in unreadable]))
    findings += _exact_duplicates(dataset)
    findings += _near_duplicates(dataset)
    findings += _balance(dataset)
    findings += _modes_and_sizes(dataset)
    excluded = [{"path": s.path, "label": s.label, "reason": s.excluded} for s in samples if s.excluded]
    excluded += _exclude_leaks(dataset, findings)
    return DataReport(dataset.summary(), findings, [], excluded=excluded)


def _exact_duplicates(dataset: Dataset) -> list[Finding]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(dataset.samples):
        if s.usable and s.sha256:
            groups[s.sha256].append(i)
    return _group_findings(dataset, [g for g in groups.values() if len(g) > 1], "duplicate", "identical files")


def _near_duplicates(dataset: Dataset) -> list[Finding]:
    """Pairs whose perceptual hashes differ in at most NEAR_DUPLICATE_BITS bits, excluding exact copies."""
    import imagehash
    from PIL import Image

    usable = [i for i, s in enumerate(dataset.samples) if s.usable]
    if len(usable) < 2:
        return []
    hashes = np.array([int(str(imagehash.phash(Image.fromarray(dataset.thumbnails[i]))), 16) for i in usable],
                      dtype=np.uint64)
    pairs = []
    for row in range(len(usable) - 1):
        distance = _popcount(hashes[row] ^ hashes[row + 1:])
        for offset in np.nonzero(distance <= NEAR_DUPLICATE_BITS)[0]:
            a, b = usable[row], usable[row + 1 + int(offset)]
            if dataset.samples[a].sha256 != dataset.samples[b].sha256:
                pairs.append((a, b, int(distance[offset])))
    groups = [[a, b] for a, b, _ in pairs]
    distances = {(a, b): d for a, b, d in pairs}
    findings = _group_findings(dataset, groups, "near-duplicate", "near-identical images (perceptual hash)")
    for finding in findings:
        for item in finding.items:
            item["hamming_bits"] = distances.get(tuple(item["indices"]))
    return findings


def _popcount(values: np.ndarray) -> np.ndarray:
    as_bytes = values.astype(">u8").view(np.uint8).reshape(-1, 8)
    return np.unpackbits(as_bytes, axis=1).sum(axis=1)


def _group_findings(dataset: Dataset, groups: list[list[int]], check: str, what: str) -> list[Finding]:
    samples = dataset.samples
    conflicting, leaking, same = [], [], []
    for group in groups:
        item = {"indices": group, "paths": [samples[i].path for i in group],
                "labels": [samples[i].label for i in group], "splits": [samples[i].split for i in group]}
        splits = {samples[i].split for i in group}
        if len({samples[i].label for i in group}) > 1:
            conflicting.append(item)
        if "test" in splits and splits - {"test"}:
            leaking.append(item)
        if len({samples[i].label for i in group}) == 1 and not ("test" in splits and splits - {"test"}):
            same.append(item)
    findings = []
    if conflicting:
        findings.append(Finding(check, "warning", f"{len(conflicting)} group(s) of {what} with conflicting labels",
                                [dict(i, kind="conflicting-labels") for i in conflicting]))
    if leaking:
        findings.append(Finding(check, "warning", f"{len(leaking)} group(s) of {what} across the test split "
                                                  "(leakage: training copies excluded)",
                                [dict(i, kind="leakage") for i in leaking]))
    if same:
        findings.append(Finding(check, "info", f"{len(same)} group(s) of {what} within one class",
                                [dict(i, kind="same-class") for i in same]))
    return findings


def _exclude_leaks(dataset: Dataset, findings: list[Finding]) -> list[dict[str, Any]]:
    excluded = []
    for finding in findings:
        for item in finding.items:
            if item.get("kind") != "leakage":
                continue
            test = next(p for p, s in zip(item["paths"], item["splits"]) if s == "test")
            for index, split in zip(item["indices"], item["splits"]):
                sample = dataset.samples[index]
                if split != "test" and not sample.excluded:
                    sample.excluded = f"{finding.check} of test image {test}"
                    excluded.append({"path": sample.path, "label": sample.label, "reason": sample.excluded})
    return excluded


def _balance(dataset: Dataset) -> list[Finding]:
    counts = {label: sum(1 for s in dataset.samples if s.label == label and s.usable and s.split == "train")
              for label in dataset.labels}
    findings = []
    few = {label: n for label, n in counts.items() if n < FEW_IMAGES}
    if few:
        findings.append(Finding("few-images", "warning",
                                f"{len(few)} class(es) with fewer than {FEW_IMAGES} training images "
                                f"({', '.join(f'{k}: {v}' for k, v in sorted(few.items()))})",
                                [{"label": k, "train_images": v} for k, v in sorted(few.items())]))
    largest, smallest = max(counts.values()), max(1, min(counts.values()))
    if largest / smallest > IMBALANCE_RATIO:
        findings.append(Finding("imbalance", "warning",
                                f"classes are imbalanced: largest {largest} vs smallest {min(counts.values())} "
                                f"training images (ratio {largest / smallest:.1f} > {IMBALANCE_RATIO:g}); the "
                                "search tries class-balanced loss weights", [{"counts": counts}]))
    return findings


def _modes_and_sizes(dataset: Dataset) -> list[Finding]:
    usable = [s for s in dataset.samples if s.usable and s.info]
    modes = Counter(s.info.mode for s in usable)
    findings = []
    if len(modes) > 1:
        common = modes.most_common(1)[0][0]
        odd = [{"path": s.path, "label": s.label, "mode": s.info.mode, "format": s.info.format}
               for s in usable if s.info.mode != common]
        findings.append(Finding("modes", "warning", "mixed image modes: " + ", ".join(
            f"{m} {n}" for m, n in modes.most_common()) + " (all are converted to RGB)", odd))
    tiny = [{"path": s.path, "label": s.label, "size": [s.info.width, s.info.height]}
            for s in usable if min(s.info.width, s.info.height) < TINY_SIDE]
    if tiny:
        findings.append(Finding("tiny", "warning", f"{len(tiny)} tiny image(s) (shorter side < {TINY_SIDE} px)", tiny))
    return findings


def label_suspects(dataset: Dataset, features: np.ndarray, indices: list[int], seed: int = 0) -> tuple[list, str]:
    """Ranked suspected label errors among INDICES (float32 [N, D] FEATURES in the same order).

    Out-of-fold probabilities from a logistic-regression probe (stratified K-fold, K = min(5,
    smallest class)), then cleanlab's confident learning. A class with a single image cannot be
    scored out of fold: it is left out of the probe (and named in the method), so one tiny class
    does not switch the check off for all the others. Returns (suspects, method)."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    all_targets = dataset.targets(indices)
    counts = np.bincount(all_targets, minlength=len(dataset.labels))
    lone = [dataset.labels[c] for c in np.unique(all_targets) if counts[c] < 2]
    keep = np.flatnonzero(counts[all_targets] >= 2)
    indices, features, targets = [indices[i] for i in keep], features[keep], all_targets[keep]
    present = np.unique(targets)
    left_out = f"; left out (a single image, no out-of-fold score): {', '.join(lone)}" if lone else ""
    if len(present) < 2:
        return [], "skipped: fewer than 2 classes have 2 or more images, too few for out-of-fold predictions" + left_out
    smallest = min(counts[present])
    folds = int(min(5, smallest))
    remap = {c: i for i, c in enumerate(present)}
    y = np.array([remap[t] for t in targets])
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=2000))
    probabilities = cross_val_predict(probe, features, y, cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
                                      method="predict_proba")
    # n_jobs=1: cleanlab's default forks a multiprocessing pool, which deadlocks (seen: a run hung
    # for good) once torch's threads exist in this process; the work is tiny either way
    flagged = set(int(i) for i in np.flatnonzero(find_label_issues(y, probabilities, n_jobs=1)))
    quality = get_label_quality_scores(y, probabilities)  # self-confidence: p(given label)
    # ranked by label quality: cleanlab's flagged issues, and any image whose given label is less
    # likely than not (a small dataset can leave a real error just under the noise-rate cut)
    ranked = [int(i) for i in np.argsort(quality, kind="stable") if int(i) in flagged or quality[i] < 0.5]
    suspects = []
    for row in ranked[:TOP_SUSPECTS]:
        sample = dataset.samples[indices[row]]
        predicted = int(np.argmax(probabilities[row]))
        suspects.append({"path": sample.path, "split": sample.split, "given": sample.label,
                         "predicted": dataset.labels[int(present[predicted])],
                         "given_probability": round(float(probabilities[row, y[row]]), 4),
                         "predicted_probability": round(float(probabilities[row, predicted]), 4),
                         "label_quality": round(float(quality[row]), 4), "flagged_by_cleanlab": row in flagged})
    method = (f"cleanlab {_version('cleanlab')} find_label_issues (prune_by_noise_rate) on {folds}-fold "
              f"out-of-fold probabilities of a logistic-regression probe, ranked by label quality "
              f"(self-confidence); {len(flagged)} flagged of {len(y)}{left_out}")
    return suspects, method


def _version(dist: str) -> str:
    from .. import deps

    return deps.version(dist) or "?"

