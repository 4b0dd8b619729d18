"""`edgekit inspect`: what an artifact takes and gives, what it is made of, and its manifest."""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from .convert import size_of_artifact
from .deps import require
from .formats import detect
from .manifest import read_manifest


def _tflite(path: Path) -> dict[str, Any]:
    from .sources.tflite import tensor_info
    from .tflite_model import read_tflite

    model = read_tflite(path)
    metadata = _tflite_metadata(model, path)
    custom = sorted({op.name for sg in model.subgraphs for op in sg.operators if op.builtin == "CUSTOM"})
    edgetpu = _edgetpu_details(model)
    return {"inputs": [asdict(tensor_info(t)) for t in model.inputs()],
            "outputs": [asdict(tensor_info(t)) for t in model.outputs()],
            "ops": model.op_counts(),
            "details": {"schema version": model.version, "subgraphs": len(model.subgraphs),
                        "parameter bytes": model.parameter_bytes(), "fully integer": model.is_fully_integer(),
                        "dynamic shapes": model.has_dynamic_shapes(), "custom ops": ", ".join(custom) or "none",
                        "signatures": ", ".join(s.key for s in model.signature_defs) or "none (no signature defs)",
                        **edgetpu},
            "metadata": metadata}


def _edgetpu_details(model) -> dict[str, Any]:
    """A compiled model: its Edge TPU custom ops and the bytes of their compiled payload (executable
    and the parameters it caches on-chip or streams; the format is private, so this is its size)."""
    tpu_ops = [op for sg in model.subgraphs for op in sg.operators if op.name == "edgetpu-custom-op"]
    if not tpu_ops:
        return {}
    payload = sum(op.options.get("custom_options_size", 0) for op in tpu_ops)
    return {"edge tpu custom ops": f"{len(tpu_ops)} x edgetpu-custom-op",
            "edge tpu compiled size": f"{payload} bytes (executable + parameters)",
            "ops left on the CPU": sum(len(sg.operators) for sg in model.subgraphs) - len(tpu_ops)}


def _onnx(path: Path) -> dict[str, Any]:
    from .sources.onnx import OnnxSource, load_checked

    model = load_checked(path)
    source = OnnxSource(path, model)
    ops = Counter(node.op_type for node in model.graph.node)
    return {"inputs": [asdict(t) for t in source.inputs()], "outputs": [asdict(t) for t in source.outputs()],
            "ops": dict(ops.most_common()),
            "details": {"opset": ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in model.opset_import),
                        "producer": f"{model.producer_name} {model.producer_version}".strip()},
            "metadata": _onnx_metadata(model)}


def _openvino(path: Path) -> dict[str, Any]:
    ov = require("openvino", "inspecting OpenVINO IR")
    from .runtime.openvino import _info
    from .runtime.validate import read_openvino_checked

    model = read_openvino_checked(ov, path)
    ops = Counter(op.get_type_name() for op in model.get_ops())
    return {"inputs": [asdict(_info(p)) for p in model.inputs], "outputs": [asdict(_info(p)) for p in model.outputs],
            "ops": dict(ops.most_common()), "details": {"weights": str(path.with_suffix(".bin").name)},
            "metadata": _openvino_metadata(model)}


def _coreml(path: Path) -> dict[str, Any]:
    ct = require("coremltools", "inspecting Core ML packages")
    from .targets.coreml import _describe

    spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    inputs, outputs = _describe(spec)
    ops: Counter = Counter()
    if spec.WhichOneof("Type") == "mlProgram":
        for function in spec.mlProgram.functions.values():
            for block in function.block_specializations.values():
                ops.update(op.type for op in block.operations)
    return {"inputs": [asdict(t) for t in inputs], "outputs": [asdict(t) for t in outputs],
            "ops": dict(ops.most_common()), "details": {"spec version": spec.specificationVersion,
                                                         "model type": spec.WhichOneof("Type")},
            "metadata": _coreml_metadata(spec)}


# Each format's own metadata, in one shape: name, description, author, license, version,
# inputs/outputs {tensor: description}, and what else the format carries ("extra").

def _card(name="", description="", author="", license="", version="", inputs=None, outputs=None,
          extra=None) -> dict[str, Any]:
    return {"name": name, "description": description, "author": author, "license": license, "version": version,
            "inputs": {k: v for k, v in (inputs or {}).items() if v},
            "outputs": {k: v for k, v in (outputs or {}).items() if v}, "extra": extra or {}}


def _tflite_metadata(model, path: Path) -> dict[str, Any] | None:
    """TFLite Metadata (TFLITE_METADATA buffer and its associated files), or None."""
    from .tflite_metadata import read_metadata

    meta = read_metadata(model, path.read_bytes())
    if meta is None:
        return None
    extra: dict[str, Any] = {"files": sorted(meta.files)}
    for t in meta.inputs:
        if t.mean is not None:
            extra[f"{t.name} normalization"] = f"(pixel - {t.mean}) / {t.std}"
        if t.color_space:
            extra[f"{t.name} colour space"] = t.color_space
    labels = meta.labels()
    if labels:
        extra["labels"] = f"{len(labels)} labels"
    return _card(meta.name, meta.description, meta.author, meta.license, meta.version,
                 {t.name: t.description for t in meta.inputs}, {t.name: t.description for t in meta.outputs}, extra)


def _onnx_metadata(model) -> dict[str, Any]:
    """doc_string, metadata_props and the graph inputs'/outputs' doc_string."""
    props = {p.key: p.value for p in model.metadata_props}
    extra = {k: v for k, v in props.items() if k not in ("model_author", "model_license", "name", "version")}
    if model.model_version:
        extra["model_version"] = model.model_version
    return _card(props.get("name", ""), model.doc_string, props.get("model_author", ""),
                 props.get("model_license", ""), props.get("version", ""),
                 {i.name: i.doc_string for i in model.graph.input}, {o.name: o.doc_string for o in model.graph.output},
                 extra)


def _openvino_metadata(model) -> dict[str, Any]:
    """rt_info's model_info section (strings, nested inputs/outputs)."""
    def plain(value):
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value.astype(str) if hasattr(value, "astype") else str(value)   # OVAny leaves

    info = plain(model.get_rt_info()["model_info"]) if model.has_rt_info(["model_info"]) else {}
    fields = ("name", "description", "author", "license", "version", "inputs", "outputs")
    return _card(*(info.get(k, "") for k in fields[:5]), info.get("inputs") or {}, info.get("outputs") or {},
                 {k: v for k, v in info.items() if k not in fields})


def _coreml_metadata(spec) -> dict[str, Any]:
    """What Xcode shows: author, license, version, description, and each feature's description."""
    meta = spec.description.metadata
    user = dict(meta.userDefined)
    return _card(user.pop("name", ""), meta.shortDescription, meta.author, meta.license, meta.versionString,
                 {f.name: f.shortDescription for f in spec.description.input},
                 {f.name: f.shortDescription for f in spec.description.output}, user)


INSPECTORS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "tflite": _tflite, "onnx": _onnx, "openvino": _openvino, "coreml": _coreml,
}


def inspect_model(path: Path) -> dict[str, Any]:
    path = Path(path)
    fmt = detect(path)
    inspector = INSPECTORS.get(fmt)
    report: dict[str, Any] = {"path": str(path), "format": fmt, "size_bytes": size_of_artifact(path),
                              "inputs": [], "outputs": [], "ops": {}, "details": {}, "metadata": None}
    if inspector is None:
        report["details"]["note"] = f"{fmt} is a source format; convert it to inspect the edge artifact"
    else:
        from .runtime.validate import check_structure

        check_structure(path, fmt)   # damaged files: one line, before any native reader
        report.update(inspector(path))
    manifest = read_manifest(path)
    report["manifest"] = manifest.to_dict() if manifest else None
    return report
