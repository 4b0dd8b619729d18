"""TFLite flatbuffers (`.tflite`), plain, int8 or compiled for the Edge TPU."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import REMEDY_REEXPORT, ModelFormatError
from .base import Evidence, Format, Inspection, metadata_card, register

def _sniff(evidence: Evidence) -> bool:
    return evidence.head[4:8] == b"TFL3"   # the flatbuffer file identifier


def _check(path: Path) -> None:
    """The bounds-checked flatbuffer reader, then every constant's buffer against its shape, by
    LiteRT's own size rule (tflite_model.check_constants: never refuses a file LiteRT loads)."""
    from ..tflite_model import check_constants, read_tflite

    model = read_tflite(path)
    if not model.subgraphs or not model.inputs() or not model.outputs():
        raise ModelFormatError(f"{path} has no subgraph with inputs and outputs", REMEDY_REEXPORT)
    check_constants(model)


def _inspect(path: Path) -> Inspection:
    from ..sources.tflite import tensor_info
    from ..tflite_model import read_tflite

    model = read_tflite(path)
    custom = sorted({op.name for sg in model.subgraphs for op in sg.operators if op.builtin == "CUSTOM"})
    return Inspection(
        inputs=[tensor_info(t) for t in model.inputs()], outputs=[tensor_info(t) for t in model.outputs()],
        ops=model.op_counts(),
        details={"schema version": model.version, "subgraphs": len(model.subgraphs),
                 "parameter bytes": model.parameter_bytes(), "fully integer": model.is_fully_integer(),
                 "dynamic shapes": model.has_dynamic_shapes(), "custom ops": ", ".join(custom) or "none",
                 "signatures": ", ".join(s.key for s in model.signature_defs) or "none (no signature defs)",
                 **_edgetpu_details(model)},
        metadata=_metadata(model, path))


def _metadata(model, path: Path) -> dict[str, Any] | None:
    """TFLite Metadata (the TFLITE_METADATA buffer and its associated files), or None."""
    from ..tflite_metadata import read_metadata

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
    return metadata_card(meta.name, meta.description, meta.author, meta.license, meta.version,
                         {t.name: t.description for t in meta.inputs}, {t.name: t.description for t in meta.outputs},
                         extra)


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


TFLITE = register(Format(
    name="tflite", title="TFLite", suffixes=(".tflite",), sniff=_sniff, rank=10,
    source="tflite", backend="litert", check=_check, inspector=_inspect))
