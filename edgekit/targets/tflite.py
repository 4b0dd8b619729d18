"""TFLite target (LiteRT): fp32, fp16, dynamic-range and full-integer int8.

The int8 output is Edge TPU-ready by construction: TFLITE_BUILTINS_INT8 only (conversion fails
rather than leaving float ops), uint8 or int8 I/O, static shapes, batch 1.
"""
from __future__ import annotations

from pathlib import Path

from .. import deps
from ..bridges.base import ConvertContext
from ..errors import CalibrationError, ConversionError, EdgekitError, summary
from ..sources.base import SourceModel
from ..sources.tflite import tensor_info
from ..tflite_model import read_tflite
from .base import Target, TargetOutput, register

INT8_IO_TYPES = ("uint8", "int8")


def _static_converter(tf, model: SourceModel):
    """A converter over the serving signature traced at the static input shapes, so a SavedModel
    exported with a dynamic batch still yields batch-1, static-shape TFLite (Edge TPU needs it)."""
    specs = [tf.TensorSpec(t.shape, tf.float32, name=t.name) for t in model.inputs()]
    names = [t.name for t in model.inputs()]
    concrete = tf.function(lambda *xs: model.signature(**dict(zip(names, xs)))).get_concrete_function(*specs)
    return tf.lite.TFLiteConverter.from_concrete_functions([concrete], model.trackable)


@register
class TFLiteTarget(Target):
    name = "tflite"
    suffix = ".tflite"
    precisions = ("fp32", "fp16", "dynamic", "int8")
    accepts = ("savedmodel",)
    requires = ("tensorflow", "ai_edge_litert")
    runtime = "litert"

    def convert(self, model: SourceModel, precision: str, artifact: Path, ctx: ConvertContext) -> TargetOutput:
        import tensorflow as tf

        converter = _static_converter(tf, model)
        io_type = ctx.options.get("int8_io", "uint8")
        if precision == "fp16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif precision == "dynamic":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        elif precision == "int8":
            if io_type not in INT8_IO_TYPES:
                raise EdgekitError(f"unknown int8 I/O type '{io_type}'", f"choose one of {', '.join(INT8_IO_TYPES)}")
            if ctx.calibration is None:
                raise CalibrationError("int8 needs calibration data", "pass --calib")
            if len(model.inputs()) != 1:
                raise ConversionError("int8 calibration supports single-input models only",
                                      "export the model with one image input")
            samples = ctx.calibration
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([sample[None]] for sample in samples)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = getattr(tf, io_type)
            converter.inference_output_type = getattr(tf, io_type)
        try:
            flatbuffer = converter.convert()
        except Exception as exc:
            raise ConversionError(f"TFLite conversion ({precision}) failed: {summary(exc, last=True)}",
                                  "ops that have no full-integer kernel cannot be quantized to int8"
                                  if precision == "int8" else "see the TensorFlow converter log") from None
        artifact.write_bytes(flatbuffer)
        parsed = read_tflite(artifact)
        if precision == "int8":
            floats = parsed.float_ops()
            if floats:   # name the blocking ops: the converter kept them float (no int8 kernel)
                names = ", ".join(dict.fromkeys(op.name for op in floats))
                raise ConversionError(f"the int8 model keeps {len(floats)} float op(s): {names}",
                                      "they have no full-integer kernel; move them out of the model (post-processing "
                                      "on the CPU) or convert to openvino/onnx")
            dynamic = parsed.dynamic_tensors()
            if dynamic:
                raise ConversionError(f"the int8 model has tensors of run-time size, first '{dynamic[0].name}' "
                                      f"{dynamic[0].shape_signature}", "export the model with static shapes")
        options = {"int8_io": io_type} if precision == "int8" else {}
        return TargetOutput(files=[artifact], inputs=[tensor_info(t) for t in parsed.inputs()],
                            outputs=[tensor_info(t) for t in parsed.outputs()],
                            converters={"tensorflow": deps.version("tensorflow") or "?"},
                            options=options, layout="NHWC")
