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
        """Convert `model` (a torch, keras or savedmodel form with one image input, batch 1) to an
        mlprogram package at `artifact`. Raises ConversionError naming the op coremltools
        cannot convert, or MissingDependencyError when the frontend's framework is absent."""
        os.environ.setdefault("TQDM_DISABLE", "1")  # coremltools' per-pass bars would drown ours
        ct = deps.require("coremltools", "Core ML conversion")
        roles = model.static_inputs()
        others = [r for r in roles[1:]] if roles and roles[0].kind == "image" and roles[0].channels == 3 else roles
        if others:   # the Core ML target makes one colour ImageType input (scale/bias inside)
            first = others[0]
            what = (f"{first.kind} input" if first.kind == "tensor" else f"{first.channels}-channel image input")
            # not model.describe(): on a route it is an intermediate in a staging folder, gone by now
            raise UnsupportedRouteError(f"edgekit's Core ML target takes one colour image input; the model has the "
                                        f"{what} '{first.name}' {first.shape}",
                                        "convert it to tflite, openvino or onnx")
        pre = ctx.preprocess
        scale, bias, fold = _image_normalization(pre)
        if model.kind == "torch":
            program, run, frontend = _torch_program(model, pre, fold)
        else:
            program, run, frontend = _tensorflow_program(model, pre, fold)
        step = (f"{frontend} {'traced module' if frontend == 'torch' else 'concrete function'} → coremltools "
                "(with the ImageType's scale/bias)")
        checked = ctx.check(step, frontend, lambda feeds: run(_program_input(feeds[0], pre, scale, bias)))

        height, width = pre.input_size
        shape = (1, 3, height, width) if model.kind == "torch" else (1, height, width, 3)
        image = ct.ImageType(name=INPUT_NAME, shape=shape, scale=scale, bias=bias,
                             color_layout=ct.colorlayout.BGR if pre.color_order == "BGR" else ct.colorlayout.RGB)
        outputs = model.outputs()
        classifier = None
        if ctx.task == "classification" and len(outputs) == 1:  # without labels, Core ML reports class indices
            classes = outputs[0].shape[-1]
            classifier = ct.ClassifierConfig(class_labels(list(ctx.labels)) if len(ctx.labels) == classes
                                             else list(range(classes)))
        try:
            mlmodel = ct.convert(program, source="pytorch" if model.kind == "torch" else "tensorflow",
                                 inputs=[image], classifier_config=classifier, convert_to="mlprogram",
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
        write_card(mlmodel, ctx, precision)
        mlmodel.save(str(artifact))
        inputs, outputs = describe(mlmodel.get_spec())
        versions = {"coremltools": deps.version("coremltools") or "?"}
        return TargetOutput(files=[artifact], inputs=inputs, outputs=outputs, converters=versions,
                            options={"image_input": True, "normalization_in_model": True, "frontend": frontend,
                                     "weights": "int8" if precision == "int8" else precision},
                            layout="NCHW", checked=[checked] if checked else [])

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
    pixels = normalized * np.asarray(pre.std, np.float32) + np.asarray(pre.mean, np.float32)
    return (pixels * np.float32(scale) + np.asarray(bias, np.float32)).astype(np.float32)


def _torch_program(model: SourceModel, pre: Preprocess, fold: bool):
    """The traced module coremltools converts, and a runner taking NHWC program inputs."""
    torch = deps.require("torch", "Core ML conversion from PyTorch")
    module = model.module
    if fold:
        module = _normalizing(torch, module, pre)
    shape = model.inputs()[0].shape
    with torch.no_grad():
        traced = torch.jit.trace(module, torch.zeros(shape)).eval()

    def run(x: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            result = traced(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))))
        return [r.numpy() for r in (result if isinstance(result, (list, tuple)) else [result])]

    return traced, run, "torch"


def _normalizing(torch, inner, pre: Preprocess):
    """A module computing `inner((x - mean) / std)` for NCHW pixels."""

    class Normalize(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = inner
            self.register_buffer("mean", torch.tensor(pre.mean).view(1, -1, 1, 1))
            self.register_buffer("std", torch.tensor(pre.std).view(1, -1, 1, 1))

        def forward(self, x):
            return self.inner((x - self.mean) / self.std)

    return Normalize().eval()


def _tensorflow_program(model: SourceModel, pre: Preprocess, fold: bool):
    """The concrete function (static NHWC shape, batch 1) coremltools converts, and its runner."""
    tf = deps.require("tensorflow", "Core ML conversion from TensorFlow")
    info = model.inputs()[0]
    if model.kind == "keras":
        def call(x):
            return model.model(x, training=False)
    else:
        names = model.output_names()

        def call(x):
            result = model.signature(**{info.name: x})
            return [result[name] for name in names]

    mean, std = tf.constant(pre.mean, tf.float32), tf.constant(pre.std, tf.float32)

    def program(x):
        result = call((x - mean) / std if fold else x)
        result = list(result) if isinstance(result, (list, tuple)) else [result]
        return result[0] if len(result) == 1 else result

    function = tf.function(program, autograph=False).get_concrete_function(
        tf.TensorSpec(info.shape, tf.float32, name=INPUT_NAME))

    def run(x: np.ndarray) -> list[np.ndarray]:
        result = function(tf.constant(x))
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


def write_card(mlmodel, ctx: ConvertContext, precision: str) -> None:
    """The model card into the fields Xcode shows: author, license, version, description, and
    per-feature descriptions (the image input, the classifier's label and scores)."""
    card = ctx.card
    mlmodel.author = card.author
    mlmodel.license = card.license
    mlmodel.version = card.version
    mlmodel.short_description = card.description or f"edgekit {precision} conversion"
    if card.name:
        mlmodel.user_defined_metadata["name"] = card.name
    spec = mlmodel.get_spec()
    pre = ctx.preprocess
    given = (positional(card.inputs, ctx.source_inputs) or [""])[0]
    mlmodel.input_description[INPUT_NAME] = given or (
        f"{pre.color_order} image, {pre.input_size[1]}x{pre.input_size[0]} (resize: {pre.resize})")
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

