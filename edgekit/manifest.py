"""The manifest: the sidecar `<artifact>.edgekit.json` that carries every fact a later stage needs.

Later stages (verify, runtime, bench, deploy) read preprocessing, labels and quantization from
here and never guess. The schema is versioned; readers refuse a newer version.

Schema 2 (this edgekit writes it) types what schema 1 kept in `options` or bare dicts:

    inputs/outputs[].quantization   Quantization {scale, zero_point, axis}
    int8_io                         "uint8" | "int8": the I/O dtype of a full-integer TFLite model
    edgetpu                         EdgeTPUInfo {predicted, compiled {..., min_runtime_version}, compiler_note}
    detection                       DetectionSpec {format, score_threshold, iou_threshold, max_detections}
    options                         descriptive target facts no later stage reads (Core ML image input, ...)
    reference                       ReferenceInfo {file, sha256, samples, size_bytes}: the reference pack
                                    `<artifact>.edgekit.ref.npz` (edgekit/reference.py); null without one
    preprocess.channels             1 (greyscale: a picture's luma) or 3; files without it are read as 3
    preprocess.normalization        where mean/std come from: option | graph | metadata | manifest | assumed
    preprocess.graph_normalization  GraphNormalization {mean, std, units, found}: what the model does itself
    input_specs[]                   InputSpec {name, kind (image | tensor), source_name, source_shape,
                                    batch_pinned_from}: how each input is fed
    warnings                        what convert warned about while building the artifact

Schema 1 files (`options.int8_io`, `options.edgetpu`, `options.detection_format`, ...) are read
and converted on load (`upgrade_v1`); a manifest from a newer edgekit is refused in one line.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from .edgetpu.report import EdgeTPUReport
from .errors import ModelFormatError

SCHEMA_VERSION = 2
SUFFIX = ".edgekit.json"

from .frames import COLOR_ORDERS, LAYOUTS, RESIZE_MODES, TASKS  # noqa: F401  (their home: frames.py)
INT8_IO_TYPES = ("uint8", "int8")          # I/O dtypes a full-integer TFLite model may take


NORMALIZATION_ORIGINS = ("option", "graph", "metadata", "manifest", "assumed")
INPUT_KINDS = ("image", "tensor")


@dataclass
class GraphNormalization:
    """Normalization the model applies to its own input, found in its graph (a leading Keras
    Rescaling/Normalization layer, constant Sub/Div/Mul/Add at an ONNX or TFLite graph entry):
    the graph computes `(x - mean) / std` per channel on its input x. `units` says what x is:
    "pixels" (mean/std in 0-255 units, so the model takes raw 0-255 pixels: Preprocess mean 0,
    std 1) or "unit" (mean/std in 0-1 units, so it takes pixels / 255: Preprocess std 255)."""

    mean: list[float]                       # per channel (one value: every channel), in `units`
    std: list[float]
    units: str                              # pixels | unit
    found: str                              # where, e.g. "Keras Rescaling layer 'rescaling'"


@dataclass
class Preprocess:
    """How a camera frame becomes a model input: `(pixel - mean) / std`, pixels in 0-255."""

    input_size: list[int] | None = None          # [height, width]
    layout: str = "NHWC"                         # NHWC | NCHW | HW (channel-less [1, H, W])
    color_order: str = "RGB"
    resize: str = "stretch"
    mean: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    std: list[float] = field(default_factory=lambda: [255.0, 255.0, 255.0])
    assumed: list[str] = field(default_factory=list)  # fields convert had to assume
    channels: int = 3                            # 1: greyscale (the picture's BT.601 luma), 3: colour
    normalization: str | None = None             # where mean/std come from (NORMALIZATION_ORIGINS); None: not recorded
    graph_normalization: GraphNormalization | None = None   # what the model normalizes itself, when found

    def normalize_scale_bias(self) -> tuple[list[float], list[float]]:
        """Per-channel scale and bias such that input = pixel * scale + bias."""
        scale = [1.0 / s for s in self.std]
        bias = [-m / s for m, s in zip(self.mean, self.std)]
        return scale, bias

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocess:
        """From the manifest's JSON form; a file without `channels` (schema 1, early schema 2) is 3."""
        data = dict(data)
        graph = data.get("graph_normalization")
        if graph is not None:
            data["graph_normalization"] = _known(GraphNormalization, graph)
        return _known(cls, data)


@dataclass
class InputSpec:
    """How one model input is fed: an `image` made from a picture with the manifest's
    `preprocess` (resize, colour order, channels, normalization, layout), or a `tensor` taken as
    given (audio frames, sensor vectors: arrays from .npy/.npz, never resized or normalized)."""

    name: str                               # the artifact's input name (Manifest.inputs, same position)
    kind: str                               # image | tensor (INPUT_KINDS)
    source_name: str = ""                   # the source model's input name: --calib NAME=PATH, .npz keys
    source_shape: list[int] = field(default_factory=list)   # as the source declares it, -1 where free
    batch_pinned_from: int | None = None    # the source's batch (-1: free, or N > 1) that was pinned to 1


@dataclass
class Quantization:
    """Affine quantization of an integer tensor: real = (q - zero_point) * scale.

    One scale and zero point for the whole tensor (`axis` None), or one per channel along
    `axis` (TFLite's quantized_dimension). `scale` is in the tensor's real units per step.
    """

    scale: list[float]
    zero_point: list[int]
    axis: int | None = None

    @classmethod
    def from_params(cls, scale, zero_point, axis: int = 0) -> Quantization:
        """From a runtime's parameters (any sequences); AXIS is kept only for several scales."""
        scale = [float(s) for s in scale]
        return cls(scale, [int(z) for z in zero_point], int(axis) if len(scale) > 1 else None)

    def broadcast(self, ndim: int) -> tuple[np.ndarray, np.ndarray]:
        """float32 scale and zero point, shaped to broadcast over an array of rank NDIM."""
        scale = np.asarray(self.scale, np.float32)
        zero = np.asarray(self.zero_point, np.float32)
        if self.axis is not None and scale.size > 1:
            shape = [1] * ndim
            shape[self.axis] = scale.size
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        return scale, zero


@dataclass
class TensorInfo:
    """One model input or output: name, shape (-1 where dynamic), numpy dtype name ('float32',
    'uint8', ...; 'image' for a Core ML image input) and, for integer tensors, quantization."""

    name: str
    shape: list[int]
    dtype: str
    quantization: Quantization | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TensorInfo:
        data = dict(data)
        if data.get("quantization") is not None:
            data["quantization"] = Quantization(**data["quantization"])
        return cls(**data)


@dataclass
class DetectionSpec:
    """How detection outputs become boxes (runtime/postprocess/detect.py). A field left None
    takes the decoder's default; `edgekit predict` options override the recorded values."""

    format: str | None = None              # runtime/postprocess/detect.FORMATS; None: read from the output shapes
    score_threshold: float | None = None   # keep boxes scoring at least this, 0..1
    iou_threshold: float | None = None     # NMS merges boxes overlapping more than this IoU, 0..1
    max_detections: int | None = None      # at most this many boxes per image


@dataclass
class EdgeTPUCompiled:
    """What edgetpu_compiler made of the int8 model, beside it in the output folder."""

    artifact: str | None                   # file name of the compiled `_edgetpu.tflite`
    compiler: str                          # the executable's name
    compiler_version: str | None
    min_runtime_version: int | None        # `-m` given to the compiler; None: its own default
    report: EdgeTPUReport                  # the compiler's own verdict, parsed from its log

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EdgeTPUCompiled:
        return cls(**{**data, "report": EdgeTPUReport.from_dict(data["report"])})


@dataclass
class EdgeTPUInfo:
    """The Edge TPU target's report: the offline prediction, and the compiled model when a
    compiler was available (else `compiler_note` says why not and how to get one)."""

    predicted: EdgeTPUReport
    compiled: EdgeTPUCompiled | None = None
    compiler_note: str | None = None

    @property
    def min_runtime_version(self) -> int | None:
        """The Edge TPU runtime (libedgetpu) version the compiled model needs; None when uncompiled."""
        if self.compiled is None:
            return None
        return self.compiled.min_runtime_version or self.compiled.report.min_runtime_version

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EdgeTPUInfo:
        compiled = data.get("compiled")
        return cls(predicted=EdgeTPUReport.from_dict(data["predicted"]),
                   compiled=EdgeTPUCompiled.from_dict(compiled) if compiled else None,
                   compiler_note=data.get("compiler_note"))


@dataclass
class OutputParity:
    """One output of an artifact against the source's over the verify samples (verify.compare).
    Besides the pooled cosine, the cosine of each channel group (verify.group_axis: each row of
    [1, C, N], each column of [1, N, C], each channel of a feature map), the worst one gated."""

    name: str
    cosine: float
    max_abs_error: float
    mean_abs_error: float
    top1_agreement: float | None = None            # over every sample
    top1_agreement_decisive: float | None = None   # over the samples where the source is decisive (gated)
    decisive_samples: int | None = None
    group_axis: int | None = None                  # axis of the output's shape (batch first) whose entries are groups
    group_name: str | None = None                  # what one group is: row ([1, C, N]), column ([1, N, C]), channel
    groups: int | None = None                      # how many groups along it (None: the output is one group)
    worst_group: int | None = None                 # index along group_axis of the lowest-cosine group
    worst_group_cosine: float | None = None
    worst_group_range: list[float] | None = None   # [min, max] of the source's values in that group
    narrowest_group: int | None = None             # index of the group whose source values spread least
    narrowest_group_range: list[float] | None = None
    quantization_step: float | None = None         # int8 outputs: real units per step (declared, or seen in the values)
    relative_error: float | None = None            # largest |error| / its channel group's scale (fp32 gate: 1e-3)
    relative_error_group: int | None = None        # index along group_axis of that group (None: no groups)
    row_agreement: float | None = None             # an output of run-time size (NMS indices): rows in common, 0..1

    @property
    def gated_cosine(self) -> float:
        """The lower of the pooled cosine and the worst group's: what the cosine gate compares."""
        return min(self.cosine, self.worst_group_cosine) if self.worst_group_cosine is not None else self.cosine

    def describe_worst_group(self) -> str | None:
        """'row 4'-style name of the worst group, or None without groups."""
        if self.worst_group is None:
            return None
        return f"{self.group_name or 'group'} {self.worst_group}"


def element_wise(outputs: list[OutputParity]) -> list[OutputParity]:
    """The OUTPUTS compared element by element: all but rows of run-time size (row_agreement)."""
    return [o for o in outputs if o.row_agreement is None]


@dataclass
class DetectionParity:
    """Detection-level parity on the verify photos: both sides' outputs decoded to boxes
    (frames.decode_detections), matched by class and IoU >= 0.5. Only boxes clearly above the
    score threshold count (score >= threshold + margin), matched against the other side's boxes
    down to threshold - margin, so a box hovering at the threshold does not flip the result."""

    samples: int
    source_boxes: int                  # clear source boxes over all samples
    artifact_boxes: int                # clear artifact boxes over all samples
    recall: float | None               # clear source boxes the artifact found (None: no clear box)
    precision: float | None            # clear artifact boxes the source has
    mean_iou: float | None             # over matched pairs
    score_error: float | None          # mean |score difference| over matched pairs
    score_threshold: float = 0.25
    format: str | None = None          # frames.DETECTION_FORMATS entry used on both sides


@dataclass
class MaskParity:
    """Segmentation parity: class maps of both sides (frames.class_map) compared on the pixels
    where the source is decisive (top class leads the runner-up by verify.DECISIVE_MARGIN)."""

    samples: int
    decisive_pixels: int
    mean_iou: float | None             # mean over classes present on either side of per-class IoU
    pixel_agreement: float | None


@dataclass
class StepParity:
    """An intermediate model checked against the source on the verify inputs: a bridge's output
    (onnx2tf's SavedModel, tf2onnx's ONNX) or the program handed to a converter (the traced torch
    module or TensorFlow concrete function coremltools converts). Gated like fp32 (float models)."""

    step: str                                       # "onnx → savedmodel (onnx2tf)", "coremltools input ..."
    runtime: str                                    # what ran it: tensorflow, torch, onnxruntime
    status: str                                     # pass | fail
    samples: int = 0
    outputs: list[OutputParity] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def cosine(self) -> float | None:
        return min((o.cosine for o in element_wise(self.outputs)), default=None)


@dataclass
class VerifyReport:
    status: str                                     # pass | fail | structure-only | skipped | error
    runtime: str | None = None
    samples: int = 0
    data: str | None = None                         # where the inputs came from
    gate: dict[str, float] = field(default_factory=dict)
    outputs: list[OutputParity] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cross_checks: dict[str, dict] = field(default_factory=dict)  # other runtimes, not gated
    steps: list[StepParity] = field(default_factory=list)  # intermediates on the route, checked in order
    detection: DetectionParity | None = None        # detection models: boxes matched by IoU, scores compared
    mask: MaskParity | None = None                  # segmentation models: class-map IoU

    @property
    def cosine(self) -> float | None:
        return min((o.cosine for o in element_wise(self.outputs)), default=None)

    @property
    def worst_group(self) -> OutputParity | None:
        """The output whose worst channel group has the lowest cosine, or None without groups."""
        grouped = [o for o in self.outputs if o.worst_group_cosine is not None]
        return min(grouped, key=lambda o: o.worst_group_cosine, default=None)

    @property
    def gated_cosine(self) -> float | None:
        """The lowest cosine any gate compares: per output, and per channel group within it."""
        return min((o.gated_cosine for o in element_wise(self.outputs)), default=None)

    @property
    def max_abs_error(self) -> float | None:
        return max((o.max_abs_error for o in element_wise(self.outputs)), default=None)

    @property
    def top1_agreement(self) -> float | None:
        values = [o.top1_agreement for o in self.outputs if o.top1_agreement is not None]
        return min(values, default=None)

    @property
    def top1_agreement_decisive(self) -> float | None:
        values = [o.top1_agreement_decisive for o in self.outputs if o.top1_agreement_decisive is not None]
        return min(values, default=None)

    @property
    def decisive_samples(self) -> int | None:
        return min((o.decisive_samples for o in self.outputs if o.decisive_samples is not None), default=None)

    def summary(self) -> dict[str, Any]:
        worst = self.worst_group
        return {"status": self.status, "cosine": self.cosine, "max_abs_error": self.max_abs_error,
                "worst_group": None if worst is None else {
                    "output": worst.name, "axis": worst.group_axis, "group": worst.describe_worst_group(),
                    "cosine": worst.worst_group_cosine, "range": worst.worst_group_range},
                "detection": asdict(self.detection) if self.detection else None,
                "mask": asdict(self.mask) if self.mask else None,
                "top1_agreement": self.top1_agreement, "top1_agreement_decisive": self.top1_agreement_decisive,
                "decisive_samples": self.decisive_samples, "runtime": self.runtime,
                "samples": self.samples, "notes": self.notes, "cross_checks": self.cross_checks,
                "steps": [{"step": s.step, "runtime": s.runtime, "status": s.status, "cosine": s.cosine}
                          for s in self.steps]}


@dataclass
class ReferenceInfo:
    """The artifact's reference pack (edgekit/reference.py), beside it: K preprocessed real inputs
    as its runtime is fed, the source's outputs on them and the gates. `sha256` ties the pack to
    this manifest, whose `artifact_sha256` ties it to the artifact."""

    file: str                    # file name, beside the artifact: `<artifact>.edgekit.ref.npz`
    sha256: str                  # of the pack file's bytes
    samples: int                 # K
    size_bytes: int


@dataclass
class ModelCard:
    """Who made the model and what it is for, written into every format's own metadata (Core ML
    author/license/version/description, TFLite Metadata, OpenVINO rt_info, ONNX metadata_props).
    Tensor descriptions are keyed by the SOURCE model's input/output names."""

    name: str = ""
    description: str = ""
    author: str = ""
    license: str = ""
    version: str = ""
    inputs: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)


@dataclass
class Manifest:
    """Everything later stages need about one artifact; `<artifact>.edgekit.json` beside it."""

    artifact: str                                   # file or directory name, beside the manifest
    target: str
    precision: str
    task: str = "other"
    labels: list[str] = field(default_factory=list)
    preprocess: Preprocess = field(default_factory=Preprocess)
    inputs: list[TensorInfo] = field(default_factory=list)
    outputs: list[TensorInfo] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)        # kind, path, sha256
    route: list[str] = field(default_factory=list)             # conversion steps, in order
    route_candidates: list[dict[str, Any]] = field(default_factory=list)
    converters: dict[str, str] = field(default_factory=dict)   # library -> version
    calibration: dict[str, Any] | None = None
    int8_io: str | None = None                      # full-integer TFLite: I/O dtype, one of INT8_IO_TYPES
    edgetpu: EdgeTPUInfo | None = None              # edgetpu target: prediction and compiled model
    detection: DetectionSpec | None = None          # detection models: how outputs become boxes
    options: dict[str, Any] = field(default_factory=dict)      # descriptive target facts nothing reads
    input_specs: list[InputSpec] = field(default_factory=list)  # per input: image or tensor; [] (older
                                                    # manifests): every input is an image per `preprocess`
    warnings: list[str] = field(default_factory=list)          # what convert warned about for this artifact
    verify: VerifyReport | None = None
    model_card: ModelCard = field(default_factory=ModelCard)
    created: str = ""
    edgekit_version: str = ""
    schema_version: int = SCHEMA_VERSION
    artifact_sha256: str | None = None              # artifact_digest() of the artifact it describes
    reference: ReferenceInfo | None = None          # the reference pack beside the artifact (None: no pack)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def input_kinds(self) -> list[str]:
        """'image' or 'tensor' for each of `inputs`, in order; a manifest that records no
        input_specs (written before they existed) had one image input, as edgekit took then."""
        kinds = {spec.name: spec.kind for spec in self.input_specs}
        return [kinds.get(t.name, "image" if not self.input_specs else "tensor") for t in self.inputs]

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any], origin: str = "this manifest") -> Manifest:
        """A manifest from its JSON form: schema 2 as is, schema 1 converted (`upgrade_v1`).
        Raises ModelFormatError for a schema this edgekit does not know (ORIGIN names the file)."""
        version = data.get("schema_version")
        if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= SCHEMA_VERSION:
            raise ModelFormatError(f"{origin} has schema version {version!r}, which is not supported",
                                   f"this edgekit reads versions 1 to {SCHEMA_VERSION}; upgrade edgekit, "
                                   "or convert the model again")
        if version == 1:
            data = upgrade_v1(data)
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        data["preprocess"] = Preprocess.from_dict(data.get("preprocess", {}))
        data["input_specs"] = [_known(InputSpec, spec) for spec in data.get("input_specs", [])]
        data["inputs"] = [TensorInfo.from_dict(t) for t in data.get("inputs", [])]
        data["outputs"] = [TensorInfo.from_dict(t) for t in data.get("outputs", [])]
        if data.get("edgetpu"):
            data["edgetpu"] = EdgeTPUInfo.from_dict(data["edgetpu"])
        if data.get("detection"):
            data["detection"] = _known(DetectionSpec, data["detection"])
        data["model_card"] = _known(ModelCard, data.get("model_card", {}))
        if data.get("reference"):
            data["reference"] = _known(ReferenceInfo, data["reference"])
        if data.get("verify"):
            report = dict(data["verify"])
            report["outputs"] = [_known(OutputParity, o) for o in report.get("outputs", [])]
            report["steps"] = [_known(StepParity, {**step, "outputs": [_known(OutputParity, o)
                                                                       for o in step.get("outputs", [])]})
                               for step in report.get("steps", [])]
            if report.get("detection"):
                report["detection"] = _known(DetectionParity, report["detection"])
            if report.get("mask"):
                report["mask"] = _known(MaskParity, report["mask"])
            data["verify"] = _known(VerifyReport, report)
        return cls(**data)


def _known(cls, data: dict[str, Any]):
    """CLS from DATA's fields that CLS has: a manifest written by a newer edgekit of the same
    schema (fields added since, as schema 2 has gained `reference` and `verify.detection`) reads."""
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in known})


# schema 1 kept these in `options`; schema 2 has DetectionSpec fields for them
_V1_DETECTION = {"detection_format": "format", "score_threshold": "score_threshold",
                 "iou_threshold": "iou_threshold", "max_detections": "max_detections"}


def upgrade_v1(data: dict[str, Any]) -> dict[str, Any]:
    """A schema-1 manifest dict in schema 2's shape: `options.int8_io`, `options.edgetpu` and the
    detection keys of `options` move to their typed fields; a quantization dict gains `axis`
    (None for one scale; the last axis for several, which is how schema-1 readers applied them)."""
    data = dict(data)
    options = dict(data.get("options") or {})
    data["int8_io"] = options.pop("int8_io", None)
    data["edgetpu"] = options.pop("edgetpu", None)
    detection = {new: options.pop(old) for old, new in _V1_DETECTION.items() if old in options}
    data["detection"] = detection or None
    data["options"] = options
    for side in ("inputs", "outputs"):
        tensors = []
        for tensor in data.get(side, []):
            tensor = dict(tensor)
            quant = tensor.get("quantization")
            if quant is not None:
                several = len(quant.get("scale", [])) > 1
                tensor["quantization"] = {**quant, "axis": len(tensor.get("shape", [])) - 1 if several else None}
            tensors.append(tensor)
        data[side] = tensors
    data["schema_version"] = SCHEMA_VERSION
    return data


def manifest_path(artifact: Path) -> Path:
    return artifact.with_name(artifact.name + SUFFIX)


def read_manifest(artifact: Path, check: bool = True) -> Manifest | None:
    """The manifest beside an artifact, or None when there is none.

    Raises ModelFormatError when it cannot be read or parsed, and StaleManifestError when it
    records another artifact's sha256 (a file copied over the artifact's name after conversion);
    CHECK False skips that comparison, for `edgekit verify`, which reports it as a failure.
    """
    path = manifest_path(Path(artifact))
    if not path.is_file():
        return None
    try:
        manifest = Manifest.from_dict(json.loads(path.read_text()), origin=f"manifest {path}")
    except PermissionError:
        raise ModelFormatError(f"manifest {path} is not readable by this user (permission denied)",
                               f"ask its owner to make it readable: chmod a+r '{path}'") from None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ModelFormatError(f"manifest {path} is unreadable ({exc})",
                               "delete it and convert the model again") from None
    if check:
        check_artifact(manifest, Path(artifact), path)
    return manifest


class StaleManifestError(ModelFormatError):
    """A manifest that describes another file than the artifact beside it."""


def artifact_files(artifact: Path) -> list[Path]:
    """The files whose bytes make up an artifact, as its format says (`Format.files`): the file
    itself, every file of a directory artifact (SavedModel, .mlpackage), an OpenVINO .xml with
    its .bin weights. A file no format claims is its own bytes."""
    from .formats import sniff

    artifact = Path(artifact)
    try:
        return sniff(artifact).files(artifact)
    except ModelFormatError:
        return sorted(p for p in artifact.rglob("*") if p.is_file()) if artifact.is_dir() else [artifact]


_DIGESTS: dict[tuple, str] = {}


def artifact_digest(artifact: Path) -> str:
    """sha256 over artifact_files(artifact) (names relative to the artifact, then bytes); cached
    per file identity and modification time, since every reader checks it."""
    import hashlib

    files = artifact_files(artifact)
    key = tuple((str(f.resolve()), st.st_ino, st.st_size, st.st_mtime_ns) for f in files for st in [f.stat()])
    if key in _DIGESTS:
        return _DIGESTS[key]
    digest = hashlib.sha256()
    root = Path(artifact) if Path(artifact).is_dir() else Path(artifact).parent
    for file in files:
        if len(files) > 1:
            digest.update(str(file.relative_to(root)).encode() + b"\0")
        with open(file, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


def check_artifact(manifest: Manifest, artifact: Path, manifest_file: Path | None = None) -> None:
    """Refuse a manifest whose recorded sha256 is not the artifact's (manifests without one, from
    before it was recorded, are taken as they are)."""
    if not manifest.artifact_sha256 or not Path(artifact).exists():
        return
    found = artifact_digest(artifact)
    if found != manifest.artifact_sha256:
        manifest_file = manifest_file or manifest_path(Path(artifact))
        raise StaleManifestError(
            f"{artifact} is not the file its manifest {manifest_file} describes (sha256 {found[:12]}, the manifest "
            f"records {manifest.artifact_sha256[:12]}: the artifact was replaced after conversion)",
            "convert the model again, or delete the stale manifest")
