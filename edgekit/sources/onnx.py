"""ONNX source: validated with onnx's checker before any native runtime sees it."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..deps import require
from ..errors import REMEDY_REEXPORT, ModelFormatError, summary
from ..manifest import TensorInfo
from .base import SOURCES, SourceModel, static_shape

_ONNX_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64", 9: "bool", 10: "float16", 11: "float64"}


def load_checked(path: Path):
    """onnx.load + structural check; corrupt or truncated protobufs become ModelFormatError."""
    onnx = require("onnx", "reading ONNX models")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends
        raise ModelFormatError(f"{path} is not a valid ONNX model (truncated or corrupt: "
                               f"{type(exc).__name__})", REMEDY_REEXPORT) from None
    if not model.graph.node or not model.graph.input:
        raise ModelFormatError(f"{path} parses as protobuf but holds no ONNX graph", REMEDY_REEXPORT)
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise ModelFormatError(f"{path} fails the ONNX checker: {summary(exc)}", REMEDY_REEXPORT) from None
    return model


@SOURCES.register("onnx")
class OnnxSource(SourceModel):
    kind = "onnx"

    def __init__(self, path: Path, model, input_size: list[int] | None = None):
        super().__init__(path)
        self.model = model
        initializers = {i.name for i in model.graph.initializer}
        self._graph_inputs = [i for i in model.graph.input if i.name not in initializers]
        first = _dims(self._graph_inputs[0])
        self.layout = "NCHW" if len(first) == 4 and first[1] in (1, 3) else "NHWC"
        if len(first) == 4:
            spatial = first[2:4] if self.layout == "NCHW" else first[1:3]
            if all(isinstance(d, int) and d > 0 for d in spatial):
                self.facts.preprocess["input_size"] = list(spatial)
        self.facts.preprocess["layout"] = self.layout
        self._session = None

    @classmethod
    def from_path(cls, path: Path, input_shape=None) -> OnnxSource:
        return cls(path, load_checked(path))

    def inputs(self) -> list[TensorInfo]:
        size = self.spatial_size()
        return [TensorInfo(i.name, static_shape(_dims(i), self.layout, size), _dtype(i)) for i in self._graph_inputs]

    def outputs(self) -> list[TensorInfo]:
        return [TensorInfo(o.name, [d if isinstance(d, int) else -1 for d in _dims(o)], _dtype(o))
                for o in self.model.graph.output]

    def infer(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        if self._session is None:
            ort = require("onnxruntime", "running ONNX models")
            self._session = ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        names = [i.name for i in self._session.get_inputs()]
        return self._session.run(None, dict(zip(names, feeds)))


def _dims(value_info) -> list[int | None]:
    dims = value_info.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else None for d in dims]


def _dtype(value_info) -> str:
    return _ONNX_DTYPES.get(value_info.type.tensor_type.elem_type, "float32")
