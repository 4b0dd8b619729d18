"""TFLite Metadata (flatbuffer identifier ``M001``): reader and writer.

The format is the one tflite-support's MetadataPopulator writes (AutoML Vision Edge, Model
Maker, TF Hub models): a metadata flatbuffer stored in a model buffer named TFLITE_METADATA,
plus the associated files (labels, ...) in a zip archive appended to the model file.
Reading needs no TensorFlow; writing re-packs the model with TensorFlow's object API.

Vtable slots, from tensorflow_lite_support/metadata/metadata_schema.fbs (field order):
  ModelMetadata: 0 name, 1 description, 2 version, 3 subgraph_metadata, 4 author, 5 license,
                 6 associated_files, 7 min_parser_version
  SubGraphMetadata: 0 name, 1 description, 2 input_tensor_metadata, 3 output_tensor_metadata,
                    4 associated_files, 5 input_process_units, 6 output_process_units, ...
  TensorMetadata: 0 name, 1 description, 2 dimension_names, 3 content, 4 process_units,
                  5 stats, 6 associated_files
  Content: 0/1 content_properties (union type/value: 1 FeatureProperties, 2 ImageProperties,
           3 BoundingBoxProperties, 4 AudioProperties), 2 range
  ImageProperties: 0 color_space:byte, 1 default_size
  ProcessUnit: 0/1 options (union type/value: 1 NormalizationOptions, ...)
  NormalizationOptions: 0 mean:[float], 1 std:[float];  Stats: 0 max:[float], 1 min:[float]
  AssociatedFile: 0 name, 1 description, 2 type:byte, 3 locale, 4 version
"""
from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field

from edgekit.errors import ModelFormatError
from edgekit.tflite_model import (_HINT, _I8, _U8, TFLiteModel, _name, _Reader, _Table,
                                  parse_tflite)

METADATA_NAME = "TFLITE_METADATA"
_FILE_TYPES = ("UNKNOWN", "DESCRIPTIONS", "TENSOR_AXIS_LABELS", "TENSOR_VALUE_LABELS",
               "TENSOR_AXIS_SCORE_CALIBRATION", "VOCABULARY", "SCANN_INDEX_FILE")
_COLOR_SPACES = ("UNKNOWN", "RGB", "GRAYSCALE")
_FEATURE_PROPERTIES, _IMAGE_PROPERTIES, _NORMALIZATION_OPTIONS = 1, 2, 1
_MAX_FILES_BYTES = 256 << 20  # associated files are labels and vocabularies, never this big


@dataclass
class TensorMeta:
    """Metadata of one input or output tensor."""

    name: str = ""
    description: str = ""
    mean: list[float] | None = None  # NormalizationOptions of the tensor's process units
    std: list[float] | None = None
    min: list[float] | None = None  # Stats
    max: list[float] | None = None
    color_space: str | None = None  # 'RGB' / 'GRAYSCALE' when the content is an image
    associated_files: list[dict] = field(default_factory=list)


@dataclass
class ModelMetadata:
    """The TFLITE_METADATA of a model, with the associated files packed after it."""

    name: str = ""
    description: str = ""
    version: str = ""
    author: str = ""
    license: str = ""
    inputs: list[TensorMeta] = field(default_factory=list)
    outputs: list[TensorMeta] = field(default_factory=list)
    associated_files: list[dict] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)  # contents of the appended zip
    min_parser_version: str = ""

    def labels(self) -> list[str] | None:
        """Lines of output 0's first label file, or None when it has none."""
        for f in self.outputs[0].associated_files if self.outputs else ():
            if f.get("type") in ("TENSOR_AXIS_LABELS", "TENSOR_VALUE_LABELS"):
                content = self.files.get(f.get("name", ""))
                return None if content is None else content.decode("utf-8", "replace").splitlines()
        return None


def _files_of(t: _Table, slot: int) -> list[dict]:
    out = []
    for f in t.tables(slot, "associated file"):
        entry = {"name": f.string(0, "name"), "type": _name(_FILE_TYPES, f.scalar(2, _I8), "TYPE"),
                 "description": f.string(1, "description")}
        for key, s in (("locale", 3), ("version", 4)):
            if value := f.string(s, key):
                entry[key] = value
        out.append(entry)
    return out


def _floats(t: _Table | None, slot: int, what: str) -> list[float] | None:
    return t.scalars(slot, "f", what) if t else None


def _tensor_meta(t: _Table) -> TensorMeta:
    meta = TensorMeta(name=t.string(0, "name"), description=t.string(1, "description"),
                      associated_files=_files_of(t, 6))
    content = t.table(3, "content")
    if content and content.scalar(0, _U8) == _IMAGE_PROPERTIES:
        image = content.table(1, "image properties")
        if image:
            meta.color_space = _name(_COLOR_SPACES, image.scalar(0, _I8), "COLOR_SPACE")
    for unit in t.tables(4, "process unit"):
        if unit.scalar(0, _U8) == _NORMALIZATION_OPTIONS:
            norm = unit.table(1, "normalization options")
            meta.mean, meta.std = _floats(norm, 0, "mean"), _floats(norm, 1, "std")
            break
    stats = t.table(5, "stats")
    meta.max, meta.min = _floats(stats, 0, "max"), _floats(stats, 1, "min")
    return meta


def _packed_files(data: bytes, origin: str) -> dict[str, bytes]:
    """Files of the zip archive appended to a model, {} when there is none."""
    try:
        buf = io.BytesIO(data)  # shares the memory of a bytes object, no copy
        if not zipfile.is_zipfile(buf):
            return {}
        with zipfile.ZipFile(buf) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            if sum(i.file_size for i in infos) > _MAX_FILES_BYTES:
                raise ModelFormatError(f"{origin} has associated files that unpack to more than "
                                       f"{_MAX_FILES_BYTES >> 20} MiB", _HINT)
            return {i.filename: zf.read(i) for i in infos}
    except ModelFormatError:
        raise
    except Exception as e:  # zipfile raises many types (BadZipFile, EOFError, zlib.error, ...)
        raise ModelFormatError(f"{origin} is truncated or corrupt: the zip archive of associated "
                               f"files appended to the model cannot be read ({e})", _HINT) from None


def read_metadata(model: TFLiteModel, data: bytes) -> ModelMetadata | None:
    """The model's TFLite Metadata, or None when it has none. data: the whole model file."""
    index = model.metadata.get(METADATA_NAME)
    buf = model.buffers[index] if index is not None else None
    if not buf or not buf.size:
        return None
    raw = bytes(data[buf.offset:buf.offset + buf.size])
    if len(raw) != buf.size:
        raise ModelFormatError(f"{model.path} is truncated or corrupt: the {METADATA_NAME} buffer "
                               f"points past the end of the file", _HINT)
    if raw[4:8] != b"M001":
        raise ModelFormatError(f"{model.path} has a {METADATA_NAME} buffer that is not TFLite "
                               f"Metadata (expected identifier 'M001', found {raw[4:8]!r})", _HINT)
    r = _Reader(raw, model.path, f"the {METADATA_NAME} buffer")
    root = r.root("metadata")
    subgraphs = root.tables(3, "subgraph metadata", "subgraph metadata")
    sg = subgraphs[0] if subgraphs else None
    tensors = [[_tensor_meta(t) for t in sg.tables(slot, kind, kind)] if sg else []
               for slot, kind in ((2, "input tensor metadata"), (3, "output tensor metadata"))]
    return ModelMetadata(
        name=root.string(0, "name"), description=root.string(1, "description"),
        version=root.string(2, "version"), author=root.string(4, "author"),
        license=root.string(5, "license"),
        inputs=tensors[0], outputs=tensors[1], associated_files=_files_of(root, 6),
        files=_packed_files(data, model.path),
        min_parser_version=root.string(7, "min parser version"))


def _min_parser_version(files: list[dict]) -> str:
    """Oldest metadata parser that understands every field written (metadata_version.cc)."""
    version = (1, 0, 0)
    for f in files:
        if f.get("type") == "VOCABULARY":
            version = max(version, (1, 0, 1))
        if f.get("type") == "SCANN_INDEX_FILE":
            version = max(version, (1, 4, 0))
        if f.get("version"):
            version = max(version, (1, 4, 1))
    return ".".join(map(str, version))


def _build_metadata(md: ModelMetadata, inputs: list[TensorMeta],
                    outputs: list[TensorMeta]) -> tuple[bytes, list[dict]]:
    """The metadata flatbuffer, and every associated file it names."""
    import flatbuffers  # writer only; comes with TensorFlow

    b = flatbuffers.Builder(1024)
    all_files = list(md.associated_files)

    # Children (strings, vectors, tables) must be finished before their parent table starts.
    def obj(refs=(), bytes_=()):
        """A table from (slot, offset) and (slot, byte value) pairs, skipping absent ones."""
        b.StartObject(8)  # the most fields any table written here has
        for slot, off in refs:
            if off:
                b.PrependUOffsetTRelativeSlot(slot, off, 0)
        for slot, value in bytes_:
            b.PrependUint8Slot(slot, value, 0)
        return b.EndObject()

    def string(text):
        return b.CreateString(text) if text else 0

    def vector(items, prepend=None):
        """A vector of table offsets, or of floats with prepend=b.PrependFloat32."""
        if not items:
            return 0
        b.StartVector(4, len(items), 4)
        for v in reversed(items):
            (prepend or b.PrependUOffsetTRelative)(v)
        return b.EndVector()

    def floats(first, second):
        """A table of two float vectors (NormalizationOptions, Stats)."""
        return obj([(0, vector(first, b.PrependFloat32)), (1, vector(second, b.PrependFloat32))])

    def files(entries):
        out = []
        for f in entries:
            kind = f.get("type", "UNKNOWN")
            if kind not in _FILE_TYPES:
                raise ValueError(f"unknown associated file type '{kind}'; valid: {_FILE_TYPES}")
            out.append(obj([(0, string(f["name"])), (1, string(f.get("description"))),
                            (3, string(f.get("locale"))), (4, string(f.get("version")))],
                           [(2, _FILE_TYPES.index(kind))]))
        return vector(out)

    def tensor(t: TensorMeta):
        all_files.extend(t.associated_files)
        if t.color_space and t.color_space not in _COLOR_SPACES:
            raise ValueError(f"unknown color space '{t.color_space}'; valid: {_COLOR_SPACES}")
        if t.color_space:
            props, kind = obj(bytes_=[(0, _COLOR_SPACES.index(t.color_space))]), _IMAGE_PROPERTIES
        else:
            props, kind = obj(), _FEATURE_PROPERTIES
        content = obj([(1, props)], [(0, kind)])
        units = 0
        if t.mean or t.std:
            units = vector([obj([(1, floats(t.mean, t.std))], [(0, _NORMALIZATION_OPTIONS)])])
        stats = floats(t.max, t.min) if t.max or t.min else 0
        return obj([(0, string(t.name)), (1, string(t.description)), (3, content), (4, units),
                    (5, stats), (6, files(t.associated_files))])

    subgraph = obj([(2, vector([tensor(t) for t in inputs])),
                    (3, vector([tensor(t) for t in outputs]))])
    model_files = files(md.associated_files)
    root = obj([(0, string(md.name)), (1, string(md.description)), (2, string(md.version)),
                (3, vector([subgraph])), (4, string(md.author)), (5, string(md.license)),
                (6, model_files), (7, string(_min_parser_version(all_files)))])
    b.Finish(root, file_identifier=b"M001")
    return bytes(b.Output()), all_files


def write_metadata(tflite_bytes: bytes, metadata: ModelMetadata,
                   files: dict[str, bytes] | None = None) -> bytes:
    """The model with `metadata` as its TFLITE_METADATA, as MetadataPopulator writes it.

    Associated files already packed in the model are kept; metadata.files and `files` add to or
    replace them. Empty metadata.inputs/outputs get one blank entry per model input/output.
    """
    model = parse_tflite(tflite_bytes, "the model passed to write_metadata")
    if not model.subgraphs:
        raise ModelFormatError("the model passed to write_metadata has no subgraph", _HINT)
    inputs = metadata.inputs or [TensorMeta() for _ in model.subgraphs[0].inputs]
    outputs = metadata.outputs or [TensorMeta() for _ in model.subgraphs[0].outputs]
    if (len(inputs), len(outputs)) != (len(model.subgraphs[0].inputs),
                                       len(model.subgraphs[0].outputs)):
        raise ValueError(f"metadata describes {len(inputs)} inputs and {len(outputs)} outputs, "
                         f"the model has {len(model.subgraphs[0].inputs)} and "
                         f"{len(model.subgraphs[0].outputs)}")
    meta_buf, recorded = _build_metadata(metadata, inputs, outputs)
    packed = {**_packed_files(tflite_bytes, model.path), **metadata.files, **(files or {})}
    missing = sorted({f["name"] for f in recorded} - packed.keys())
    if missing:
        raise ValueError(f"associated files {missing} are named in the metadata but their "
                         f"contents were not given")

    import flatbuffers
    import numpy as np
    from tensorflow.lite.python import schema_py_generated as schema

    m = schema.ModelT.InitFromPackedBuf(tflite_bytes, 0)
    meta_buffer = schema.BufferT()
    meta_buffer.data = np.frombuffer(meta_buf, np.uint8)
    m.metadata, m.buffers = m.metadata or [], m.buffers or []
    # Names read back from a file are bytes; entries created here hold str.
    entry = next((e for e in m.metadata if e.name in (METADATA_NAME, METADATA_NAME.encode())), None)
    if entry:
        m.buffers[entry.buffer] = meta_buffer
    else:
        m.buffers.append(meta_buffer)
        entry = schema.MetadataT()
        entry.name, entry.buffer = METADATA_NAME, len(m.buffers) - 1
        m.metadata.append(entry)

    # Models over 2 GiB keep weights after the flatbuffer, at absolute offsets: move them
    # behind the new (differently sized) flatbuffer and point the offsets there.
    external = [(b, "offset", b.offset, b.size) for b in m.buffers if b.offset > 1]
    external += [(op, "largeCustomOptionsOffset", op.largeCustomOptionsOffset,
                  op.largeCustomOptionsSize)
                 for sg in m.subgraphs or [] for op in sg.operators or []
                 if op.largeCustomOptionsOffset > 1]

    def pack() -> bytes:
        builder = flatbuffers.Builder(1024)
        builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())

    out = pack()
    if external:
        tail, pos = bytearray(), len(out)
        for holder, attr, offset, size in external:
            tail += bytes(-(pos + len(tail)) % 16)  # TFLite aligns external data to 16 bytes
            setattr(holder, attr, pos + len(tail))
            tail += tflite_bytes[offset:offset + size]
        out = pack()
        # Offsets stay non-zero, so the flatbuffer keeps its size and the data its position.
        if len(out) != pos:  # an internal invariant, not user input: fail loudly, even under -O
            raise RuntimeError("re-packed flatbuffer changed size")
        out += tail

    if not packed:
        return out
    zipped = io.BytesIO(out)
    with zipfile.ZipFile(zipped, "a") as zf:  # appends an archive, as tflite-support does
        for name, content in packed.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), content)
    return zipped.getvalue()
