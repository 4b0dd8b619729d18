"""OpenVINO IR target: fp32, fp16 (compressed weights) and int8 (NNCF post-training quantization)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import deps
from ..bridges.base import ConvertContext
from ..errors import UnsupportedRouteError
from ..formats import FORMATS
from ..formats.openvino import port_info
from ..modelcard import for_artifact
from ..sources.base import SourceModel
from ..ui import step
from ..upstream import openvino_error
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
        if model.kind == "tflite":
            from ..bridges.tflite_to_onnx import CUSTOM_OP_REMEDY
            from ..tflite_model import custom_op_problem

            problem = custom_op_problem(model.model)
            if problem:   # OpenVINO's TFLite frontend would fail with "no translator" and no op name
                raise UnsupportedRouteError(problem, CUSTOM_OP_REMEDY)
        if model.kind == "onnx":
            problem = onnx_resize_problem(model.model)
            if problem:
                raise UnsupportedRouteError(problem, "convert to onnx (ONNX Runtime computes it as the source does), "
                                                     "or use bilinear resize")
        try:
            ov_model = ov.convert_model(str(model.path), input=shapes)
        except Exception as exc:   # the op it has no rule for, named and found in the model
            raise openvino_error(exc, model) from None
        converters = {"openvino": deps.version("openvino") or "?"}
        notes: list[str] = []
        if precision == "int8":
            nncf = deps.require("nncf", "OpenVINO int8 quantization")
            ov_model, note = quantize(nncf, ov_model, ctx.calibration_feeds(model.inputs(), model.layout))
            notes += [note] if note else []
            converters["nncf"] = deps.version("nncf") or "?"
        write_card(ov_model, ctx)
        ov.save_model(ov_model, str(artifact), compress_to_fp16=(precision == "fp16"))
        return TargetOutput(files=[*FORMATS.get(self.format).companions(artifact), artifact],
                            inputs=[port_info(p) for p in ov_model.inputs],
                            outputs=[port_info(p) for p in ov_model.outputs],
                            converters=converters, layout=model.layout, notes=notes)


def onnx_resize_problem(model) -> str | None:
    """One line when the ONNX MODEL (a ModelProto) has a cubic Resize with exclude_outside=1, which
    OpenVINO cannot compute: its Interpolate (opset 11) has no exclude_outside, and its ONNX reader
    drops the attribute, so samples outside the image keep their weight. tf2onnx writes exactly
    that for TensorFlow's bicubic resize (half_pixel, cubic_coeff_a -0.5, exclude_outside 1); the
    IR then differed from Keras by 2 % of a channel's scale at the borders (field corpus,
    keras_bicubic), at cosine 0.99999. None when there is no such node."""
    from ..sources.onnx import graph_nodes, node_label

    for node in graph_nodes(model.graph):
        attributes = {a.name: a for a in node.attribute}
        mode = attributes["mode"].s if "mode" in attributes else b"nearest"
        exclude = attributes["exclude_outside"].i if "exclude_outside" in attributes else 0
        if node.op_type == "Resize" and mode == b"cubic" and exclude == 1:
            return (f"OpenVINO cannot compute the ONNX Resize '{node_label(node)}' (cubic, exclude_outside=1: "
                    f"TensorFlow's bicubic resize): its Interpolate has no exclude_outside, so the borders would "
                    f"differ from the source")
    return None


# Cosine that plain NNCF quantization must keep against the fp32 IR before accuracy control steps
# in: above verify's int8 gate (0.98) with a margin, so the artifact passes on other inputs too.
FIDELITY_TARGET = 0.99
VALIDATION_SAMPLES = 64


def quantize(nncf, ov_model, samples: list[list[np.ndarray]]):
    """NNCF post-training int8 of OV_MODEL, calibrated on SAMPLES (per sample, one array per
    input in input order, batch 1, the model's layout, preprocessed). When the result's outputs stray from the fp32 model's (mean cosine over
    up to 64 of the samples, worst output, below FIDELITY_TARGET), NNCF's accuracy control
    (`quantize_with_accuracy_control`) returns the most sensitive quantized ops to float until it
    is met. Seen: a Dense + softmax classifier head whose int8 MatMul alone took cosine to 0.95
    while TFLite and ONNX Runtime int8 of the same model kept 0.9995. Returns (model, note: what
    was kept in float, or None)."""
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    dataset = nncf.Dataset([_item(sample) for sample in samples])
    # Intel CPUs without VNNI (AVX2/AVX-512F) sum u8*s8 pairs in int16 and saturate; NNCF's
    # default 7-bit fix covers the first layer only, but ReLU6-fed 1x1 convs saturate too
    # (EfficientNet-Lite0: cosine 0.92 -> 0.99). ENABLE = 7-bit weights wherever channels
    # are summed; full bias correction wins back what the lost bit costs.
    settings = dict(subset_size=len(samples), fast_bias_correction=False)
    # Activation ranges are the min and max over every calibration sample, as the TFLite
    # converter takes them from the same representative dataset. NNCF's default averages each
    # sample's min and max, which clips the brightest photo of a small set: 24 % of a toy
    # classifier's logit range on one of 8 photos, 0.6 % with MINMAX (field corpus, keras_hard_swish).
    parameters = AdvancedQuantizationParameters(overflow_fix=OverflowFix.ENABLE,
                                                activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX)
    with step(f"NNCF int8 quantization ({len(samples)} calibration samples)"):
        quantized = nncf.quantize(ov_model.clone(), dataset, advanced_parameters=parameters, **settings)
    validation = samples[:VALIDATION_SAMPLES]
    references = _fp32_outputs(ov_model, validation)
    fidelity = _fidelity(quantized, validation, references)
    if fidelity >= FIDELITY_TARGET:
        return quantized, None
    pairs = nncf.Dataset(list(zip(validation, references)), lambda pair: _item(pair[0]))

    def validate(compiled, items) -> float:
        items = list(items)
        return _fidelity(compiled, [x for x, _ in items], [r for _, r in items])

    with step(f"NNCF accuracy control (int8 cosine {fidelity:.3f} < {FIDELITY_TARGET})"):
        restored = nncf.quantize_with_accuracy_control(
            ov_model, dataset, pairs, validate, max_drop=1.0 - FIDELITY_TARGET, drop_type=nncf.DropType.ABSOLUTE,
            advanced_quantization_parameters=parameters, **settings)
    before, after = _quantized_ops(quantized), _quantized_ops(restored)
    return restored, (f"OpenVINO int8: NNCF kept {len(before - after)} of {len(before)} quantized ops in float "
                      f"({', '.join(sorted(before - after)[:3])}{', ...' if len(before - after) > 3 else ''}) "
                      f"because full int8 scored cosine {fidelity:.3f} against the fp32 IR")


def _item(sample: list[np.ndarray]):
    """One sample as a compiled model takes it: the array for one input, else the list."""
    return sample[0] if len(sample) == 1 else list(sample)


def _fp32_outputs(ov_model, samples) -> list[list[np.ndarray]]:
    import openvino as ov

    compiled = ov.Core().compile_model(ov_model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return [[np.array(o) for o in compiled(_item(x)).values()] for x in samples]


def _fidelity(model, samples, references) -> float:
    """Worst output's mean cosine between MODEL (an ov.Model or CompiledModel) and REFERENCES.
    An output whose size is set at run time (NMS: one row per kept box) has no cosine on a sample
    where int8 kept another number of rows than fp32: that sample does not count for it."""
    import openvino as ov

    if not samples:
        return 1.0
    compiled = model if isinstance(model, ov.CompiledModel) else \
        ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    per_output: dict[int, list[float]] = {}
    for x, expected in zip(samples, references):
        got = [np.array(o) for o in compiled(_item(x)).values()]
        for j, (g, e) in enumerate(zip(got, expected)):
            if g.shape == e.shape:
                per_output.setdefault(j, []).append(_cosine(g, e))
    return float(min(np.mean(values) for values in per_output.values())) if per_output else 1.0


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    norms = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / norms) if norms > 0 else float(np.array_equal(a, b))


def _quantized_ops(ov_model) -> set[str]:
    """Names of the ops whose inputs NNCF quantizes (those fed by a FakeQuantize)."""
    return {consumer.get_node().get_friendly_name()
            for op in ov_model.get_ops() if op.get_type_name() == "FakeQuantize"
            for consumer in op.output(0).get_target_inputs()
            if consumer.get_node().get_type_name() != "FakeQuantize"}


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
        shapes = [port_info(p).shape for p in ports]
        for port, text in zip(ports, for_artifact(described, source, shapes)):
            if text:
                ov_model.set_rt_info(text, ["model_info", kind, port.get_any_name()])
