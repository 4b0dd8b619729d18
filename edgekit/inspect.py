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
    custom = sorted({op.name for sg in model.subgraphs for op in sg.operators if op.builtin == "CUSTOM"})
    edgetpu = _edgetpu_details(model)
    return {"inputs": [asdict(tensor_info(t)) for t in model.inputs()],
            "outputs": [asdict(tensor_info(t)) for t in model.outputs()],
            "ops": model.op_counts(),
            "details": {"schema version": model.version, "subgraphs": len(model.subgraphs),
                        "parameter bytes": model.parameter_bytes(), "fully integer": model.is_fully_integer(),
                        "dynamic shapes": model.has_dynamic_shapes(), "custom ops": ", ".join(custom) or "none",
                        "signatures": ", ".join(s.key for s in model.signature_defs) or "none (no signature defs)",
                        **edgetpu}}


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
                        "producer": f"{model.producer_name} {model.producer_version}".strip()}}


def _openvino(path: Path) -> dict[str, Any]:
    ov = require("openvino", "inspecting OpenVINO IR")
    from .runtime.openvino import _info
    from .runtime.validate import read_openvino_checked

    model = read_openvino_checked(ov, path)
    ops = Counter(op.get_type_name() for op in model.get_ops())
    return {"inputs": [asdict(_info(p)) for p in model.inputs], "outputs": [asdict(_info(p)) for p in model.outputs],
            "ops": dict(ops.most_common()), "details": {"weights": str(path.with_suffix(".bin").name)}}


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
                                                         "model type": spec.WhichOneof("Type")}}


INSPECTORS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "tflite": _tflite, "onnx": _onnx, "openvino": _openvino, "coreml": _coreml,
}


def inspect_model(path: Path) -> dict[str, Any]:
    path = Path(path)
    fmt = detect(path)
    inspector = INSPECTORS.get(fmt)
    report: dict[str, Any] = {"path": str(path), "format": fmt, "size_bytes": size_of_artifact(path),
                              "inputs": [], "outputs": [], "ops": {}, "details": {}}
    if inspector is None:
        report["details"]["note"] = f"{fmt} is a source format; convert it to inspect the edge artifact"
    else:
        from .runtime.validate import check_structure

        check_structure(path, fmt)   # damaged files: one line, before any native reader
        report.update(inspector(path))
    manifest = read_manifest(path)
    report["manifest"] = manifest.to_dict() if manifest else None
    return report
