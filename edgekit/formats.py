"""Say what a path holds from its content (magic bytes, archive members, directory layout).

The suffix is only used to word errors ("model.onnx is really a JPEG image").
"""
from __future__ import annotations

import zipfile
from pathlib import Path

from .errors import REMEDY_REEXPORT, ModelFormatError


# magic prefix -> what it is, for files that are clearly not models
_NOT_MODELS = {
    b"\xff\xd8\xff": "a JPEG image",
    b"\x89PNG\r\n\x1a\n": "a PNG image",
    b"GIF8": "a GIF image",
    b"%PDF": "a PDF document",
    b"\x1f\x8b": "a gzip archive (unpack it first)",
    b"\x7fELF": "an executable",
}


def detect(path: Path) -> str:
    """Return the format name: keras, keras-h5, savedmodel, tflite, onnx, torchscript,
    torch-export, openvino, coreml. Raise ModelFormatError for anything else."""
    path = Path(path)
    if not path.exists():
        raise ModelFormatError(f"{path}: no such file or directory", "check the path")
    if path.is_dir():
        return _detect_dir(path)
    size = path.stat().st_size
    if size == 0:
        raise ModelFormatError(f"{path} is empty (0 bytes)", REMEDY_REEXPORT)
    with open(path, "rb") as handle:
        head = handle.read(64)
    for magic, what in _NOT_MODELS.items():
        if head.startswith(magic):
            raise ModelFormatError(f"{path} is {what}, not a model", "pass the model file itself")
    if head[4:8] == b"TFL3":
        return "tflite"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "keras-h5"
    if head.startswith(b"PK\x03\x04"):
        return _detect_zip(path)
    if head.lstrip().startswith(b"<?xml") or head.lstrip().startswith(b"<net"):
        return "openvino"
    if _looks_like_onnx(head):
        return "onnx"
    raise ModelFormatError(f"{path} is not a model edgekit recognises (suffix '{path.suffix}', "
                           f"content starts {head[:8].hex()})",
                           "accepted: Keras .keras/.h5, SavedModel directory, .tflite, .onnx, "
                           "TorchScript .pt, torch.export .pt2")


def _detect_dir(path: Path) -> str:
    if (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file():
        return "savedmodel"
    if (path / "Manifest.json").is_file() and (path / "Data").is_dir():
        return "coreml"
    raise ModelFormatError(f"{path} is a directory without saved_model.pb",
                           "pass a SavedModel directory or a model file")


def _detect_zip(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelFormatError(f"{path} is a damaged zip archive ({exc})", REMEDY_REEXPORT) from None
    tails = {name.split("/", 1)[-1] for name in names}
    if "config.json" in names and ("model.weights.h5" in names or "metadata.json" in names):
        return "keras"
    if any(name.endswith("serialized_exported_program.json") or name.endswith("models/model.json")
           for name in names) or "archive_format" in tails and any("exported_program" in n for n in names):
        return "torch-export"
    if "data.pkl" in tails and ("constants.pkl" in tails or any("/code/" in n for n in names)):
        return "torchscript"
    if "data.pkl" in tails:
        raise ModelFormatError(f"{path} is a PyTorch checkpoint (state_dict or pickled module), not a "
                               "self-contained model", "export it with torch.jit.script/trace or "
                               "torch.export.save, or pass the nn.Module through the Python API")
    raise ModelFormatError(f"{path} is a zip archive that holds no known model", REMEDY_REEXPORT)


def _looks_like_onnx(head: bytes) -> bool:
    """ONNX is a protobuf ModelProto. Writers put ir_version (field 1, varint) first, though
    any field order is legal; accept a leading field tag of ModelProto with a sane wire type."""
    if not head:
        return False
    tag = head[0]
    field, wire = tag >> 3, tag & 7
    # ModelProto fields: 1 ir_version, 2 producer_name, 3 producer_version, 4 domain,
    # 5 model_version, 6 doc_string, 7 graph, 8 opset_import, 14 metadata_props, 20 training_info, 25 functions
    expected = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2}
    return expected.get(field) == wire
