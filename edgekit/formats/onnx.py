"""ONNX models (`.onnx`): a protobuf ModelProto."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from ..errors import REMEDY_REEXPORT, ModelFormatError, summary
from .base import Evidence, Format, Inspection, metadata_card, register

# ModelProto field -> protobuf wire type: 1 ir_version, 2 producer_name, 3 producer_version,
# 4 domain, 5 model_version, 6 doc_string, 7 graph, 8 opset_import, 14 metadata_props
_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2}


def _sniff(evidence: Evidence) -> bool:
    """Writers put ir_version (field 1, varint) first, though any field order is legal: accept a
    leading field tag of ModelProto with its wire type. A weak test, so it runs last."""
    if evidence.directory or not evidence.head:
        return False
    tag = evidence.head[0]
    return _FIELDS.get(tag >> 3) == tag & 7


def _check(path: Path) -> None:
    """The checker, then every initializer's size, then strict shape inference (the checker
    alone accepts a graph whose shapes cannot work: a convolution fed the wrong channels)."""
    import onnx
    from onnx import numpy_helper

    from ..sources.onnx import load_checked

    model = load_checked(path)
    newest = onnx.defs.onnx_opset_version()
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx") and not 1 <= opset.version <= newest:
            raise ModelFormatError(f"{path} imports ONNX opset {opset.version}; this onnx knows 1..{newest}",
                                   REMEDY_REEXPORT)
    for init in model.graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL:
            continue
        try:
            numpy_helper.to_array(init)   # checks the data against dims and type
        except Exception as exc:
            raise ModelFormatError(f"{path}: initializer '{init.name}' (dims {list(init.dims)}) does not hold "
                                   f"its data: {summary(exc)}", REMEDY_REEXPORT) from None
    try:
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except Exception as exc:
        raise ModelFormatError(f"{path} fails ONNX shape inference: {summary(exc)}", REMEDY_REEXPORT) from None


def _inspect(path: Path) -> Inspection:
    from ..sources.onnx import OnnxSource, load_checked

    model = load_checked(path)
    source = OnnxSource(path, model)
    ops = Counter(node.op_type for node in model.graph.node)
    return Inspection(
        inputs=source.inputs(), outputs=source.outputs(), ops=dict(ops.most_common()),
        details={"opset": ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in model.opset_import),
                 "producer": f"{model.producer_name} {model.producer_version}".strip()},
        metadata=_metadata(model))


def _metadata(model) -> dict:
    """doc_string, metadata_props and the graph inputs'/outputs' doc_string."""
    props = {p.key: p.value for p in model.metadata_props}
    extra = {k: v for k, v in props.items() if k not in ("model_author", "model_license", "name", "version")}
    if model.model_version:
        extra["model_version"] = model.model_version
    return metadata_card(props.get("name", ""), model.doc_string, props.get("model_author", ""),
                         props.get("model_license", ""), props.get("version", ""),
                         {i.name: i.doc_string for i in model.graph.input},
                         {o.name: o.doc_string for o in model.graph.output}, extra)


ONNX = register(Format(
    name="onnx", title="ONNX", suffixes=(".onnx",), sniff=_sniff, rank=90,
    source="onnx", backend="onnxruntime", check=_check, inspector=_inspect))
