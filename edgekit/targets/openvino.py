"""OpenVINO IR target: fp32, fp16 (compressed weights) and int8 (NNCF post-training quantization)."""
from __future__ import annotations

from pathlib import Path

from .. import deps
from ..bridges.base import ConvertContext
from ..errors import ConversionError, summary
from ..manifest import TensorInfo
from ..preprocess import to_layout
from ..sources.base import SourceModel
from .base import Target, TargetOutput, register


@register
class OpenVINOTarget(Target):
    name = "openvino"
    suffix = ".xml"
    precisions = ("fp32", "fp16", "int8")
    accepts = ("onnx", "tflite", "savedmodel")   # OpenVINO's own frontends
    requires = ("openvino",)
    runtime = "openvino"

    def convert(self, model: SourceModel, precision: str, artifact: Path, ctx: ConvertContext) -> TargetOutput:
        import openvino as ov

        shapes = [t.shape for t in model.inputs()]   # static: some devices (NPU, MYRIAD) compile nothing else
        try:
            ov_model = ov.convert_model(str(model.path), input=shapes)
        except Exception as exc:
            raise ConversionError(f"OpenVINO could not read {model.describe()}: {summary(exc)}",
                                  "check the model with its own framework first") from None
        converters = {"openvino": deps.version("openvino") or "?"}
        if precision == "int8":
            nncf = deps.require("nncf", "OpenVINO int8 quantization")

            samples = to_layout(ctx.calibration, model.layout)
            dataset = nncf.Dataset([sample[None] for sample in samples])
            ov_model = nncf.quantize(ov_model, dataset, subset_size=len(samples))
            converters["nncf"] = deps.version("nncf") or "?"
        ov.save_model(ov_model, str(artifact), compress_to_fp16=(precision == "fp16"))
        weights = artifact.with_suffix(".bin")
        return TargetOutput(files=[weights, artifact],
                            inputs=[_info(p) for p in ov_model.inputs],
                            outputs=[_info(p) for p in ov_model.outputs],
                            converters=converters, layout=model.layout)


def _info(port) -> TensorInfo:
    return TensorInfo(port.get_any_name(), [int(d) for d in port.get_partial_shape().to_shape()],
                      port.get_element_type().to_dtype().name)
