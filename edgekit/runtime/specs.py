"""The manifest, read into frames.py's specs: the one place where a Manifest's preprocessing and
output facts become a `FrameSpec` (image -> input tensor) and a `DecodeSpec` (outputs -> Prediction).

The Predictor uses both; the deploy bundle writes both into bundle.json, so the board runner
decodes frames exactly as the host does without reading the manifest's schema itself.
"""
from __future__ import annotations

from collections.abc import Sequence

from ..errors import EdgekitError, UnknownNameError
from ..frames import DECODERS, DecodeSpec, FrameError, FrameSpec
from ..manifest import Manifest, Preprocess, TensorInfo

DEFAULT_SCORE_THRESHOLD = 0.25
DEFAULT_IOU_THRESHOLD = 0.45
DEFAULT_MAX_DETECTIONS = 100


def frame_spec(manifest: Manifest | None, model_input: TensorInfo | None) -> FrameSpec:
    """The manifest's preprocessing for MODEL_INPUT (defaults without a manifest); a size or
    channel count the manifest leaves out is read off the input's shape. Raises EdgekitError
    when the input is not an image edgekit can prepare."""
    pre = manifest.preprocess if manifest else Preprocess()
    try:
        return FrameSpec.of(pre, model_input.shape if model_input is not None else None)
    except FrameError as exc:
        name = f" '{model_input.name}'" if model_input is not None else ""
        raise EdgekitError(str(exc).replace("the model input", f"the model input{name}", 1), exc.remedy) from None


def decode_spec(manifest: Manifest | None, outputs: Sequence[TensorInfo] = (), top_k: int = 5,
                score_threshold: float | None = None, iou_threshold: float | None = None,
                max_detections: int | None = None) -> DecodeSpec:
    """How the outputs become a Prediction: the manifest's task and labels; detection thresholds
    from the arguments, else the manifest's detection spec, else 0.25 / 0.45 / 100; the recorded
    detection format (None: read from the output shapes). Raises UnknownNameError for a task no
    decoder handles."""
    task = manifest.task if manifest else "other"
    if task not in DECODERS:
        raise UnknownNameError("task", task, DECODERS)
    recorded = manifest.detection if manifest is not None else None   # a typed DetectionSpec, or None
    return DecodeSpec(
        task=task, labels=list(manifest.labels) if manifest else [], top_k=int(top_k),
        score_threshold=float(_pick(score_threshold, recorded and recorded.score_threshold, DEFAULT_SCORE_THRESHOLD)),
        iou_threshold=float(_pick(iou_threshold, recorded and recorded.iou_threshold, DEFAULT_IOU_THRESHOLD)),
        max_detections=int(_pick(max_detections, recorded and recorded.max_detections, DEFAULT_MAX_DETECTIONS)),
        detection_format=(recorded and recorded.format) or None,
        layout=manifest.preprocess.layout if manifest else None,
        output_names=[t.name for t in outputs])


def _pick(*values):
    return next(v for v in values if v is not None)
