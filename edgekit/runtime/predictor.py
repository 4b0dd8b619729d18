"""Image in, labelled result out: preprocessing from the manifest -> Runner -> postprocessing.

The same code for every backend, so the same picture gives the same labels everywhere. Used by
`edgekit predict`, `edgekit bench` (pre/post timing), the camera pipeline and the demo.

    with open_predictor("out/model_int8.tflite") as predictor:
        prediction = predictor(rgb_image)          # HxWx3 uint8 RGB
        print(prediction.to_dict())

Stages are separate methods (`prepare`, `infer`, `decode`) so a pipeline can run them on
different threads and a benchmark can time them apart.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..manifest import DetectionSpec, Manifest, read_manifest
from .base import Runner, open_runner


@dataclass
class Classification:
    index: int
    label: str
    score: float


@dataclass
class Detection:
    box: list[float]            # x1, y1, x2, y2 in original-image pixels
    index: int
    label: str
    score: float


@dataclass
class FrameMeta:
    """How the original image maps onto the model input, so results map back onto it."""
    original_size: tuple[int, int]          # height, width of the image given to prepare()
    input_size: tuple[int, int]             # height, width of the model input
    scale: tuple[float, float] = (1.0, 1.0)  # model px per original px (y, x)
    offset: tuple[float, float] = (0.0, 0.0)  # model px of the original's top-left corner (y, x)


@dataclass
class Prediction:
    task: str
    classes: list[Classification] = field(default_factory=list)
    detections: list[Detection] = field(default_factory=list)
    mask: np.ndarray | None = None           # HxW class ids at the original size (segmentation)
    timings_ms: dict[str, float] = field(default_factory=dict)  # preprocess, infer, postprocess

    @property
    def top1(self) -> Classification | None:
        return self.classes[0] if self.classes else None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"task": self.task, "timings_ms": self.timings_ms}
        if self.classes:
            data["classes"] = [vars(c) for c in self.classes]
        if self.detections:
            data["detections"] = [vars(d) for d in self.detections]
        if self.mask is not None:
            ids, counts = np.unique(self.mask, return_counts=True)
            data["mask"] = {"shape": list(self.mask.shape),
                            "classes": {int(i): int(c) for i, c in zip(ids, counts)}}
        return data


class Predictor:
    """A Runner plus the manifest's pre- and postprocessing.

    Detection keeps boxes scoring at least `score_threshold`, merges overlaps above
    `iou_threshold` (YOLO heads and SSD score maps; the TFLite_Detection_PostProcess op did its
    own NMS) and returns at most `max_detections`. The manifest's `detection` spec may set the three.
    """

    def __init__(self, runner: Runner, manifest: Manifest | None, top_k: int = 5,
                 score_threshold: float | None = None, iou_threshold: float | None = None,
                 max_detections: int | None = None):
        from .postprocess import decoder_for

        self.runner = runner
        self.manifest = manifest
        self.task = manifest.task if manifest else "other"
        self.labels = list(manifest.labels) if manifest else []
        self.top_k = top_k
        recorded = (manifest.detection if manifest else None) or DetectionSpec()
        self.score_threshold = _pick(score_threshold, recorded.score_threshold, 0.25)
        self.iou_threshold = _pick(iou_threshold, recorded.iou_threshold, 0.45)
        self.max_detections = int(_pick(max_detections, recorded.max_detections, 100))
        self._decode = decoder_for(self.task)

    def prepare(self, rgb: np.ndarray) -> tuple[np.ndarray, FrameMeta]:
        """RGB, an HxWx3 uint8 image, -> (the model input batch [1, ...] in the artifact's layout:
        float32, or the input's own uint8/int8 when it is quantized; FrameMeta to map results
        back to RGB's pixels), with the manifest's resize, colour order and normalization."""
        from .preprocess import prepare_image

        return prepare_image(rgb, self.manifest, self.runner.inputs[0])

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        """BATCH from `prepare` -> the model's outputs as float32 arrays (Runner.infer)."""
        return self.runner.infer(batch)

    def decode(self, outputs: list[np.ndarray], meta: FrameMeta) -> Prediction:
        """OUTPUTS of `infer` -> a Prediction for the manifest's task: top-k classes (scores are
        probabilities), detections (boxes x1, y1, x2, y2 in original-image pixels) or a mask
        (class ids, original size). Raises BadInput for outputs the decoder cannot read."""
        return self._decode(outputs, meta, self)

    def __call__(self, rgb: np.ndarray) -> Prediction:
        """prepare -> infer -> decode on one HxWx3 uint8 RGB image; `timings_ms` has each stage."""
        start = time.perf_counter()
        batch, meta = self.prepare(rgb)
        prepared = time.perf_counter()
        outputs = self.infer(batch)
        inferred = time.perf_counter()
        prediction = self.decode(outputs, meta)
        done = time.perf_counter()
        prediction.timings_ms = {"preprocess": (prepared - start) * 1e3, "infer": (inferred - prepared) * 1e3,
                                 "postprocess": (done - inferred) * 1e3}
        return prediction

    def close(self) -> None:
        """Close the Runner."""
        self.runner.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _pick(*values):
    return next(v for v in values if v is not None)


def open_predictor(artifact, backend: str | None = None, device: str | None = None, top_k: int = 5,
                   warn: Callable[[str], None] | None = None, score_threshold: float | None = None,
                   iou_threshold: float | None = None, max_detections: int | None = None,
                   **options) -> Predictor:
    """A Predictor over ARTIFACT (opened with `open_runner(artifact, backend, device, **options)`,
    whose errors it raises). Without a manifest beside it, what the model file says is used
    (its input shape, TFLite Metadata, a labels file beside it, the output shapes) and `warn`
    is told what had to be assumed. TOP_K: classes kept per image; SCORE_THRESHOLD (0..1),
    IOU_THRESHOLD (0..1) and MAX_DETECTIONS override the manifest's detection spec."""
    path = Path(artifact)
    runner = open_runner(path, backend, device, **options)
    try:
        manifest = read_manifest(path)
        if manifest is None:
            from .fallback import manifest_from_model

            manifest, assumed = manifest_from_model(path, runner)
            if warn is not None:
                warn(f"{path.name} has no manifest ({path.name}.edgekit.json); assumed from the model file: "
                     f"{'; '.join(assumed)}. Convert it with `edgekit convert` to record the real preprocessing")
        return Predictor(runner, manifest, top_k=top_k, score_threshold=score_threshold,
                         iou_threshold=iou_threshold, max_detections=max_detections)
    except BaseException:
        runner.close()
        raise
