"""TFLite source. The flatbuffer is bounds-checked in pure Python before LiteRT touches it;
TFLite Metadata (AutoML Vision Edge, Model Maker) fills labels and normalization."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ModelFormatError
from ..manifest import Quantization, TensorInfo
from ..tflite_metadata import read_metadata
from ..tflite_model import read_tflite
from .base import SOURCES, SourceModel


def tensor_info(tensor) -> TensorInfo:
    """A flatbuffer tensor (tflite_model.Tensor) as the manifest's TensorInfo."""
    quant = None
    if tensor.quantization and tensor.quantization.scale:
        params = tensor.quantization
        quant = Quantization.from_params(params.scale, params.zero_point, params.quantized_dimension)
    return TensorInfo(tensor.name, list(tensor.shape), tensor.dtype, quant)


@SOURCES.register("tflite")
class TFLiteSource(SourceModel):
    kind = "tflite"
    layout = "NHWC"

    def __init__(self, path: Path):
        super().__init__(path)
        self.model = read_tflite(path)
        if not self.model.subgraphs or not self.model.inputs():
            raise ModelFormatError(f"{path} has no subgraph inputs", "re-export the model")
        if any(op.builtin == "CUSTOM" and op.name == "edgetpu-custom-op"
               for sg in self.model.subgraphs for op in sg.operators):
            raise ModelFormatError(f"{path} is already compiled for the Edge TPU",
                                   "convert from the uncompiled model instead")
        first = self.model.inputs()[0]
        if len(first.shape) == 4:
            self.facts.preprocess["input_size"] = [int(first.shape[1]), int(first.shape[2])]
        self._read_metadata()
        if any(op.name == "TFLite_Detection_PostProcess" for op in self.model.subgraphs[0].operators):
            self.facts.task = "detection"   # its outputs are boxes, classes, scores and a count
        self._interpreter = None

    @classmethod
    def from_path(cls, path: Path, input_shape=None) -> TFLiteSource:
        return cls(path)

    def _read_metadata(self) -> None:
        meta = read_metadata(self.model, Path(self.path).read_bytes())
        if meta is None:
            return
        self.facts.notes.append(f"read TFLite Metadata '{meta.name}'")
        labels = meta.labels()
        if labels:
            self.facts.labels, self.facts.labels_from = labels, "tflite-metadata"
        if meta.inputs:
            image = meta.inputs[0]
            if image.mean is not None and image.std is not None:
                channels = 3
                self.facts.preprocess["mean"] = _per_channel(image.mean, channels)
                self.facts.preprocess["std"] = _per_channel(image.std, channels)
            if image.color_space == "RGB":
                self.facts.preprocess["color_order"] = "RGB"
        if labels and len(self.model.outputs()) == 1:
            self.facts.task = "classification"

    def inputs(self) -> list[TensorInfo]:
        return [tensor_info(t) for t in self.model.inputs()]

    def outputs(self) -> list[TensorInfo]:
        return [tensor_info(t) for t in self.model.outputs()]

    def is_float(self) -> bool:
        return not self.model.is_fully_integer()

    def infer(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        from ..runtime import open_runner  # one code path for quantize/dequantize

        if self._interpreter is None:
            self._interpreter = open_runner(self.path, backend="litert")
        return self._interpreter.infer(list(feeds))


def _per_channel(values: list[float], channels: int) -> list[float]:
    return [float(v) for v in values] if len(values) == channels else [float(values[0])] * channels
