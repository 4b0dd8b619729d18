"""Core ML: an `.mlpackage` directory (ML program) or a single-file `.mlmodel` (a protobuf Model)."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from ..errors import REMEDY_REEXPORT, ModelFormatError, summary
from .base import Evidence, Format, Inspection, metadata_card, register

# Core ML's Model message: 1 specificationVersion (varint), 2 description (message), and the
# model type as a oneof of fields numbered 200 and up (pipeline 200 ... mlProgram 502).
_FIRST_TYPE_FIELD = 200


def _package(path: Path) -> bool:
    return (path / "Manifest.json").is_file() and (path / "Data").is_dir()


def _top_fields(path: Path, limit: int = 16) -> list[tuple[int, int]] | None:
    """(field, wire type) of the first top-level protobuf fields, skipping their payloads; None
    when the bytes are not a protobuf message."""
    fields: list[tuple[int, int]] = []
    size = path.stat().st_size
    with open(path, "rb") as handle:
        while len(fields) < limit and handle.tell() < size:
            tag = _varint(handle)
            if tag is None or tag >> 3 == 0:
                return None
            number, wire = tag >> 3, tag & 7
            if wire == 0:
                if _varint(handle) is None:
                    return None
            elif wire == 2:
                length = _varint(handle)
                if length is None or handle.tell() + length > size:
                    return None
                handle.seek(length, 1)
            elif wire in (1, 5):
                handle.seek(8 if wire == 1 else 4, 1)
            else:
                return None
            fields.append((number, wire))
    return fields


def _varint(handle) -> int | None:
    value = shift = 0
    for _ in range(10):
        byte = handle.read(1)
        if not byte:
            return None
        value |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return value
        shift += 7
    return None


def _is_mlmodel(path: Path) -> bool:
    fields = _top_fields(path)
    return bool(fields) and fields[0] == (1, 0) and any(n >= _FIRST_TYPE_FIELD and w == 2 for n, w in fields)


def _sniff(evidence: Evidence) -> bool:
    if evidence.directory:
        return _package(evidence.path)
    # a protobuf's first tag: Core ML's specificationVersion looks like ONNX's ir_version, so
    # look for the model-type field ONNX never has
    return evidence.head[:1] == b"\x08" and _is_mlmodel(evidence.path)


def _check(path: Path) -> None:
    """A package: Manifest.json lists items that exist under Data/. A .mlmodel: a protobuf whose
    top-level fields hold together and that names its model type."""
    if not path.is_dir():
        if not _is_mlmodel(path):
            raise ModelFormatError(f"{path} is not a valid Core ML model (truncated or corrupt protobuf)",
                                   REMEDY_REEXPORT)
        return
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


def class_labels(labels: list[str]) -> list[str]:
    """The class labels a Core ML classifier is given for LABELS (in class order): each label
    once. Core ML returns the scores as a dictionary keyed by label, so a repeated label (ImageNet
    has 'crane' and 'maillot' twice) would lose a class there; a repeat becomes 'LABEL (INDEX)'."""
    seen: set[str] = set()
    unique = []
    for index, label in enumerate(labels):
        unique.append(f"{label} ({index})" if label in seen else label)
        seen.add(label)
    return unique


def describe(spec) -> tuple[list, list]:
    """Inputs and outputs of a Core ML spec as TensorInfo lists (an ImageType input is "image")."""
    from ..manifest import TensorInfo

    def info(feature) -> TensorInfo:
        kind = feature.type.WhichOneof("Type")
        if kind == "imageType":
            t = feature.type.imageType
            channels = 1 if t.colorSpace == t.GRAYSCALE else 3
            return TensorInfo(feature.name, [1, channels, int(t.height), int(t.width)], "image")
        if kind == "multiArrayType":
            return TensorInfo(feature.name, [int(d) for d in feature.type.multiArrayType.shape], "float32")
        return TensorInfo(feature.name, [], kind or "unknown")

    return [info(f) for f in spec.description.input], [info(f) for f in spec.description.output]


def _inspect(path: Path) -> Inspection:
    from ..deps import require

    ct = require("coremltools", "inspecting Core ML models")
    spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    inputs, outputs = describe(spec)
    ops: Counter = Counter()
    if spec.WhichOneof("Type") == "mlProgram":
        for function in spec.mlProgram.functions.values():
            for block in function.block_specializations.values():
                ops.update(op.type for op in block.operations)
    return Inspection(inputs=inputs, outputs=outputs, ops=dict(ops.most_common()),
                      details={"spec version": spec.specificationVersion, "model type": spec.WhichOneof("Type")},
                      metadata=_metadata(spec))


def _metadata(spec) -> dict:
    """What Xcode shows: author, license, version, description, and each feature's description."""
    meta = spec.description.metadata
    user = dict(meta.userDefined)
    return metadata_card(user.pop("name", ""), meta.shortDescription, meta.author, meta.license, meta.versionString,
                         {f.name: f.shortDescription for f in spec.description.input},
                         {f.name: f.shortDescription for f in spec.description.output}, user)


COREML = register(Format(
    name="coreml", title="Core ML", suffixes=(".mlpackage", ".mlmodel"), sniff=_sniff, rank=80,
    backend="coreml", check=_check, inspector=_inspect))
