"""OpenVINO runtime: CPU, GPU, NPU, AUTO."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..manifest import TensorInfo, read_manifest
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
        self.inputs = _with_quantization([_info(p) for p in self.compiled.inputs], self.path, "inputs")
        self.outputs = _with_quantization([_info(p) for p in self.compiled.outputs], self.path, "outputs")

    def _infer(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        result = self.request.infer(arrays)
        return [np.array(result[port]) for port in self.compiled.outputs]


def _with_quantization(infos: list[TensorInfo], path: Path, side: str) -> list[TensorInfo]:
    """OpenVINO reports a quantized TFLite's u8/i8 I/O without scale and zero point; the
    manifest has them, so quantize/dequantize stay right when OpenVINO runs a .tflite."""
    manifest = read_manifest(path)
    recorded = getattr(manifest, side, []) if manifest else []
    if len(recorded) == len(infos):
        for info, known in zip(infos, recorded):
            if info.quantization is None and known.quantization and info.dtype == known.dtype:
                info.quantization = known.quantization
    return infos


def _info(port) -> TensorInfo:
    try:
        name = port.get_any_name()
    except RuntimeError:
        name = f"port_{port.get_index()}"
    return TensorInfo(name, [int(d) for d in port.get_partial_shape().to_shape()],
                      port.get_element_type().to_dtype().name)
