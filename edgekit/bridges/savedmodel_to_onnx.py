"""SavedModel -> ONNX with tf2onnx (Keras models reach ONNX and ONNX Runtime this way)."""
from __future__ import annotations

from pathlib import Path

from ..sources.base import SourceModel
from ..sources.onnx import OnnxSource, load_checked
from .base import Bridge, ConvertContext, register
from .tf2onnx_cli import run_tf2onnx


@register
class SavedModelToOnnx(Bridge):
    name = "savedmodel-to-onnx"
    src, dst = "savedmodel", "onnx"
    tool = "tf2onnx"
    requires = ("tf2onnx", "tensorflow", "onnx")

    def convert(self, source: SourceModel, workdir: Path, ctx: ConvertContext) -> SourceModel:
        path = workdir / "from_savedmodel.onnx"
        run_tf2onnx(["--saved-model", str(source.path), "--signature_def", source.signature_key], path)
        return OnnxSource(path, load_checked(path))
