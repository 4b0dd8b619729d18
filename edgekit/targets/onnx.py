"""ONNX target: the fp32 interchange model, and int8 QDQ through ONNX Runtime's static quantizer."""
from __future__ import annotations

import shutil
from pathlib import Path

from .. import deps
from ..bridges.base import ConvertContext
from ..frames import to_layout
from ..sources.base import SourceModel
from ..sources.onnx import OnnxSource, load_checked
from .base import Target, TargetOutput, register


@register
class OnnxTarget(Target):
    name = "onnx"
    suffix = ".onnx"
    precisions = ("fp32", "int8")
    accepts = ("onnx",)
    requires = ("onnx", "onnxruntime")
    runtime = "onnxruntime"

    def convert(self, model: SourceModel, precision: str, artifact: Path, ctx: ConvertContext) -> TargetOutput:
        converters = {"onnx": deps.version("onnx") or "?"}
        if precision == "fp32":
            shutil.copyfile(model.path, artifact)
        else:
            from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                                  quantize_static)
            from onnxruntime.quantization.shape_inference import quant_pre_process

            name = model.inputs()[0].name
            samples = to_layout(ctx.calibration, model.layout)

            class Reader(CalibrationDataReader):
                def __init__(self):
                    self._it = iter(samples)

                def get_next(self):
                    sample = next(self._it, None)
                    return None if sample is None else {name: sample[None]}

            prepared = artifact.with_name(artifact.stem + ".prep.onnx")
            quant_pre_process(str(model.path), str(prepared), skip_symbolic_shape=True)
            quantize_static(str(prepared), str(artifact), Reader(), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
            prepared.unlink()
            converters["onnxruntime"] = deps.version("onnxruntime") or "?"
        result = OnnxSource(artifact, load_checked(artifact))
        return TargetOutput(files=[artifact], inputs=result.inputs(), outputs=result.outputs(),
                            converters=converters, layout=model.layout)
