"""OpenVINO IR: a `.xml` graph and its `.bin` weights beside it (IR v10/v11)."""
from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

from ..errors import REMEDY_REEXPORT, ModelFormatError, summary
from .base import Evidence, Format, Inspection, metadata_card, register

# OpenVINO element types -> bits per element
_OV_BITS = {"f64": 64, "i64": 64, "u64": 64, "f32": 32, "i32": 32, "u32": 32, "f16": 16, "bf16": 16,
            "i16": 16, "u16": 16, "i8": 8, "u8": 8, "boolean": 8, "f8e4m3": 8, "f8e5m2": 8, "nf4": 4,
            "i4": 4, "u4": 4, "u2": 2, "u1": 1, "u3": 3, "u6": 6, "f4e2m1": 4, "f8e8m0": 8}


def _sniff(evidence: Evidence) -> bool:
    head = evidence.head.lstrip()
    return head.startswith(b"<?xml") or head.startswith(b"<net")


def weights_of(path: Path) -> Path:
    """The IR's weights file: the .xml's name with .bin."""
    return Path(path).with_suffix(".bin")


def _companions(path: Path) -> list[Path]:
    return [weights_of(path)]


def _int(value: str | None, what: str, path: Path) -> int:
    try:
        number = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ModelFormatError(f"{path}: {what} is {value!r}, not a number", REMEDY_REEXPORT) from None
    if number < 0:
        raise ModelFormatError(f"{path}: {what} is negative ({number})", REMEDY_REEXPORT)
    return number


def _check(path: Path) -> None:
    """<net><layers><layer id type><input|output><port id>...</layers><edges>, and every Const's
    byte range inside the .bin."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, UnicodeDecodeError, ValueError) as exc:
        raise ModelFormatError(f"{path} is not a valid OpenVINO IR (XML: {summary(exc)})", REMEDY_REEXPORT) from None
    if root.tag != "net" or root.find("layers") is None or root.find("edges") is None:
        raise ModelFormatError(f"{path} is XML but not an OpenVINO IR (no <net> with layers and edges)",
                               REMEDY_REEXPORT)
    weights = weights_of(path)
    bin_size = weights.stat().st_size if weights.is_file() else None
    ports: dict[int, tuple[dict[int, list[int]], dict[int, list[int]]]] = {}
    for layer in root.find("layers"):
        lid = _int(layer.get("id"), "a layer id", path)
        if lid in ports:
            raise ModelFormatError(f"{path}: layer id {lid} appears twice", REMEDY_REEXPORT)
        if not layer.get("type"):
            raise ModelFormatError(f"{path}: layer {lid} has no type", REMEDY_REEXPORT)
        ins = {_int(p.get("id"), f"a port id of layer {lid}", path): _dims(p, path)
               for side in layer.findall("input") for p in side}
        outs = {_int(p.get("id"), f"a port id of layer {lid}", path): _dims(p, path)
                for side in layer.findall("output") for p in side}
        ports[lid] = (ins, outs)
        if layer.get("type") == "Const":
            _check_const(layer, lid, path, bin_size)
    if not ports:
        raise ModelFormatError(f"{path} is an OpenVINO IR without layers", REMEDY_REEXPORT)
    for edge in root.find("edges"):
        src, dst = _int(edge.get("from-layer"), "an edge's from-layer", path), _int(edge.get("to-layer"),
                                                                                     "an edge's to-layer", path)
        src_port = _int(edge.get("from-port"), "an edge's from-port", path)
        dst_port = _int(edge.get("to-port"), "an edge's to-port", path)
        if src not in ports or dst not in ports:
            raise ModelFormatError(f"{path}: an edge refers to layer {src if src not in ports else dst}, "
                                   f"which does not exist", REMEDY_REEXPORT)
        if src_port not in ports[src][1] or dst_port not in ports[dst][0]:
            raise ModelFormatError(f"{path}: edge {src}:{src_port} -> {dst}:{dst_port} refers to a port "
                                   "that does not exist", REMEDY_REEXPORT)
        given, taken = ports[src][1][src_port], ports[dst][0][dst_port]
        if given != taken and -1 not in given + taken:   # -1: a dynamic dimension
            raise ModelFormatError(f"{path}: edge {src}:{src_port} -> {dst}:{dst_port} joins shapes {given} "
                                   f"and {taken}", REMEDY_REEXPORT)


def _dims(port, path: Path) -> list[int]:
    dims = []
    for dim in port.findall("dim"):
        text = (dim.text or "").strip()
        dims.append(-1 if text in ("-1", "?") or ".." in text else _int(text, "a port dimension", path))
    return dims


def _check_const(layer, lid: int, path: Path, bin_size: int | None) -> None:
    data = layer.find("data")
    if data is None:
        raise ModelFormatError(f"{path}: Const layer {lid} has no data", REMEDY_REEXPORT)
    offset = _int(data.get("offset"), f"the offset of Const layer {lid}", path)
    size = _int(data.get("size"), f"the size of Const layer {lid}", path)
    if bin_size is None:
        raise ModelFormatError(f"{weights_of(path)} (the IR's weights) is missing",
                               "keep the .bin beside the .xml")
    if offset + size > bin_size:
        raise ModelFormatError(f"{path}: Const layer {lid} reads bytes {offset}..{offset + size} of "
                               f"{weights_of(path).name}, which has {bin_size}", REMEDY_REEXPORT)
    bits = _OV_BITS.get(data.get("element_type", ""))
    shape_text = data.get("shape")
    if bits and shape_text is not None and data.get("element_type") != "string":
        dims = [_int(d, f"a dimension of Const layer {lid}", path) for d in shape_text.split(",") if d.strip()]
        expected = math.ceil(math.prod(dims) * bits / 8)
        if expected != size:
            raise ModelFormatError(f"{path}: Const layer {lid} of shape {dims} needs {expected} bytes, "
                                   f"the IR says {size}", REMEDY_REEXPORT)


def port_info(port):
    """An OpenVINO port as a TensorInfo; a dynamic dimension is -1."""
    from ..manifest import TensorInfo

    try:
        name = port.get_any_name()
    except RuntimeError:
        name = f"port_{port.get_index()}"
    shape = [d.get_length() if d.is_static else -1 for d in port.get_partial_shape()]
    return TensorInfo(name, shape, port.get_element_type().to_dtype().name)


def read_checked(path: Path):
    """`Core.read_model` after the structure check, its errors as one line."""
    from ..deps import require

    ov = require("openvino", "inspecting OpenVINO IR")
    _check(path)
    try:
        return ov.Core().read_model(str(path))
    except Exception as exc:  # RuntimeError, OpConversionFailure, ...
        raise ModelFormatError(f"{path} is not a valid OpenVINO IR: {summary(exc, last=True)}", REMEDY_REEXPORT) from None


def _inspect(path: Path) -> Inspection:
    model = read_checked(path)
    ops = Counter(op.get_type_name() for op in model.get_ops())
    return Inspection(inputs=[port_info(p) for p in model.inputs], outputs=[port_info(p) for p in model.outputs],
                      ops=dict(ops.most_common()), details={"weights": weights_of(path).name},
                      metadata=_metadata(model))


def _metadata(model) -> dict:
    """rt_info's model_info section (strings, nested inputs/outputs)."""
    def plain(value):
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value.astype(str) if hasattr(value, "astype") else str(value)   # OVAny leaves

    info = plain(model.get_rt_info()["model_info"]) if model.has_rt_info(["model_info"]) else {}
    fields = ("name", "description", "author", "license", "version", "inputs", "outputs")
    return metadata_card(*(info.get(k, "") for k in fields[:5]), info.get("inputs") or {}, info.get("outputs") or {},
                         {k: v for k, v in info.items() if k not in fields})


OPENVINO = register(Format(
    name="openvino", title="OpenVINO IR", suffixes=(".xml",), sniff=_sniff, rank=10,
    backend="openvino", companions=_companions, check=_check, inspector=_inspect))
