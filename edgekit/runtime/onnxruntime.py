"""ONNX Runtime on the CPU: the reference backend."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..manifest import TensorInfo
from ..sources.onnx import load_checked
from .base import BACKENDS, Runner

_ORT_TYPES = {"tensor(float)": "float32", "tensor(uint8)": "uint8", "tensor(int8)": "int8",
              "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(float16)": "float16"}


@BACKENDS.register("onnxruntime")
class OnnxRuntimeRunner(Runner):
    backend = "onnxruntime"
    formats = ("onnx",)
    requires = ("onnxruntime",)

    def __init__(self, path: Path, device: str | None = None):
        super().__init__(path, device)
        load_checked(self.path)  # the checker runs before the native session parses the file
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        self.inputs = [_info(a) for a in self.session.get_inputs()]
        self.outputs = [_info(a) for a in self.session.get_outputs()]

    def _infer(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None, {t.name: a for t, a in zip(self.inputs, arrays)})


def _info(arg) -> TensorInfo:
    shape = [d if isinstance(d, int) else 1 for d in arg.shape]
    return TensorInfo(arg.name, shape, _ORT_TYPES.get(arg.type, "float32"))
