"""PyTorch -> ONNX with torch.onnx.export.

nn.Modules and torch.export programs go through the dynamo exporter (clean graphs, pads
folded into convs); TorchScript modules, which torch.export cannot re-trace, through the
TorchScript exporter.
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

from ..errors import ConversionError, summary
from ..sources.base import SourceModel
from ..sources.onnx import OnnxSource, load_checked
from .base import Bridge, ConvertContext, register

OPSET = 18


@register
class TorchToOnnx(Bridge):
    name = "torch-to-onnx"
    src, dst = "torch", "onnx"
    tool = "torch"
    requires = ("torch", "onnx", "onnxscript")

    def convert(self, source: SourceModel, workdir: Path, ctx: ConvertContext) -> SourceModel:
        import torch

        path = workdir / "model.onnx"
        example = torch.zeros(source.inputs()[0].shape, dtype=torch.float32)
        names = [o.name for o in source.outputs()]
        scripted = isinstance(source.module, torch.jit.ScriptModule)
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # torchvision-op registration chatter
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(source.module, (example,), str(path), input_names=["input"],
                                  output_names=names, opset_version=OPSET if not scripted else 17,
                                  dynamo=not scripted, external_data=False, verbose=False)
        except Exception as exc:
            raise ConversionError(f"torch.onnx.export failed: {type(exc).__name__}: {summary(exc)}",
                                  "check that the model exports with torch.onnx.export on its own") from None
        return OnnxSource(path, load_checked(path))
