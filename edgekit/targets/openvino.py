"""OpenVINO IR target: fp32, fp16 (compressed weights) and int8 (NNCF post-training quantization)."""
from __future__ import annotations

from pathlib import Path

from .. import deps
from ..bridges.base import ConvertContext
from ..errors import ConversionError, UnsupportedRouteError, summary
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
        if model.kind == "tflite":
            from ..bridges.tflite_to_onnx import CUSTOM_OP_REMEDY
            from ..tflite_model import custom_op_problem

            problem = custom_op_problem(model.model)
            if problem:   # OpenVINO's TFLite frontend would fail with "no translator" and no op name
                raise UnsupportedRouteError(problem, CUSTOM_OP_REMEDY)
        try:
            ov_model = ov.convert_model(str(model.path), input=shapes)
        except Exception as exc:
            raise ConversionError(f"OpenVINO could not read {model.describe()}: {summary(exc)}",
                                  "check the model with its own framework first") from None
        converters = {"openvino": deps.version("openvino") or "?"}
        if precision == "int8":
            nncf = deps.require("nncf", "OpenVINO int8 quantization")

            from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

            samples = to_layout(ctx.calibration, model.layout)
            dataset = nncf.Dataset([sample[None] for sample in samples])
            # Intel CPUs without VNNI (AVX2/AVX-512F) sum u8*s8 pairs in int16 and saturate; NNCF's
            # default 7-bit fix covers the first layer only, but ReLU6-fed 1x1 convs saturate too
            # (EfficientNet-Lite0: cosine 0.92 -> 0.99). ENABLE = 7-bit weights wherever channels
            # are summed; full bias correction wins back what the lost bit costs.
            ov_model = nncf.quantize(ov_model, dataset, subset_size=len(samples), fast_bias_correction=False,
                                     advanced_parameters=AdvancedQuantizationParameters(
                                         overflow_fix=OverflowFix.ENABLE))
            converters["nncf"] = deps.version("nncf") or "?"
        ov.save_model(ov_model, str(artifact), compress_to_fp16=(precision == "fp16"))
        weights = artifact.with_suffix(".bin")
        return TargetOutput(files=[weights, artifact],
                            inputs=[_info(p) for p in ov_model.inputs],
                            outputs=[_info(p) for p in ov_model.outputs],
                            converters=converters, layout=model.layout)


def _info(port) -> TensorInfo:
    """A port's name, shape (-1 where the size is computed at run time: NMS outputs) and dtype."""
    shape = [d.get_length() if d.is_static else -1 for d in port.get_partial_shape()]
    return TensorInfo(port.get_any_name(), shape, port.get_element_type().to_dtype().name)
