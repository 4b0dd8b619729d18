"""Upstream converter errors, translated into the op or layer they concern and what to do.

Converters report failures in their own dialects: the TFLite converter prints an MLIR dump whose
last line is a brace, OpenVINO's frontends start with `Check 'false' failed at src/...cpp:151`.
Each function here reads the one fact that matters (the op, read back from the model where the
error names only its type) and returns an EdgekitError:

- an op the target has no kernel or conversion rule for is a refusal (UnsupportedRouteError,
  exit 2 when it is the only target): the model and the target do not fit, whatever is retried;
- any other upstream failure is a ConversionError (exit 1), with the converter's own cause line.

convert() then tries the next route where one exists (routes.plan lists them shortest first).
"""
from __future__ import annotations

import re
from pathlib import Path

from .errors import ConversionError, EdgekitError, UnsupportedRouteError, summary

# What to use instead of a TensorFlow op that has no TFLite builtin kernel (the common ones).
TFLITE_REPLACEMENTS = {
    "ResizeBicubic": "use bilinear resize (Keras UpSampling2D/Resizing interpolation='bilinear')",
    "ScaleAndTranslate": "use bilinear resize (tf.image.resize method='bilinear')",
    "Erfinv": "replace it with an approximation built from builtin ops",
}
OTHER_TARGETS = "or convert to openvino or onnx"
# Ops only some targets compute as the source does, checked in the field corpus and
# tests/field/test_upstream_facts.py (the other routes lack them, or compute something else):
# the targets that are a way out when one refuses them.
EXACT_ONLY_ON = {"fmod": "openvino or onnx", "ResizeBicubic": "onnx",
                 "TFLite_Detection_PostProcess": "tflite or edgetpu"}


def missing_op_remedy(op: str) -> str:
    """What to do when a target has no conversion for OP: a replacement where one is known, and
    only targets known to compute OP (EXACT_ONLY_ON); for any other op no target is promised."""
    if op in EXACT_ONLY_ON:
        return f"{TFLITE_REPLACEMENTS.get(op, 'replace that op in the model')}, or convert to {EXACT_ONLY_ON[op]}"
    if op in TFLITE_REPLACEMENTS:
        return TFLITE_REPLACEMENTS[op]
    return "replace that op in the model, or try the other targets (convert builds every target it can)"

# TFLite converter: "'tf.ResizeBicubic' op is neither a custom op nor a flex op",
# "failed to legalize operation 'tf.Foo'", "TF Select ops: A, B"
_TF_OP = re.compile(r"'tf\.(\w+)' op is neither a custom op nor a flex op|failed to legalize operation 'tf\.(\w+)'")
_TF_SELECT = re.compile(r"TF Select ops: ([\w, ]+)")
# MLIR location of the op: fused["ResizeBicubic:", "functional_1_1/up_sampling2d_1/resize/ResizeBicubic@..."]
_TF_LOC = re.compile(r'fused\["(\w+):", "([^"@]+)')


def tflite_converter_error(exc: BaseException, precision: str, graph=None) -> EdgekitError:
    """The TFLite converter's failure at PRECISION as one line: the TensorFlow ops it has no
    kernel for (and the layer path of the first, read from GRAPH, the converted function's
    tf.Graph, where the converter's MLIR location does not name it), else its first `error:` line."""
    text = str(exc)
    ops = list(dict.fromkeys(a or b for a, b in _TF_OP.findall(text)))
    select = _TF_SELECT.search(text)
    if select:
        ops += [op.strip() for op in select.group(1).split(",") if op.strip() and op.strip() not in ops]
    if ops:
        where = {op: path for op, path in _TF_LOC.findall(text)}
        first = ops[0]
        if first not in where and graph is not None:
            where.update((first, node) for node in _tf_nodes(graph, first)[:1])
        at = f" (at {where[first]})" if first in where else ""
        names = ", ".join(ops)
        remedy = TFLITE_REPLACEMENTS.get(first, "replace it with ops TFLite has builtin kernels for")
        elsewhere = f"or convert to {EXACT_ONLY_ON[first]}" if first in EXACT_ONLY_ON else OTHER_TARGETS
        return UnsupportedRouteError(f"TFLite has no builtin kernel for the TensorFlow op{'s' if len(ops) > 1 else ''} "
                                     f"{names}{at}", f"{remedy}, {elsewhere}")
    return ConversionError(f"TFLite conversion ({precision}) failed: {_cause(text)}",
                           "ops that have no full-integer kernel cannot be quantized to int8"
                           if precision == "int8" else "see the TensorFlow converter log")


def _tf_nodes(graph, op: str) -> list[str]:
    """Names of the nodes of type OP in GRAPH (a tf.Graph) and the functions it calls (a Keras
    layer's ops live in the library: `functional_1/up_sampling2d_1/resize/ResizeBicubic`)."""
    try:
        graph_def = graph.as_graph_def()
    except Exception:   # reading the graph back is a courtesy: the op's name alone still says it
        return []
    names = [n.name for n in graph_def.node if n.op == op]
    for function in graph_def.library.function:
        names += [n.name for n in function.node_def if n.op == op]
    return names


# OpenVINO: "No conversion rule found for operations: Bernoulli-18, Foo-1" (ONNX, common frontend),
# "No translator found for TFLite_Detection_PostProcess node." (TFLite, TensorFlow frontends)
_OV_RULES = re.compile(r"No conversion rule found for operations?:\s*([^\n]+)")
_OV_TRANSLATOR = re.compile(r"No translator found for (\S+) node")


def openvino_error(exc: BaseException, model) -> EdgekitError:
    """OpenVINO's failure to read MODEL (a SourceModel) as one line: the ops it has no conversion
    rule for, found in the model (node name and count), else its own cause line."""
    text = str(exc)
    ops: list[str] = []
    rules = _OV_RULES.search(text)
    if rules:
        ops = [re.sub(r"-\d+$", "", op.strip()) for op in rules.group(1).split(",") if op.strip()]
    ops += [op for op in _OV_TRANSLATOR.findall(text) if op not in ops]
    if ops:
        found = [f"{op}{_where(model, op)}" for op in ops]
        return UnsupportedRouteError(f"OpenVINO has no conversion rule for the {model.kind} op{'s' if len(ops) > 1 else ''} "
                                     f"{', '.join(found)} in {Path(str(model.path)).name}", missing_op_remedy(ops[0]))
    return ConversionError(f"OpenVINO could not read {model.describe()}: {_cause(text)}",
                           "check the model with its own framework first")


def _where(model, op: str) -> str:
    """' (node NAME, N nodes)': where OP occurs in MODEL, read from the file itself; '' if unknown."""
    names: list[str] = []
    try:
        if model.kind == "onnx":   # the ModelProto the source already holds
            from .sources.onnx import graph_nodes, node_label

            names = [node_label(n) for n in graph_nodes(model.model.graph) if n.op_type == op]
        elif model.kind == "tflite":
            names = [f"#{o.index}" for sg in model.model.subgraphs for o in sg.operators if o.name == op]
    except Exception:   # reading the file back is a courtesy: the op's name alone still says it
        return ""
    if not names:
        return ""
    return f" (node '{names[0]}'{f', {len(names)} nodes' if len(names) > 1 else ''})"


def _cause(text: str, limit: int = 240) -> str:
    """The line of an upstream message that says what broke: not a `Check ... failed at file.cpp`
    banner, an MLIR location dump or a closing brace."""
    noise = re.compile(r"^(Check '.*' failed at |FrontEnd API failed with|<unknown>:0: note:|loc\(|\}\)|\}$|"
                       r"Exception from src/)")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        match = re.search(r"error: (.+)", line)
        if match and "failed while converting" not in match.group(1) and not match.group(1).startswith("loc("):
            return match.group(1)[:limit].rstrip(".")
    useful = [line for line in lines if not noise.search(line)]
    return (useful[0] if useful else summary(Exception(text)))[:limit].rstrip(".")
