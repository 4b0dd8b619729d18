"""Export each pick through `edgekit.convert` to every requested target, then measure every
artifact's accuracy on the test split next to the float model's.

int8 is calibrated on training images (a uint8 .npy of up to CALIBRATION_SAMPLES training
images, spread over the classes, that `convert` preprocesses exactly as the manifest says).
Each artifact runs through `edgekit.runtime.predictor.open_predictor`, the same path as
`edgekit predict`, on the original test files. An artifact whose accuracy is more than
`max_drop` points below the float model's fails. Where the runtime is missing (Core ML off
macOS), the artifact is kept and marked "not measured", with the reason.
"""
from __future__ import annotations

import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import EdgekitError

CALIBRATION_SAMPLES = 128
BENCH_RUNS = 30


@dataclass
class ArtifactEval:
    """One exported artifact's test accuracy next to the float model's (points of drop), its gate
    status and host latency (ms)."""
    pick: str
    target: str
    precision: str
    path: str
    size_bytes: int
    status: str                          # pass | fail | not measured
    accuracy: float | None = None
    float_accuracy: float | None = None
    drop_points: float | None = None     # float accuracy minus artifact accuracy, in points
    per_class_recall: dict[str, float] = field(default_factory=dict)
    parity: str | None = None            # convert's verify status (against the float model)
    backend: str | None = None
    latency_ms: float | None = None      # edgekit bench median on this host
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def calibration_array(dataset, size: int, folder: Path) -> Path:
    """uint8 [N, size, size, 3] training images (stretched like the model input) as a .npy file."""
    from ..frames import resize

    train = dataset.indices("train")
    by_class: dict[str, list[int]] = {}
    for index in train:
        by_class.setdefault(dataset.samples[index].label, []).append(index)
    chosen: list[int] = []
    while len(chosen) < min(CALIBRATION_SAMPLES, len(train)):  # round-robin over classes
        for label in sorted(by_class):
            if by_class[label]:
                chosen.append(by_class[label].pop(0))
    pixels = np.stack([resize(np.ascontiguousarray(dataset.thumbnails[i]), (size, size), "stretch")
                       for i in chosen[:CALIBRATION_SAMPLES]])
    path = Path(folder) / f"calibration_{size}.npy"
    np.save(path, pixels)
    return path


def export_pick(name: str, model, size: int, backbone, labels_file: Path, calibration: Path, targets: list[str],
                precisions: list[str] | None, out_dir: Path, progress=None,
                warn: Callable[[str], None] | None = None):
    """convert() one pick; returns edgekit's ConvertResult."""
    from ..convert import ConvertRequest, convert

    request = ConvertRequest(targets=targets, precisions=precisions, out_dir=out_dir, calib=str(calibration),
                             calib_samples=CALIBRATION_SAMPLES, verify=True, input_size=[size, size],
                             mean=list(backbone.mean), std=list(backbone.std), bgr=False, resize="stretch",
                             task="classification", labels=labels_file, name=name)
    from .threads import backbone_threads, torch_threads

    with torch_threads(backbone_threads()):  # convert's verify runs the float model 64 times
        return convert(model, request, progress=progress, warn=warn)


def evaluate_artifact(path: Path, images: list[np.ndarray], targets: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """Accuracy of the artifact at PATH on IMAGES (uint8 [H, W, 3] RGB each) through open_predictor."""
    from ..runtime.predictor import open_predictor

    with open_predictor(path, top_k=1) as predictor:
        predicted = np.array([predictor(image).classes[0].index for image in images], dtype=np.int64)
        backend = predictor.runner.backend
    recall = {label: float(np.mean(predicted[targets == i] == i)) if np.any(targets == i) else None
              for i, label in enumerate(labels)}
    return {"accuracy": float(np.mean(predicted == targets)) if len(targets) else 0.0, "backend": backend,
            "per_class_recall": {k: round(v, 4) for k, v in recall.items() if v is not None}}


def measure_artifacts(result, pick: str, images: list[np.ndarray], targets: np.ndarray, labels: list[str],
                      float_accuracy: float, max_drop: float) -> list[ArtifactEval]:
    """Test accuracy (and the gate) for every artifact of one ConvertResult."""
    from ..formats import sniff
    from ..runtime.base import BACKENDS

    rows = []
    for artifact in result.artifacts:
        path = Path(artifact.path)
        row = ArtifactEval(pick, artifact.target, artifact.precision, str(path), artifact.size_bytes,
                           "not measured", float_accuracy=float_accuracy, parity=artifact.verify.status)
        fmt = sniff(path)
        reason = BACKENDS.get(fmt.backend).unavailable_reason()
        if reason:
            off_mac = fmt.name == "coreml" and sys.platform != "darwin"
            row.note = "Core ML predicts only on macOS: accuracy not measured on this host" if off_mac else \
                f"not measured: {reason}"
            rows.append(row)
            continue
        try:
            measured = evaluate_artifact(path, images, targets, labels)
        except EdgekitError as exc:
            row.note = f"could not run: {exc.one_line()}"
            row.status = "fail"
            rows.append(row)
            continue
        row.accuracy, row.backend = measured["accuracy"], measured["backend"]
        row.per_class_recall = measured["per_class_recall"]
        row.drop_points = round(100 * (float_accuracy - row.accuracy), 2)
        row.status = "fail" if row.drop_points > max_drop + 1e-9 else "pass"
        if artifact.target == "edgetpu":
            row.note = "Edge TPU-ready int8 model measured on LiteRT CPU (no Edge TPU on this host)"
        rows.append(row)
    return rows


def bench_latency(rows: list[ArtifactEval]) -> None:
    """Median latency of every measured artifact with edgekit's bench (fills row.latency_ms)."""
    from ..bench.harness import BenchOptions, run_bench

    runnable = [r for r in rows if r.accuracy is not None]
    if not runnable:
        return
    try:
        report = run_bench([r.path for r in runnable], BenchOptions(runs=BENCH_RUNS, warmup=5))
    except EdgekitError as exc:
        for row in runnable:
            row.note = (row.note + "; " if row.note else "") + f"latency not measured: {exc.one_line()}"
        return
    for row, record in zip(runnable, report.results):
        if record.status == "ok":
            row.latency_ms = round(float(record.latency_ms["p50"]), 3)
        else:
            row.note = (row.note + "; " if row.note else "") + f"latency not measured: {record.error}"


def scratch_dir(out_dir: Path) -> tempfile.TemporaryDirectory:
    """A temporary folder inside OUT_DIR (same file system, removed on exit) for calibration arrays."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(prefix=".edgekit-train-", dir=out_dir)
