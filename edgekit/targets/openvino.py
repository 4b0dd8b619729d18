"""OpenVINO IR target: fp32, fp16 (compressed weights) and int8 (NNCF post-training quantization)."""
from __future__ import annotations

from pathlib import Path

from .. import deps
from ..bridges.base import ConvertContext
from ..errors import ConversionError, summary
from ..formats import FORMATS
from ..manifest import TensorInfo
from ..frames import to_layout
from ..modelcard import for_artifact
from ..sources.base import SourceModel
from ..ui import step
from .base import Target, TargetOutput, register


@register
class OpenVINOTarget(Target):
    name = "openvino"
    format = "openvino"
    precisions = ("fp32", "fp16", "int8")
    accepts = ("onnx", "tflite", "savedmodel")   # OpenVINO's own frontends
    requires = ("openvino",)

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

            from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

            samples = to_layout(ctx.calibration, model.layout)
            dataset = nncf.Dataset([sample[None] for sample in samples])
            # Intel CPUs without VNNI (AVX2/AVX-512F) sum u8*s8 pairs in int16 and saturate; NNCF's
            # default 7-bit fix covers the first layer only, but ReLU6-fed 1x1 convs saturate too
            # (EfficientNet-Lite0: cosine 0.92 -> 0.99). ENABLE = 7-bit weights wherever channels
            # are summed; full bias correction wins back what the lost bit costs.
            with step(f"NNCF int8 quantization ({len(samples)} calibration samples)"):
                ov_model = nncf.quantize(ov_model, dataset, subset_size=len(samples), fast_bias_correction=False,
                                         advanced_parameters=AdvancedQuantizationParameters(
                                             overflow_fix=OverflowFix.ENABLE))
            converters["nncf"] = deps.version("nncf") or "?"
        write_card(ov_model, ctx)
        ov.save_model(ov_model, str(artifact), compress_to_fp16=(precision == "fp16"))
        return TargetOutput(files=[*FORMATS.get(self.format).companions(artifact), artifact],
                            inputs=[_info(p) for p in ov_model.inputs],
                            outputs=[_info(p) for p in ov_model.outputs],
                            converters=converters, layout=model.layout)


def _info(port) -> TensorInfo:
    return TensorInfo(port.get_any_name(), [int(d) for d in port.get_partial_shape().to_shape()],
                      port.get_element_type().to_dtype().name)


def write_card(ov_model, ctx: ConvertContext) -> None:
    """The model card into the IR's rt_info under `model_info` (the section OpenVINO's Model API
    reads): name, description, author, license, version, and `inputs`/`outputs` descriptions keyed
    by the IR's tensor names. Port rt_info is not serialized, so descriptions live here."""
    card = ctx.card
    for key in ("name", "description", "author", "license", "version"):
        if getattr(card, key):
            ov_model.set_rt_info(getattr(card, key), ["model_info", key])
    for kind, described, source, ports in (("inputs", card.inputs, ctx.source_inputs, ov_model.inputs),
                                           ("outputs", card.outputs, ctx.source_outputs, ov_model.outputs)):
        shapes = [[int(d) for d in p.get_partial_shape().to_shape()] for p in ports]
        for port, text in zip(ports, for_artifact(described, source, shapes)):
            if text:
                ov_model.set_rt_info(text, ["model_info", kind, port.get_any_name()])
