"""Core ML target: mlprogram fp32 / fp16, and int8 linear weight quantization.

Frontends: coremltools' PyTorch frontend (a traced module) for `torch`, its TensorFlow 2 frontend
(a concrete function at the static input shape) for `keras` and `savedmodel`; ONNX and TFLite
sources reach a SavedModel through the bridges (onnx2tf, tf2onnx). coremltools 9 converts
TensorFlow 2.19 graphs although its compatibility table stops at 2.12 (tried: Keras 3
MobileNetV2/V3, EfficientNetV2 with their built-in Rescaling/Normalization layers).

The input is an ImageType carrying the manifest's normalization (`input = pixel * scale + bias`;
one scale for all channels, so a per-channel std is folded into the program), so Core ML users
pass a picture; classifiers get a ClassifierConfig with the labels. The program handed to
coremltools (traced module or concrete function) is run on the verify inputs, with the
ImageType's arithmetic applied to the pixels, and compared with the source: on Linux, where Core
ML cannot predict, that check plus the structural check of the package is the proof.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import numpy as np

from .. import deps
from ..bridges.base import ConvertContext
from ..errors import ConversionError, EdgekitError, UnsupportedRouteError, summary
from ..formats.coreml import class_labels, describe
from ..manifest import Preprocess, VerifyReport
from ..modelcard import positional
from ..upstream import missing_op_remedy
from ..sources.base import SourceModel
from .base import Target, TargetOutput, register

INPUT_NAME = "image"


@register
class CoreMLTarget(Target):
    name = "coreml"
    format = "coreml"
    precisions = ("fp32", "fp16", "int8")
    calibrated = ()   # int8 is linear weight quantization: no activation ranges, no --calib
    accepts = ("torch", "keras", "savedmodel")   # coremltools' PyTorch and TensorFlow 2 frontends
    requires = ("coremltools",)                  # plus torch or tensorflow, whichever the route needs

    def convert(self, model: SourceModel, precision: str, artifact: Path, ctx: ConvertContext) -> TargetOutput:
        """Convert `model` (a torch, keras or savedmodel form, batch 1) to an mlprogram package at
        `artifact`: each image input an ImageType (RGB/BGR for 3 channels, GRAYSCALE for 1, a
        channel-less [1, H, W] input too), each tensor input a TensorType. Raises ConversionError
        naming the op coremltools cannot convert, or MissingDependencyError when the frontend's
        framework is absent."""
        os.environ.setdefault("TQDM_DISABLE", "1")  # coremltools' per-pass bars would drown ours
        ct = deps.require("coremltools", "Core ML conversion")
        roles = model.static_inputs()
        pre = ctx.preprocess
        scale, bias, fold = _image_normalization(pre)
        if len({r.channels for r in roles if r.kind == "image"}) > 1:   # one preprocess, one channel count
            raise UnsupportedRouteError("edgekit's Core ML target takes image inputs of one channel count; the model "
                                        "mixes greyscale and colour images",
                                        "convert it to tflite, openvino or onnx")
        names = _input_names(roles)
        images = any(r.kind == "image" for r in roles)
        if model.kind == "torch":
            program, run, frontend = _torch_program(model, pre, fold, roles, names)
        else:
            program, run, frontend = _tensorflow_program(model, pre, fold, roles, names)
        step = (f"{frontend} {'traced module' if frontend == 'torch' else 'concrete function'} → coremltools"
                + (" (with the ImageType's scale/bias)" if images else ""))
        checked = ctx.check(step, frontend, lambda feeds: run(
            [_program_input(f, pre, scale, bias) if r.kind == "image" else f for f, r in zip(feeds, roles)]))
        inputs = [_input_type(ct, role, name, model.kind, pre, scale, bias) for role, name in zip(roles, names)]
        outputs = model.outputs()
        classifier = None
        if ctx.task == "classification" and len(outputs) == 1:  # without labels, Core ML reports class indices
            classes = outputs[0].shape[-1]
            classifier = ct.ClassifierConfig(class_labels(list(ctx.labels)) if len(ctx.labels) == classes
                                             else list(range(classes)))
        try:
            mlmodel = ct.convert(program, source="pytorch" if model.kind == "torch" else "tensorflow",
                                 inputs=inputs, classifier_config=classifier, convert_to="mlprogram",
                                 compute_precision=ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16,
                                 minimum_deployment_target=ct.target.iOS16)
            if precision == "int8":
                from coremltools.optimize import coreml as cto

                config = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(mode="linear_symmetric"))
                # all-zero weight channels get scale 0: coremltools divides 0/0, but the stored
                # scale of 0 dequantizes them back to exact zeros, so the warning is noise
                with np.errstate(divide="ignore", invalid="ignore"):
                    mlmodel = cto.linear_quantize_weights(mlmodel, config)
        except Exception as exc:
            raise _conversion_error(exc, frontend) from None
        weights = "int8" if precision == "int8" else precision
        notes = []
        if precision == "int8" and not _quantized_consts(mlmodel.get_spec()):
            weights = "fp16"
            notes.append("Core ML int8: no weight tensor has 2048 or more elements (coremltools' threshold for "
                         "linear_quantize_weights), so every weight stays fp16: the package is the fp16 one")
        write_card(mlmodel, ctx, precision, roles, names)
        mlmodel.save(str(artifact))
        inputs, outputs = describe(mlmodel.get_spec())
        versions = {"coremltools": deps.version("coremltools") or "?"}
        return TargetOutput(files=[artifact], inputs=inputs, outputs=outputs, converters=versions,
                            options={"image_input": images, "normalization_in_model": images,
                                     "frontend": frontend, "weights": weights},
                            layout="NCHW", checked=[checked] if checked else [], notes=notes)

    def structure_check(self, artifact: Path, output: TargetOutput) -> VerifyReport | None:
        if sys.platform == "darwin":
            return None  # numbers are compared by the coreml runtime backend
        import coremltools as ct

        report = VerifyReport(status="structure-only", runtime="coremltools (spec only)",
                              notes=["numerics need macOS: Core ML prediction runs only there"])
        spec = ct.models.MLModel(str(artifact), skip_model_load=True).get_spec()
        inputs, outputs = describe(spec)
        problems = []
        if [(t.name, t.shape) for t in inputs] != [(t.name, t.shape) for t in output.inputs]:
            problems.append(f"inputs {inputs} differ from the manifest")
        if [t.name for t in outputs] != [t.name for t in output.outputs]:
            problems.append("outputs differ from the manifest")
        if problems:
            report.status = "fail"
            report.notes.extend(problems)
        return report


def _quantized_consts(spec) -> int:
    """How many weights of an mlprogram SPEC linear_quantize_weights stored in int8 (its
    constexpr_* dequantizing ops)."""
    return sum(op.type.startswith("constexpr_")
               for function in spec.mlProgram.functions.values()
               for block in function.block_specializations.values() for op in block.operations)


def _input_names(roles) -> list[str]:
    """Core ML input names: INPUT_NAME for a model with one image input (what Core ML users and
    edgekit's earlier packages know), else each source input's name made an identifier."""
    if len(roles) == 1 and roles[0].kind == "image":
        return [INPUT_NAME]
    names = []
    for role in roles:
        name = re.sub(r"\W", "_", role.name.split(":")[0]) or "input"
        name = f"input_{name}" if name[0].isdigit() else name
        names.append(name if name not in names else f"{name}_{len(names)}")
    return names


def _program_shape(role, frontend_kind: str) -> list[int]:
    """The shape the converted program's input takes: images NCHW for PyTorch, NHWC for
    TensorFlow, a channel-less [1, H, W] image with its one channel made explicit (an ImageType
    is rank 4); tensors as declared."""
    if role.kind != "image":
        return list(role.shape)
    height, width = role.spatial()
    return [1, role.channels, height, width] if frontend_kind == "torch" else [1, height, width, role.channels]


def _input_type(ct, role, name: str, frontend_kind: str, pre: Preprocess, scale: float, bias: list[float]):
    """coremltools input type of one source input (see CoreMLTarget.convert)."""
    shape = _program_shape(role, frontend_kind)
    if role.kind != "image":
        return ct.TensorType(name=name, shape=shape)
    if role.channels == 1:   # Coremltools: a GRAYSCALE image's bias is one float
        return ct.ImageType(name=name, shape=shape, scale=scale, bias=float(bias[0]),
                            color_layout=ct.colorlayout.GRAYSCALE)
    return ct.ImageType(name=name, shape=shape, scale=scale, bias=bias,
                        color_layout=ct.colorlayout.BGR if pre.color_order == "BGR" else ct.colorlayout.RGB)


def _image_normalization(pre: Preprocess) -> tuple[float, list[float], bool]:
    """ImageType (scale, bias, fold): one scale for all channels, so a per-channel std is folded
    into the program (fold=True: the program takes 0-255 pixels and normalizes them itself)."""
    std, mean = pre.std, pre.mean
    if len(set(std)) == 1:
        return 1.0 / std[0], [-m / std[0] for m in mean], False
    return 1.0, [0.0] * len(mean), True


def _program_input(normalized: np.ndarray, pre: Preprocess, scale: float, bias: list[float]) -> np.ndarray:
    """What Core ML hands the program for a verify sample: the sample's pixels (float32
    [1, H, W, C], un-normalized) through the ImageType's `pixel * scale + bias`."""
    channels = normalized.shape[-1] if normalized.ndim == 4 else 1
    std, mean = np.asarray(pre.std, np.float32)[:channels], np.asarray(pre.mean, np.float32)[:channels]
    pixels = normalized * std + mean
    return (pixels * np.float32(scale) + np.asarray(bias, np.float32)[:channels]).astype(np.float32)


def _torch_program(model: SourceModel, pre: Preprocess, fold: bool, roles, names: list[str]):
    """The traced module coremltools converts, and a runner taking the program inputs (images
    NHWC, tensors as declared)."""
    torch = deps.require("torch", "Core ML conversion from PyTorch")
    shapes = [_program_shape(r, "torch") for r in roles]
    module = _declared_shapes(torch, model.module, [list(t.shape) for t in model.inputs()], shapes)
    if fold:
        module = _normalizing(torch, module, pre, [r.kind == "image" for r in roles])
    with torch.no_grad():
        traced = torch.jit.trace(module, tuple(torch.zeros(s) for s in shapes)).eval()

    def run(xs: list[np.ndarray]) -> list[np.ndarray]:
        feeds = [torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2) if r.kind == "image" else x))
                 for x, r in zip(xs, roles)]
        with torch.no_grad():
            result = traced(*feeds)
        return [r.numpy() for r in (result if isinstance(result, (list, tuple)) else [result])]

    return traced, run, "torch"


def _declared_shapes(torch, inner, declared: list[list[int]], shapes: list[list[int]]):
    """INNER, or a module that reshapes each program input of SHAPES to its DECLARED shape first
    (a channel-less [1, H, W] image arrives as [1, 1, H, W])."""
    if declared == shapes:
        return inner

    class Reshape(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = inner

        def forward(self, *xs):
            return self.inner(*[x.reshape(shape) for x, shape in zip(xs, declared)])

    return Reshape().eval()


def _normalizing(torch, inner, pre: Preprocess, images: list[bool]):
    """A module computing `inner(*inputs)` with each NCHW image input (where IMAGES says)
    normalized first, `(x - mean) / std`."""

    class Normalize(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = inner
            self.register_buffer("mean", torch.tensor(pre.mean).view(1, -1, 1, 1))
            self.register_buffer("std", torch.tensor(pre.std).view(1, -1, 1, 1))

        def forward(self, *xs):
            return self.inner(*[(x - self.mean) / self.std if image else x for x, image in zip(xs, images)])

    return Normalize().eval()


def _tensorflow_program(model: SourceModel, pre: Preprocess, fold: bool, roles, names: list[str]):
    """The concrete function (static shapes, batch 1; images NHWC) coremltools converts, and its
    runner. Each input is reshaped to the model's declared shape inside (a channel-less image)."""
    tf = deps.require("tensorflow", "Core ML conversion from TensorFlow")
    declared = [list(t.shape) for t in model.inputs()]
    if model.kind == "keras":
        def call(xs):
            return model.model(xs if len(xs) > 1 else xs[0], training=False)
    else:
        outputs = model.output_names()
        source_names = [t.name for t in model.inputs()]

        def call(xs):
            result = model.signature(**dict(zip(source_names, xs)))
            return [result[name] for name in outputs]

    mean, std = tf.constant(pre.mean, tf.float32), tf.constant(pre.std, tf.float32)

    def program(*xs):
        xs = [tf.reshape(x, shape) for x, shape in zip(xs, declared)]
        if fold:
            xs = [(x - mean) / std if r.kind == "image" else x for x, r in zip(xs, roles)]
        result = call(xs)
        result = list(result) if isinstance(result, (list, tuple)) else [result]
        return result[0] if len(result) == 1 else result

    function = tf.function(program, autograph=False).get_concrete_function(
        *[tf.TensorSpec(_program_shape(r, "tensorflow"), tf.float32, name=name) for r, name in zip(roles, names)])

    def run(xs: list[np.ndarray]) -> list[np.ndarray]:
        result = function(*[tf.constant(x.reshape(_program_shape(r, "tensorflow"))) for x, r in zip(xs, roles)])
        return [np.asarray(r) for r in (result if isinstance(result, (list, tuple)) else [result])]

    return [function], run, "tensorflow"


# "Conversion for TF op 'Lgamma' not implemented.", "PyTorch convert function for op 'fft_fft2' not implemented."
_OP = re.compile(r"\bop '([^']+)'")


def _conversion_error(exc: Exception, frontend: str) -> EdgekitError:
    """coremltools' failure as one line; names the op when coremltools' message names it (a
    refusal, UnsupportedRouteError: Core ML lacks the op, and no retry changes that)."""
    text = str(exc)
    match = _OP.search(text)
    if match:
        op = match.group(1)
        return UnsupportedRouteError(f"coremltools cannot convert the {frontend} op '{op}' "
                                     f"({summary(exc, limit=160)})", missing_op_remedy(op))
    return ConversionError(f"coremltools could not convert the model: {type(exc).__name__}: {summary(exc)}",
                           f"check the model's ops against coremltools' {frontend} frontend, or convert to "
                           "tflite, openvino or onnx")


def write_card(mlmodel, ctx: ConvertContext, precision: str, roles, names: list[str]) -> None:
    """The model card into the fields Xcode shows: author, license, version, description, and
    per-feature descriptions (each input: ROLES, the source's, named NAMES in the package; the
    classifier's label and scores)."""
    card = ctx.card
    mlmodel.author = card.author
    mlmodel.license = card.license
    mlmodel.version = card.version
    mlmodel.short_description = card.description or f"edgekit {precision} conversion"
    if card.name:
        mlmodel.user_defined_metadata["name"] = card.name
    spec = mlmodel.get_spec()
    pre = ctx.preprocess
    given = positional(card.inputs, ctx.source_inputs) or [""] * len(roles)
    for role, name, text in zip(roles, names, given):
        if role.kind == "image":
            height, width = role.spatial()
            colour = "greyscale" if role.channels == 1 else pre.color_order
            text = text or f"{colour} image, {width}x{height} (resize: {pre.resize})"
        mlmodel.input_description[name] = text or f"{role.dtype} array {list(role.shape)}, taken as given"
    described = positional(card.outputs, ctx.source_outputs)
    label, scores = spec.description.predictedFeatureName, spec.description.predictedProbabilitiesName
    features = [f.name for f in spec.description.output if f.name != label]
    if label:
        mlmodel.output_description[label] = "the class label with the highest score"
    for name, text in zip(features, described):
        if text:
            mlmodel.output_description[name] = text
        elif name == scores:
            mlmodel.output_description[name] = "the model's score for each class label"

