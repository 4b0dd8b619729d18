"""Untrusted artifacts: check the structure in pure Python, then (for loaders that need it) load
once in a child process, before any native runtime in this process sees the bytes.

- tflite: the bounds-checked flatbuffer reader (edgekit/tflite_model.py);
- onnx: protobuf parse + onnx's checker (edgekit/sources/onnx.py);
- openvino: the IR's XML (layers, ports, edges) and every Const's byte range in the .bin;
- coreml: the package layout (Manifest.json, its items).

A backend that sets `probe_in_child` is then loaded, compiled and run once on zeros in a child
(`python -m edgekit.runtime.validate`): a crash, a hang or an error there is one line here. A
file that passed is remembered by content hash (in this process and under the user cache dir),
so opening the same artifact again costs no child.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

from ..deps import tool_env
from ..errors import REMEDY_REEXPORT, EdgekitError, ModelFormatError, summary

# OpenVINO element types -> bits per element
_OV_BITS = {"f64": 64, "i64": 64, "u64": 64, "f32": 32, "i32": 32, "u32": 32, "f16": 16, "bf16": 16,
            "i16": 16, "u16": 16, "i8": 8, "u8": 8, "boolean": 8, "f8e4m3": 8, "f8e5m2": 8, "nf4": 4,
            "i4": 4, "u4": 4, "u2": 2, "u1": 1, "u3": 3, "u6": 6, "f4e2m1": 4, "f8e8m0": 8}
_PROBED: set[str] = set()


def check_structure(path: Path, fmt: str) -> None:
    """Raise ModelFormatError when the artifact's structure is damaged."""
    checker = _CHECKS.get(fmt)
    if checker is not None:
        checker(Path(path))


def _tflite(path: Path) -> None:
    from ..tflite_model import check_constants, read_tflite

    model = read_tflite(path)
    if not model.subgraphs or not model.inputs() or not model.outputs():
        raise ModelFormatError(f"{path} has no subgraph with inputs and outputs", REMEDY_REEXPORT)
    check_constants(model)   # LiteRT's own size rule: never refuses a file LiteRT loads


def _onnx(path: Path) -> None:
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


def _int(value: str | None, what: str, path: Path) -> int:
    try:
        number = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ModelFormatError(f"{path}: {what} is {value!r}, not a number", REMEDY_REEXPORT) from None
    if number < 0:
        raise ModelFormatError(f"{path}: {what} is negative ({number})", REMEDY_REEXPORT)
    return number


def _openvino(path: Path) -> None:
    """IR v10/v11: <net><layers><layer id type><input|output><port id>...</layers><edges>."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, UnicodeDecodeError, ValueError) as exc:
        raise ModelFormatError(f"{path} is not a valid OpenVINO IR (XML: {summary(exc)})", REMEDY_REEXPORT) from None
    if root.tag != "net" or root.find("layers") is None or root.find("edges") is None:
        raise ModelFormatError(f"{path} is XML but not an OpenVINO IR (no <net> with layers and edges)",
                               REMEDY_REEXPORT)
    weights = path.with_suffix(".bin")
    bin_size = weights.stat().st_size if weights.is_file() else None
    ports: dict[int, tuple[set[int], set[int]]] = {}
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
        raise ModelFormatError(f"{path.with_suffix('.bin')} (the IR's weights) is missing",
                               "keep the .bin beside the .xml")
    if offset + size > bin_size:
        raise ModelFormatError(f"{path}: Const layer {lid} reads bytes {offset}..{offset + size} of "
                               f"{path.with_suffix('.bin').name}, which has {bin_size}", REMEDY_REEXPORT)
    bits = _OV_BITS.get(data.get("element_type", ""))
    shape_text = data.get("shape")
    if bits and shape_text is not None and data.get("element_type") != "string":
        dims = [_int(d, f"a dimension of Const layer {lid}", path) for d in shape_text.split(",") if d.strip()]
        expected = math.ceil(math.prod(dims) * bits / 8)
        if expected != size:
            raise ModelFormatError(f"{path}: Const layer {lid} of shape {dims} needs {expected} bytes, "
                                   f"the IR says {size}", REMEDY_REEXPORT)


def read_openvino_checked(ov, path: Path):
    """`Core.read_model` after the structural check, its errors as one line (for inspect)."""
    _openvino(path)
    try:
        return ov.Core().read_model(str(path))
    except Exception as exc:  # RuntimeError, OpConversionFailure, ...
        raise ModelFormatError(f"{path} is not a valid OpenVINO IR: {summary(exc, last=True)}", REMEDY_REEXPORT) from None


def _coreml(path: Path) -> None:
    manifest = path / "Manifest.json"
    try:
        items = json.loads(manifest.read_text()).get("itemInfoEntries", {})
    except (OSError, ValueError, AttributeError) as exc:
        raise ModelFormatError(f"{manifest} is unreadable ({summary(exc)})", REMEDY_REEXPORT) from None
    if not isinstance(items, dict) or not items:
        raise ModelFormatError(f"{manifest} lists no items", REMEDY_REEXPORT)
    for entry in items.values():
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise ModelFormatError(f"{manifest} has a malformed item entry", REMEDY_REEXPORT)
        if not (path / "Data" / entry["path"]).exists():
            raise ModelFormatError(f"{path} lacks {entry['path']}, which its Manifest.json lists", REMEDY_REEXPORT)


_CHECKS = {"tflite": _tflite, "onnx": _onnx, "openvino": _openvino, "coreml": _coreml}


# ---------------------------------------------------------------- child-process probe

def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    weights = path.with_suffix(".bin")
    return [path, weights] if path.suffix == ".xml" and weights.is_file() else [path]


def _key(path: Path, backend: str, device: str | None, options: dict) -> str:
    digest = hashlib.sha256(json.dumps([backend, device, sorted(options.items())]).encode())
    for file in _files(path):
        digest.update(file.name.encode())
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "edgekit" / "probed"


def probe_timeout(path: Path) -> float:
    """Seconds a probe may take: EDGEKIT_PROBE_TIMEOUT, else 8 s plus 1 s per MB of model."""
    if os.environ.get("EDGEKIT_PROBE_TIMEOUT"):
        return float(os.environ["EDGEKIT_PROBE_TIMEOUT"])
    return 8.0 + sum(f.stat().st_size for f in _files(path)) / 1e6


def probe_in_child(path: Path, backend: str, device: str | None, options: dict) -> None:
    """Load, compile and run PATH once on zeros in a child; one line here if that fails."""
    key = _key(path, backend, device, options)
    marker = _cache_dir() / key
    if key in _PROBED or marker.exists():
        return
    timeout = probe_timeout(path)
    command = [sys.executable, "-m", "edgekit.runtime.validate", str(path), backend, device or "",
               json.dumps(options)]
    env = tool_env(TF_CPP_MIN_LOG_LEVEL="3", OPENVINO_LOG_LEVEL="0")
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, env=env)
    except subprocess.TimeoutExpired:
        raise ModelFormatError(f"loading {path} with {backend} did not finish in {timeout:.0f} s "
                               "(checked in a child process)", REMEDY_REEXPORT) from None
    if done.returncode < 0:
        raise ModelFormatError(f"{path} crashed the {backend} loader (signal {-done.returncode}, in a child "
                               "process); the file is corrupt or malicious", REMEDY_REEXPORT)
    lines = [line for line in done.stdout.strip().splitlines() if line.strip()]
    message = lines[-1][:300] if lines else summary(done.stderr or f"exit code {done.returncode}", last=True)
    if done.returncode == 2:
        raise EdgekitError(message)
    if done.returncode != 0:
        raise ModelFormatError(f"{path} could not be loaded by {backend}: {message}", REMEDY_REEXPORT)
    _PROBED.add(key)
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:
        pass  # a read-only home: the probe just runs again next time


def _probe_main(argv: list[str]) -> int:
    """Child side: open with the backend class itself (no probe), run once on zeros."""
    import numpy as np

    from .base import BACKENDS

    path, backend, device, options = Path(argv[0]), argv[1], argv[2] or None, json.loads(argv[3])
    try:
        with BACKENDS.get(backend)(path, device, **options) as runner:
            feeds = []
            for info in runner.inputs:
                if not info.shape or any(d < 1 for d in info.shape):
                    return 0  # no static shape to feed: loading was the check
                dtype = np.float32 if info.quantization or info.dtype == "image" else np.dtype(info.dtype)
                feeds.append(np.zeros(info.shape, dtype))
            runner.infer(feeds)
    except EdgekitError as exc:
        print(exc.one_line())
        return 2
    except Exception as exc:  # an upstream loader's own error: the parent words it
        print(summary(exc))
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(_probe_main(sys.argv[1:]))
