"""Core ML target: mlprogram fp32 / fp16, and int8 linear weight quantization.

The input is an ImageType carrying the manifest's normalization, so Core ML users pass a
picture; a classifier config with labels is attached for classification models. coremltools
converts on any OS; prediction needs macOS, so on Linux verify checks structure only.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from .. import deps
from ..bridges.base import ConvertContext
from ..errors import ConversionError, summary
from ..formats.coreml import describe
from ..manifest import VerifyReport
from ..sources.base import SourceModel
from .base import Target, TargetOutput, register


@register
class CoreMLTarget(Target):
    name = "coreml"
    format = "coreml"
    precisions = ("fp32", "fp16", "int8")
    accepts = ("torch",)
    requires = ("coremltools", "torch")
    refusals = {
        "tflite": "coremltools reads PyTorch and TensorFlow graphs, not TFLite flatbuffers; "
                  "convert from the model the .tflite was exported from",
        "onnx": "coremltools dropped its ONNX frontend in version 6; convert from the PyTorch model",
        "keras": "coremltools 9 supports TensorFlow up to 2.12, and this kit pins TensorFlow 2.19; "
                 "convert from a PyTorch model",
        "savedmodel": "coremltools 9 supports TensorFlow up to 2.12, and this kit pins TensorFlow 2.19; "
                      "convert from a PyTorch model",
    }

    def convert(self, model: SourceModel, precision: str, artifact: Path, ctx: ConvertContext) -> TargetOutput:
        os.environ.setdefault("TQDM_DISABLE", "1")  # coremltools' per-pass bars would drown ours
        import coremltools as ct
        import torch

        pre = ctx.preprocess
        module, scale, bias = _normalizing(model.module, pre, torch)
        shape = model.inputs()[0].shape
        with torch.no_grad():
            traced = torch.jit.trace(module, torch.zeros(shape)).eval()
        image = ct.ImageType(name="image", shape=shape, scale=scale, bias=bias,
                             color_layout=ct.colorlayout.BGR if pre.color_order == "BGR" else ct.colorlayout.RGB)
        classifier = None
        if ctx.task == "classification":  # without a labels file, Core ML reports class indices
            classes = model.outputs()[0].shape[-1]
            classifier = ct.ClassifierConfig(list(ctx.labels) if len(ctx.labels) == classes else list(range(classes)))
        try:
            mlmodel = ct.convert(traced, inputs=[image], classifier_config=classifier, convert_to="mlprogram",
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
            raise ConversionError(f"coremltools could not convert the model: {summary(exc)}",
                                  "check the ops against coremltools' PyTorch frontend") from None
        mlmodel.short_description = f"edgekit {precision} conversion"
        mlmodel.save(str(artifact))
        inputs, outputs = describe(mlmodel.get_spec())
        return TargetOutput(files=[artifact], inputs=inputs, outputs=outputs,
                            converters={"coremltools": deps.version("coremltools") or "?"},
                            options={"image_input": True, "normalization_in_model": True,
                                     "weights": "int8" if precision == "int8" else precision},
                            layout="NCHW")

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


def _normalizing(module, pre, torch):
    """ImageType scale is one scalar: fold per-channel std into the model when channels differ."""
    std, mean = pre.std, pre.mean
    if len(set(std)) == 1:
        return module, 1.0 / std[0], [-m / std[0] for m in mean]

    class Normalize(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner
            self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
            self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

        def forward(self, x):
            return self.inner((x - self.mean) / self.std)

    return Normalize(module).eval(), 1.0, [0.0, 0.0, 0.0]
