"""TFLite target (LiteRT): fp32, fp16, dynamic-range and full-integer int8.

The int8 output is Edge TPU-ready by construction: TFLITE_BUILTINS_INT8 only (conversion fails
rather than leaving float ops), uint8 or int8 I/O, static shapes, batch 1.
"""
from __future__ import annotations

import re
from pathlib import Path

from .. import deps
from ..bridges.base import ConvertContext
from ..errors import BadInput, ConversionError
from ..manifest import INT8_IO_TYPES
from ..modelcard import for_artifact
from ..sources.base import SourceModel
from ..sources.tflite import tensor_info
from ..tflite_model import parse_tflite, read_tflite
from ..upstream import tflite_converter_error
from .base import Target, TargetOutput, register


def _static_converter(tf, model: SourceModel):
    """A converter over the serving signature traced at the static input shapes, so a SavedModel
    exported with a dynamic batch still yields batch-1, static-shape TFLite (Edge TPU needs it);
    and that concrete function, whose graph names the layer of an op the converter refuses."""
    specs = [tf.TensorSpec(t.shape, tf.as_dtype(t.dtype), name=t.name) for t in model.inputs()]
    names = [t.name for t in model.inputs()]
    concrete = tf.function(lambda *xs: model.signature(**dict(zip(names, xs)))).get_concrete_function(*specs)
    return tf.lite.TFLiteConverter.from_concrete_functions([concrete], model.trackable), concrete


@register
class TFLiteTarget(Target):
    name = "tflite"
    format = "tflite"
    precisions = ("fp32", "fp16", "dynamic", "int8")
    accepts = ("savedmodel",)
    requires = ("tensorflow", "ai_edge_litert")
    keeps_postprocess_op = True   # Coral's SSD layout: int8 body, then TFLite_Detection_PostProcess on the CPU

    def convert(self, model: SourceModel, precision: str, artifact: Path, ctx: ConvertContext) -> TargetOutput:
        import tensorflow as tf

        converter, traced = _static_converter(tf, model)
        io_type = ctx.int8_io
        if precision == "fp16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif precision == "dynamic":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        elif precision == "int8":
            if io_type not in INT8_IO_TYPES:
                raise BadInput(f"unknown int8 I/O type '{io_type}'", f"choose one of {', '.join(INT8_IO_TYPES)}")
            samples = ctx.calibration_feeds(model.inputs(), "NHWC")   # one list per sample, in input order
            names = [t.name for t in model.inputs()]
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            # several inputs go by signature name: the calibrator's positional order is the float
            # flatbuffer's, which need not be the signature's
            converter.representative_dataset = (lambda: iter(samples)) if len(names) == 1 else \
                (lambda: (dict(zip(names, sample)) for sample in samples))
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = getattr(tf, io_type)
            converter.inference_output_type = getattr(tf, io_type)
        try:
            flatbuffer = converter.convert()
        except Exception as exc:   # the TensorFlow op without a TFLite kernel, named, else the cause line
            raise tflite_converter_error(exc, precision, traced.graph) from None
        if ctx.postprocess is not None:   # the source's TFLite_Detection_PostProcess, back after the body
            flatbuffer = _with_postprocess(flatbuffer, ctx, model)
        artifact.write_bytes(with_card(flatbuffer, ctx))
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
        return TargetOutput(files=[artifact], inputs=[tensor_info(t) for t in parsed.inputs()],
                            outputs=[tensor_info(t) for t in parsed.outputs()],
                            converters={"tensorflow": deps.version("tensorflow") or "?"},
                            layout="NHWC", int8_io=io_type if precision == "int8" else None)


def _with_postprocess(flatbuffer: bytes, ctx: ConvertContext, model: SourceModel) -> bytes:
    """FLATBUFFER (the converted body) with the source's post-processing op spliced back on; the
    sample images (verify or calibration; else seeded noise) tell which body output feeds which input."""
    import numpy as np

    from ..tflite_postprocess import splice

    samples = ctx.sample_images   # the verify or calibration images (set whenever either is)
    if samples is None:
        shape = model.inputs()[0].shape
        samples = np.random.default_rng(0).uniform(-1, 1, (4, *shape[1:])).astype(np.float32)
    try:
        return splice(flatbuffer, ctx.postprocess, samples)
    except ValueError as exc:
        raise ConversionError(f"could not put {ctx.postprocess.describe()} back: {exc}",
                              "convert to openvino or onnx, which keep the model whole") from None


LABELS_FILE = "labels.txt"


def with_card(flatbuffer: bytes, ctx: ConvertContext) -> bytes:
    """The model with TFLite Metadata, as tflite-support's metadata writers lay it out: the model
    card (name, description, version, author, license), per-tensor descriptions, the image
    input's normalization (mean/std in 0-255 pixel units), colour space and value range, and a
    classifier's labels as an associated TENSOR_AXIS_LABELS file: what ML Kit, the Task Library
    and Android Studio's model binding read (tensorflow_lite_support/metadata/metadata_schema.fbs)."""
    from ..tflite_metadata import ModelMetadata, TensorMeta, write_metadata

    model = parse_tflite(flatbuffer, "the converted model")
    ins, outs = model.inputs(), model.outputs()
    card, pre = ctx.card, ctx.preprocess
    inputs = []
    texts = for_artifact(card.inputs, ctx.source_inputs, [t.shape for t in ins])
    for position, (tensor, text) in enumerate(zip(ins, texts)):
        meta = TensorMeta(name=_display_name(ctx.source_inputs, position, tensor.name), description=text)
        channels = tensor.shape[-1] if len(tensor.shape) == 4 else None
        if channels in (1, 3):  # an image: normalization and colour space apply
            meta.color_space = "GRAYSCALE" if channels == 1 else "RGB" if pre.color_order == "RGB" else "UNKNOWN"
            meta.mean, meta.std = list(pre.mean[:channels]), list(pre.std[:channels])
            if tensor.dtype == "float32":  # the normalized range; integer inputs carry quantization instead
                meta.min = [(0.0 - m) / s for m, s in zip(meta.mean, meta.std)]
                meta.max = [(255.0 - m) / s for m, s in zip(meta.mean, meta.std)]
        inputs.append(meta)
    outputs, files = [], {}
    texts = for_artifact(card.outputs, ctx.source_outputs, [t.shape for t in outs])
    for position, (tensor, text) in enumerate(zip(outs, texts)):
        meta = TensorMeta(name=_display_name(ctx.source_outputs, position, tensor.name), description=text)
        if ctx.task == "classification" and len(outs) == 1 and ctx.labels and len(ctx.labels) == tensor.shape[-1]:
            meta.associated_files = [{"name": LABELS_FILE, "type": "TENSOR_AXIS_LABELS",
                                      "description": "the class label of each score"}]
            files[LABELS_FILE] = ("\n".join(ctx.labels) + "\n").encode()
        outputs.append(meta)
    metadata = ModelMetadata(name=card.name, description=card.description, version=card.version,
                             author=card.author, license=card.license, inputs=inputs, outputs=outputs)
    return write_metadata(flatbuffer, metadata, files)


def _display_name(source: list, position: int, fallback: str) -> str:
    """The source tensor's name (what the user knows it by) as an identifier for code generators."""
    name = source[position].name if position < len(source) else fallback
    return re.sub(r"\W", "_", name.split(":")[0]).strip("_") or fallback
