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
from pathlib import Path
from typing import Callable

import numpy as np

from .. import frames
from ..errors import EdgekitError
from ..manifest import Manifest, read_manifest
from .base import Runner, open_runner
from .results import Classification, Detection, FrameMeta, Prediction  # noqa: F401  (their import path)
from .specs import decode_spec, frame_spec


class Predictor:
    """A Runner plus the manifest's pre- and postprocessing (edgekit/frames.py, the same code the
    board runner uses).

    Detection keeps boxes scoring at least `score_threshold`, merges overlaps above
    `iou_threshold` (YOLO heads and SSD score maps; the TFLite_Detection_PostProcess op did its
    own NMS) and returns at most `max_detections`. The manifest's `detection` spec may set the three.
    Raises UnknownNameError for a task no decoder handles.
    """

    def __init__(self, runner: Runner, manifest: Manifest | None, top_k: int = 5,
                 score_threshold: float | None = None, iou_threshold: float | None = None,
                 max_detections: int | None = None):
        self.runner = runner
        self.manifest = manifest
        self.decode_spec = decode_spec(manifest, runner.outputs, top_k, score_threshold, iou_threshold,
                                       max_detections)
        self._frame_spec: frames.FrameSpec | None = None  # on first use: a non-image model never needs it

    @property
    def task(self) -> str:
        return self.decode_spec.task

    @property
    def labels(self) -> list[str]:
        return self.decode_spec.labels

    @property
    def frame_spec(self) -> frames.FrameSpec:
        """The manifest's preprocessing for the first input. Raises EdgekitError when that input
        is not an image edgekit can prepare."""
        if self._frame_spec is None:
            self._frame_spec = frame_spec(self.manifest, self.runner.inputs[0])
        return self._frame_spec

    def prepare(self, image: np.ndarray, order: str = "RGB") -> tuple[np.ndarray, FrameMeta]:
        """uint8 [H, W, 3] image (RGB, or BGR as OpenCV reads it with order="BGR") -> (input
        tensor in the model's layout, FrameMeta). An 8-bit quantized input gets its own dtype
        straight from the pixels; any other input gets float32. Raises EdgekitError for an image
        with the wrong channel count or a non-image model input."""
        if len(self.runner.inputs) > 1:
            from ..errors import BadInput

            raise BadInput(f"{self.runner.path.name} takes {len(self.runner.inputs)} inputs ({self.input_names()}), "
                           "and an image feeds one", "pass a .npz with one array per input name")
        info = self.runner.inputs[0]
        quantization = info.quantization
        try:
            return frames.prepare(image, self.frame_spec, info.dtype, quantization and quantization.scale,
                                  quantization and quantization.zero_point, order)
        except frames.FrameError as exc:
            raise EdgekitError(str(exc), exc.remedy) from None

    def tensor_feeds(self, path: Path):
        """Ready (preprocessed) inputs from a file: a .npy is the single input's tensor at its
        shape; a .npz holds one array per input name, the artifact's or the source model's as
        the manifest records them (input_specs). Returns the array, or a dict by artifact input
        name. Raises BadInput for an unreadable file, a missing name, a wrong shape or count."""
        from ..errors import BadInput, summary

        inputs = self.runner.inputs
        specs = self._source_names()
        try:
            if path.suffix.lower() == ".npz":
                with np.load(path, allow_pickle=False) as data:
                    arrays = {name: data[name] for name in data.files}
            else:
                arrays = {"": np.load(path, allow_pickle=False)}
        except (OSError, ValueError) as exc:
            raise BadInput(f"{path} is not a readable {path.suffix} array file ({summary(exc)})") from None
        if "" in arrays:
            if len(inputs) > 1:
                raise BadInput(f"{path} is one array, and the model takes {len(inputs)} inputs "
                               f"({self.input_names()})", "pass a .npz with one array per input name")
            tensor = arrays[""]
            if list(tensor.shape) != list(inputs[0].shape):
                raise BadInput(f"{path} has shape {list(tensor.shape)}; the model takes {list(inputs[0].shape)}",
                               "save the preprocessed input tensor, or pass an image")
            return tensor.astype(np.float32, copy=False)
        feeds = {}
        for info in inputs:
            key = info.name if info.name in arrays else specs.get(info.name)
            if key not in arrays:
                raise BadInput(f"{path} has no array for input '{specs.get(info.name) or info.name}' "
                               f"(it holds {', '.join(arrays) or 'none'})", "save one array per input name")
            array = arrays[key]
            if array.ndim == len(info.shape) and info.shape[0] == 1 and array.shape[0] > 1:
                raise BadInput(f"{path}: array '{key}' holds {array.shape[0]} samples, and the model takes one "
                               f"{list(info.shape)}", "save one sample per file (array[i:i + 1])")
            feeds[info.name] = array.astype(np.float32, copy=False)
        return feeds

    def input_names(self) -> str:
        """The model's inputs as a user names them: the source model's input names where the
        manifest records them (the keys a .npz takes), else the artifact's."""
        specs = self._source_names()
        return ", ".join(specs.get(t.name) or t.name for t in self.runner.inputs)

    def _source_names(self) -> dict[str, str]:
        """Artifact input name -> the source model's input name, as the manifest records them."""
        return {s.name: s.source_name for s in self.manifest.input_specs} if self.manifest else {}

    def tensor_meta(self) -> FrameMeta:
        """The FrameMeta of a ready tensor: no resize, so boxes stay in model input pixels."""
        shape = self.runner.inputs[0].shape
        nchw = len(shape) == 4 and shape[1] in (1, 3) and shape[-1] not in (1, 3)
        size = tuple(shape[2:4]) if nchw else tuple(shape[1:3]) if len(shape) >= 3 else (1, 1)
        return FrameMeta(original_size=size, input_size=size)

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        """The Runner's inference: float32 outputs, dequantized, in the model's output order."""
        return self.runner.infer(batch)

    def decode(self, outputs: list[np.ndarray], meta: FrameMeta) -> Prediction:
        """Outputs of `infer` for the frame META describes -> Prediction in original-image
        pixels. Raises EdgekitError when the outputs do not fit the task's decoder."""
        try:
            return frames.decode(outputs, meta, self.decode_spec)
        except frames.FrameError as exc:
            raise EdgekitError(str(exc), exc.remedy) from None

    def __call__(self, image: np.ndarray) -> Prediction:
        """uint8 RGB [H, W, 3] -> Prediction, with timings_ms of each stage."""
        start = time.perf_counter()
        batch, meta = self.prepare(image)
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
