"""TFLite source. The flatbuffer is bounds-checked in pure Python before LiteRT touches it;
TFLite Metadata (AutoML Vision Edge, Model Maker) fills labels and normalization."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ModelFormatError
from ..manifest import Quantization, TensorInfo
from ..tflite_metadata import read_metadata
from ..tflite_model import read_tflite
from .base import SOURCES, SourceInput, SourceModel
from .graph_norm import EntryAffine, facts_of, per_channel


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
        self._note_input_facts()
        images = self.image_inputs()
        if images:
            found = entry_normalization(self.model, images[0])
            if found is not None:
                self.facts.preprocess.update(facts_of(found, images[0].channels))
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
                channels = int(self.facts.preprocess.get("channels") or 3)
                self.facts.preprocess["mean"] = _per_channel(image.mean, channels)
                self.facts.preprocess["std"] = _per_channel(image.std, channels)
                self.facts.preprocess["normalization"] = "metadata"
                # the metadata is the contract the Task Library and ML Kit apply: it wins over
                # arithmetic found at the graph entry
                self.facts.preprocess.pop("graph_normalization", None)
            if image.color_space == "RGB":
                self.facts.preprocess["color_order"] = "RGB"
        if labels and len(self.model.outputs()) == 1:
            self.facts.task = "classification"

    def declared_inputs(self) -> list[TensorInfo]:
        """The signature's shapes (`shape_signature`: -1 where free); `shape` holds 1 there."""
        declared = []
        for tensor in self.model.inputs():
            info = tensor_info(tensor)
            if tensor.shape_signature:
                info.shape = [int(d) for d in tensor.shape_signature]
            declared.append(info)
        return declared

    def outputs(self) -> list[TensorInfo]:
        return [tensor_info(t) for t in self.model.outputs()]

    def is_float(self) -> bool:
        return not self.model.is_fully_integer()

    def infer(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        from ..runtime import open_runner  # one code path for quantize/dequantize

        if self._interpreter is None:
            self._interpreter = open_runner(self.path, backend="litert")
            shapes = [t.shape for t in self.inputs()]
            if shapes != [t.shape for t in self._interpreter.inputs]:   # free size or batch, now fixed
                self._interpreter.resize_inputs(shapes)
        return self._interpreter.infer(list(feeds))


_ARITHMETIC = {"ADD": "Add", "SUB": "Sub", "MUL": "Mul", "DIV": "Div"}
_DTYPES = {"float32": np.float32, "float16": np.float16}


def entry_normalization(model, image: SourceInput):
    """The GraphNormalization of the constant ADD/SUB/MUL/DIV ops (no fused activation) that alone
    consume the IMAGE input of the first subgraph and each other's output, or None."""
    graph = model.subgraphs[0]
    tensor = {t.name: t for t in graph.tensors}[image.name]
    consumers: dict[int, list] = {}
    for op in graph.operators:
        for index in op.inputs:
            consumers.setdefault(index, []).append(op)
    affine, current = EntryAffine.identity(), tensor.index
    while len(consumers.get(current, [])) == 1:
        op = consumers[current][0]
        kind = _ARITHMETIC.get(op.builtin)
        if kind is None or len(op.inputs) != 2 or op.options.get("fused_activation_function", "NONE") != "NONE":
            break
        other = graph.tensors[op.inputs[1] if op.inputs[0] == current else op.inputs[0]]
        data = model.buffer_bytes(other.buffer) if other.buffer else b""
        if (kind in ("Sub", "Div") and op.inputs[0] != current) or not data or other.dtype not in _DTYPES:
            break
        values = np.frombuffer(data, _DTYPES[other.dtype]).reshape(other.shape or [1])
        value = per_channel(values, len(image.shape), -1, image.channels)
        if value is None or not affine.apply(kind, value, f"{op.builtin} '{graph.tensors[op.outputs[0]].name}'"):
            break
        current = op.outputs[0]
    return affine.normalization(image.channels, "constant ops at the TFLite graph entry")


def _per_channel(values: list[float], channels: int) -> list[float]:
    return [float(v) for v in values] if len(values) == channels else [float(values[0])] * channels
