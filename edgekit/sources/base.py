"""The SourceModel contract and the loader that picks a source kind from a path's content.

Which module reads a format is the format's own fact (`Format.source`, edgekit/formats/)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import BadInput, ModelFormatError
from ..formats import labels_beside, sniff
from ..manifest import TensorInfo
from ..registry import Registry

# format name (edgekit/formats/) -> the class that loads it; the modules beside this one register
SOURCES: Registry[type[SourceModel]] = Registry("source format", __package__)
TORCH_MODULE = "torch-module"   # an nn.Module given through the Python API: a source without a file format


@dataclass
class SourceInput:
    """One input as the model file declares it, and how edgekit feeds it (`classify_input`)."""

    name: str
    shape: list[int]              # declared: -1 where free (batch, height, width, length)
    dtype: str
    kind: str                     # image: made from a picture (frames.py) | tensor: an array taken as given
    layout: str | None = None     # image: NHWC | NCHW | HW (channel-less [1, H, W])
    channels: int | None = None   # image: 1 (greyscale) or 3

    def spatial(self) -> list[int]:
        """[height, width] of an image input as declared (-1 where free)."""
        if self.layout == "NCHW":
            return self.shape[2:4]
        return self.shape[1:3]


IMAGE_DTYPES = ("float32", "float16", "float64", "uint8", "int8")
MIN_CHANNELLESS_SIDE = 8   # a rank-3 [1, H, W] input with both sides at least this is a greyscale image


def classify_input(name: str, shape: list[int], dtype: str, layout: str) -> SourceInput:
    """Whether an input of SHAPE (-1 where free) and DTYPE takes pictures, and how.

    Images: rank 4 with 1 or 3 channels on the channel axis of LAYOUT (the framework's own
    convention: NCHW for PyTorch and most ONNX, else NHWC; the other axis is tried second, since
    ONNX exports from TensorFlow keep NHWC), a free channel axis counting as 3; rank 3 [1, H, W]
    with both sides free or at least MIN_CHANNELLESS_SIDE (a channel-less greyscale image, as
    MNIST models take). Everything else, and any input of an integer or bool dtype but 8-bit
    pixels, is a tensor: audio frames, sensor vectors, token ids, fed as arrays, never preprocessed."""
    shape = [int(d) if d is not None and int(d) > 0 else -1 for d in shape]
    if dtype not in IMAGE_DTYPES:
        return SourceInput(name, shape, dtype, "tensor")
    if len(shape) == 4:
        order = ("NCHW", "NHWC") if layout == "NCHW" else ("NHWC", "NCHW")
        for candidate in order:
            channels = shape[1] if candidate == "NCHW" else shape[3]
            free_ok = candidate == layout  # a free channel axis is read in the framework's convention only
            if channels in (1, 3) or (channels == -1 and free_ok):
                return SourceInput(name, shape, dtype, "image", candidate, 3 if channels == -1 else channels)
    if len(shape) == 3 and all(d == -1 or d >= MIN_CHANNELLESS_SIDE for d in shape[1:]):
        return SourceInput(name, shape, dtype, "image", "HW", 1)
    return SourceInput(name, shape, dtype, "tensor")


@dataclass
class SourceFacts:
    """What the model file itself says about preprocessing and outputs (metadata, labels file)."""

    labels: list[str] = field(default_factory=list)
    labels_from: str | None = None
    preprocess: dict[str, Any] = field(default_factory=dict)   # Preprocess fields it carries
    task: str | None = None
    notes: list[str] = field(default_factory=list)


class SourceModel:
    """A loaded model in one form of the conversion graph (`kind`): it describes its tensors,
    and `infer` runs it in its own framework as the reference that verify compares artifacts
    with. Loaded by `load_source`; bridges return new SourceModels of another kind.

    Contract, in the order convert() uses it: `facts` (what the file says about preprocessing,
    labels and task), `set_input_size` (once, with the size convert() resolved), then
    `inputs`/`outputs` and `infer` at that size.
    """

    kind: ClassVar[str]              # the form in the conversion graph: keras, savedmodel, tflite, onnx, torch
    layout: ClassVar[str] = "NHWC"  # image layout its inputs take: NHWC, or NCHW (torch, most ONNX)

    def __init__(self, path: Path | None):
        self.path = path                          # the file or directory; None for an in-memory model
        self.facts = SourceFacts()
        self.input_size: list[int] | None = None  # [height, width] in pixels, once set_input_size ran
        self._described: list[SourceInput] | None = None

    def declared_inputs(self) -> list[TensorInfo]:
        """Each input as the file declares it, in order: name, shape with -1 where free (batch,
        height, width), dtype. `inputs()` fixes what is free."""
        raise NotImplementedError

    def described_inputs(self) -> list[SourceInput]:
        """Each declared input classified as an image (with its layout and channels) or a tensor
        (`classify_input`), in input order."""
        if self._described is None:
            self._described = [classify_input(t.name, t.shape, t.dtype, self.layout) for t in self.declared_inputs()]
        return self._described

    def static_inputs(self) -> list[SourceInput]:
        """`described_inputs()` at the static shapes `inputs()` gives (batch 1, the size fixed)."""
        return [replace(role, shape=list(t.shape)) for role, t in zip(self.described_inputs(), self.inputs())]

    def image_inputs(self) -> list[SourceInput]:
        return [i for i in self.described_inputs() if i.kind == "image"]

    def _note_input_facts(self) -> None:
        """What the first image input's declaration says: its size (when static), layout and channels."""
        images = self.image_inputs()
        if not images:
            return
        first = images[0]
        spatial = first.spatial()
        if all(d > 0 for d in spatial):
            self.facts.preprocess["input_size"] = [int(d) for d in spatial]
        self.facts.preprocess["layout"] = first.layout
        self.facts.preprocess["channels"] = first.channels

    def set_input_size(self, size: list[int]) -> None:
        """Fix the image input's spatial size to SIZE, [height, width] in pixels, as convert()
        resolved it (--input-size, else the size the file records).

        A file that records a static size keeps it, and a different SIZE is refused (BadInput):
        the model cannot take it. Dimensions the file leaves dynamic take SIZE (batch is fixed
        to 1 by `static_shape`). A source whose file records no shape at all (a PyTorch
        module) overrides this to take SIZE as its input shape.
        """
        size = [int(d) for d in size]
        recorded = self.facts.preprocess.get("input_size")
        if recorded is not None and [int(d) for d in recorded] != size:
            height, width = (int(d) for d in recorded)
            raise BadInput(f"--input-size {size[0]},{size[1]} contradicts {self.describe()}, whose input is "
                           f"{height}x{width}", f"drop --input-size or pass --input-size {height},{width}")
        self.input_size = size

    def spatial_size(self) -> list[int] | None:
        """[height, width] of the image input: the size set_input_size fixed, else the file's own."""
        return self.input_size or self.facts.preprocess.get("input_size")

    def inputs(self) -> list[TensorInfo]:
        """Name, static shape (batch 1; image height and width at `spatial_size()`) and dtype of
        each input, in order. Raises ModelFormatError when a dimension is still free (no size is
        known, or a tensor input of free length)."""
        size = self.spatial_size()
        return [TensorInfo(t.name, static_shape(t.shape, role.layout if role.kind == "image" else None, size,
                                                name=t.name), t.dtype, t.quantization)
                for t, role in zip(self.declared_inputs(), self.described_inputs())]

    def pinned_batches(self) -> list[tuple[str, int]]:
        """(input name, declared batch) of each input whose batch is free (-1) or larger than 1:
        `inputs()` pins those to 1, since edge runtimes take one sample at a time."""
        return [(t.name, int(t.shape[0])) for t in self.declared_inputs()
                if len(t.shape) >= 2 and int(t.shape[0]) != 1]

    def outputs(self) -> list[TensorInfo]:
        """Name, shape (-1 where dynamic) and dtype of each output, in the order `infer` returns them."""
        raise NotImplementedError

    def infer(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        """One forward pass in the source framework: FEEDS, one float32 array per input in
        input order, preprocessed and in this model's `layout` (e.g. float32 [1, H, W, 3]),
        -> one float32 array per output, in `outputs()` order. A quantized TFLite source
        takes and returns floats too (quantized and dequantized with its own parameters)."""
        raise NotImplementedError

    def describe(self) -> str:
        """'<kind> model <path>', for messages."""
        return f"{self.kind} model {self.path}" if self.path else f"{self.kind} model"


def source_class(model: Any) -> type[SourceModel]:
    """The source class for a path (sniffed from content) or an in-memory model; loads nothing."""
    if isinstance(model, (str, Path)):
        fmt = sniff(Path(model))
        if fmt.source is None:
            raise ModelFormatError(f"{model} is an already converted {fmt.name} artifact",
                                   "convert from the original model (Keras, SavedModel, TFLite, ONNX, PyTorch)")
        name = fmt.name
    elif type(model).__module__.startswith("torch") or hasattr(model, "state_dict"):
        name = TORCH_MODULE
    else:
        raise ModelFormatError(f"cannot convert a Python object of type {type(model).__name__}",
                               "pass a torch.nn.Module or a model file path")
    return SOURCES.get(name)


def load_source(model: Any, input_shape: list[int] | None = None) -> SourceModel:
    """Load a path (kind detected from content) or an in-memory framework model."""
    cls = source_class(model)
    if not isinstance(model, (str, Path)):
        return cls.from_object(model, input_shape)
    source = cls.from_path(Path(model), input_shape)
    _attach_manifest(source)
    _attach_labels_file(source)
    return source


def _attach_manifest(source: SourceModel) -> None:
    """A source that is itself an edgekit artifact keeps the facts its manifest recorded (those
    that were found or given then, not those assumed): preprocessing, labels and task."""
    from ..manifest import read_manifest

    manifest = read_manifest(source.path)   # ModelFormatError for an unreadable or stale one
    if manifest is None:
        return
    pre, facts = manifest.preprocess, source.facts.preprocess
    assumed = " ".join(pre.assumed)
    if pre.normalization not in (None, "assumed") or not ("--mean" in assumed or "--std" in assumed):
        facts.update(mean=list(pre.mean), std=list(pre.std), normalization="manifest")
        if pre.graph_normalization is not None:
            facts["graph_normalization"] = pre.graph_normalization
    if "colour order" not in assumed:
        facts["color_order"] = pre.color_order
    if "resize" not in assumed:
        facts["resize"] = pre.resize
    if manifest.labels:
        source.facts.labels, source.facts.labels_from = list(manifest.labels), "manifest"
    source.facts.task = manifest.task or source.facts.task
    source.facts.notes.append(f"read the edgekit manifest beside {source.path}")


def _attach_labels_file(source: SourceModel) -> None:
    """AutoML and SDK exports ship labels beside the model; the model's own metadata wins."""
    if source.facts.labels or source.path is None:
        return
    candidate = labels_beside(source.path)
    if candidate is not None:
        source.facts.labels = read_labels(candidate)
        source.facts.labels_from = str(candidate)


def read_labels(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ModelFormatError(f"labels file {path} is not valid JSON ({exc})", "fix or remove it") from None
        if isinstance(data, dict):  # {"0": "cat", ...} or {"cat": 0, ...}
            if all(str(k).isdigit() for k in data):
                return [str(data[k]) for k in sorted(data, key=int)]
            return [k for k, _ in sorted(data.items(), key=lambda kv: kv[1])]
        return [str(x) for x in data]
    lines = [line.strip() for line in text.splitlines()]
    # "0 cat" / "0: cat" label maps (Coral style) -> names
    if lines and all(line.split(maxsplit=1)[0].rstrip(":").isdigit() for line in lines if line):
        return [line.split(maxsplit=1)[1] if len(line.split(maxsplit=1)) > 1 else "" for line in lines if line]
    return [line for line in lines if line]


def static_shape(shape: list[int | None], layout: str | None, input_size: list[int] | None,
                 name: str | None = None) -> list[int]:
    """SHAPE with every free dimension fixed: the batch (first axis of rank 2 and up, free or
    larger than 1) to 1, since edge runtimes take one sample at a time and static shapes compile
    everywhere; an image's (LAYOUT NHWC, NCHW or HW) height and width to INPUT_SIZE, a free
    channel axis to 3. LAYOUT None: a tensor input, whose other dims must be static. Raises
    ModelFormatError naming the input when a dimension stays free."""
    fixed = [int(d) if d is not None and int(d) > 0 else -1 for d in shape]
    if len(fixed) >= 2:
        fixed[0] = 1
    if layout is not None and len(fixed) in (3, 4):
        spatial = (2, 3) if layout == "NCHW" else (1, 2)
        if len(fixed) == 4:
            channel = 1 if layout == "NCHW" else 3
            if fixed[channel] == -1:
                fixed[channel] = 3
        for axis, size in zip(spatial, input_size or (None, None)):
            if fixed[axis] == -1 and size:
                fixed[axis] = int(size)
    if -1 in fixed:
        named = f"input '{name}'" if name else "the model input"
        shown = [d if d is None or int(d) > 0 else -1 for d in shape]
        if layout is None:
            raise ModelFormatError(f"{named} has free dimensions {shown}, and it is not an image whose size "
                                   "--input-size could fix", "export the model with a fixed input length")
        raise ModelFormatError(f"{named} has dynamic dimensions {shown}", "pass --input-size HEIGHT,WIDTH to fix them")
    return fixed
