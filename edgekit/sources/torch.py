"""PyTorch source: an nn.Module (Python API), a TorchScript file or a torch.export (.pt2) file."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..deps import require
from ..errors import ModelFormatError
from ..formats import sniff
from ..manifest import TensorInfo
from .base import SOURCES, TORCH_MODULE, SourceModel


@SOURCES.register(TORCH_MODULE)
@SOURCES.register("torchscript")
@SOURCES.register("torch-export")
class TorchSource(SourceModel):
    kind = "torch"
    layout = "NCHW"

    def __init__(self, path: Path | None, module, input_shape: list[int] | None):
        super().__init__(path)
        self.module = module
        self.input_shape = list(input_shape) if input_shape else None
        if self.input_shape and len(self.input_shape) == 4:
            self.facts.preprocess["input_size"] = self.input_shape[2:4]
        self.facts.preprocess["layout"] = "NCHW"
        self._output_shapes: list[list[int]] | None = None

    @classmethod
    def from_object(cls, module, input_shape=None) -> TorchSource:
        module.eval()
        return cls(None, module, input_shape)._fit_channels()

    @classmethod
    def from_path(cls, path: Path, input_shape=None) -> TorchSource:
        torch = require("torch", "reading PyTorch models")
        fmt = sniff(path)
        fmt.load_in_child(path)
        if fmt.name == "torchscript":
            module = torch.jit.load(str(path), map_location="cpu").eval()   # inference: BatchNorm stats frozen
        else:
            program = torch.export.load(str(path))
            placeholders = [n for n in program.graph.nodes if n.op == "placeholder"
                            and n.name in set(program.graph_signature.user_inputs)]
            if input_shape is None and placeholders and "val" in placeholders[0].meta:
                input_shape = [int(d) for d in placeholders[0].meta["val"].shape]
            module = program.module()
            return cls(path, module, input_shape)   # the program's own shape: nothing to guess
        return cls(path, module, input_shape)._fit_channels()

    def set_input_size(self, size: list[int]) -> None:
        """A PyTorch module records no input shape: SIZE, [height, width], makes it [1, C, H, W]
        unless one was given at load (--input-size, or a torch.export program's own), C as
        `_fit_channels` finds it."""
        if self.input_shape is None:
            self.input_shape = [1, 3, int(size[0]), int(size[1])]
            self._fit_channels()
        self.input_size = self.input_shape[2:4]
        self._described = None

    def _fit_channels(self) -> TorchSource:
        """A module's input shape is a guess ([1, 3, H, W] from --input-size): a module that runs
        only on the other channel count, 1 (a greyscale model) or 3, takes that one, tried on
        zeros as nothing else says it. Raises ModelFormatError when it runs on neither; returns self."""
        if self.input_shape is None or len(self.input_shape) != 4 or self.input_shape[1] not in (1, 3):
            return self
        errors = []
        for channels in (self.input_shape[1], 4 - self.input_shape[1]):
            shape = [1, channels, *self.input_shape[2:4]]
            try:
                self.infer([np.zeros(shape, np.float32)])
            except Exception as exc:   # torch raises RuntimeError (and others) for a wrong input
                errors.append(str(exc).strip().splitlines()[-1][:160] if str(exc).strip() else type(exc).__name__)
                continue
            self.input_shape = shape
            self.facts.preprocess["channels"] = channels   # one mean/std and luma frames for a greyscale model
            return self
        raise ModelFormatError(f"the PyTorch model runs on neither a [1, 3, H, W] nor a [1, 1, H, W] input of "
                               f"{self.input_shape[2]}x{self.input_shape[3]} pixels: {errors[0]}",
                               "check --input-size; a model with other inputs needs a torch.export (.pt2) file, "
                               "which records them")

    def declared_inputs(self) -> list[TensorInfo]:
        """One NCHW image input: the shape given or exported, else [1, 3, -1, -1]."""
        return [TensorInfo("input", list(self.input_shape or [1, 3, -1, -1]), "float32")]

    def inputs(self) -> list[TensorInfo]:
        if self.input_shape is None:
            raise ModelFormatError("a PyTorch model does not record its input size",
                                   "pass --input-size HEIGHT,WIDTH")
        return [TensorInfo("input", self.input_shape, "float32")]

    def outputs(self) -> list[TensorInfo]:
        if self._output_shapes is None:
            outs = self.infer([np.zeros(self.inputs()[0].shape, np.float32)])
            self._output_shapes = [list(o.shape) for o in outs]
        return [TensorInfo(f"output_{i}" if len(self._output_shapes) > 1 else "output", s, "float32")
                for i, s in enumerate(self._output_shapes)]

    def infer(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        import torch

        with torch.no_grad():
            result = self.module(*[torch.from_numpy(np.ascontiguousarray(f)) for f in feeds])
        result = result if isinstance(result, (list, tuple)) else [result]
        return [r.detach().cpu().numpy() for r in result]
