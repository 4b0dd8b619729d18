"""TFLite -> ONNX with tf2onnx: lets a float .tflite (SDK and AutoML exports) reach OpenVINO's
ONNX path, ONNX Runtime, and onnx2tf for full-integer requantization."""
from __future__ import annotations

from pathlib import Path

from ..errors import UnsupportedRouteError
from ..sources.base import SourceModel
from ..sources.onnx import OnnxSource, load_checked
from .base import Bridge, ConvertContext, register
from .tf2onnx_cli import run_tf2onnx


@register
class TFLiteToOnnx(Bridge):
    name = "tflite-to-onnx"
    src, dst = "tflite", "onnx"
    tool = "tf2onnx"
    requires = ("tf2onnx", "tensorflow", "onnx")

    def convert(self, source: SourceModel, workdir: Path, ctx: ConvertContext) -> SourceModel:
        if not source.is_float():
            raise UnsupportedRouteError(f"{source.path} is already quantized; re-quantizing an integer model "
                                        "compounds rounding error", "convert from the float model")
        path = workdir / "from_tflite.onnx"
        run_tf2onnx(["--tflite", str(source.path)], path)
        return OnnxSource(path, load_checked(path))
