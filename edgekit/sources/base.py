"""The SourceModel contract and the loader that picks a source kind from a path's content.

Which module reads a format is the format's own fact (`Format.source`, edgekit/formats/)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
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
        """Name, static shape (batch 1, at `spatial_size()`) and dtype of each input, in order.
        Raises ModelFormatError when a dimension is still dynamic (no size is known)."""
        raise NotImplementedError

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
    _attach_labels_file(source)
    return source


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


def static_shape(shape: list[int | None], layout: str, input_size: list[int] | None) -> list[int]:
    """Fix dynamic dims: batch 1 (static shapes compile everywhere), spatial dims from --input-size."""
    fixed = [d if isinstance(d, int) and d > 0 else -1 for d in shape]
    if fixed and fixed[0] == -1:
        fixed[0] = 1
    if len(fixed) == 4:
        spatial = (2, 3) if layout == "NCHW" else (1, 2)
        channel = 1 if layout == "NCHW" else 3
        if fixed[channel] == -1:
            fixed[channel] = 3
        for axis, size in zip(spatial, input_size or (None, None)):
            if fixed[axis] == -1 and size:
                fixed[axis] = int(size)
    if -1 in fixed:
        raise ModelFormatError(f"the model input has dynamic dimensions {shape}",
                               "pass --input-size HEIGHT,WIDTH to fix them")
    return fixed
