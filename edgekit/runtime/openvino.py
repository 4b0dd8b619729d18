"""OpenVINO runtime: CPU, GPU, NPU, AUTO."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..manifest import TensorInfo
from .base import BACKENDS, Runner


@BACKENDS.register("openvino")
class OpenVINORunner(Runner):
    backend = "openvino"
    formats = ("openvino", "onnx", "tflite")
    requires = ("openvino",)

    def __init__(self, path: Path, device: str | None = None):
        super().__init__(path, device or "CPU")
        import openvino as ov

        core = ov.Core()
        self.compiled = core.compile_model(str(self.path), self.device)
        self.request = self.compiled.create_infer_request()
        self.inputs = [_info(p) for p in self.compiled.inputs]
        self.outputs = [_info(p) for p in self.compiled.outputs]

    def _infer(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        result = self.request.infer(arrays)
        return [np.array(result[port]) for port in self.compiled.outputs]


def _info(port) -> TensorInfo:
    try:
        name = port.get_any_name()
    except RuntimeError:
        name = f"port_{port.get_index()}"
    return TensorInfo(name, [int(d) for d in port.get_partial_shape().to_shape()],
                      port.get_element_type().to_dtype().name)
