"""The Runner contract: open an artifact, describe its tensors, infer, close.

`infer` takes float inputs (already preprocessed, in the artifact's layout) and returns float
outputs: quantized models are quantized and dequantized here, with the tensor's own parameters,
so every backend returns comparable numbers.
"""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from .. import deps
from ..errors import EdgekitError
from ..formats import detect
from ..manifest import TensorInfo
from ..registry import Registry

# artifact format -> default backend
DEFAULT_BACKEND = {"tflite": "litert", "openvino": "openvino", "onnx": "onnxruntime", "coreml": "coreml"}


class Runner:
    backend: ClassVar[str]
    formats: ClassVar[tuple[str, ...]]
    requires: ClassVar[tuple[str, ...]]
    options: ClassVar[tuple[str, ...]] = ()  # keyword options __init__ accepts (threads, hint, ...)
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return deps.missing(*cls.requires)

    def __init__(self, path: Path, device: str | None = None):
        self.path = Path(path)
        self.device = device

    def infer(self, feeds) -> list[np.ndarray]:
        arrays = [feeds[t.name] for t in self.inputs] if isinstance(feeds, dict) else (
            [feeds] if isinstance(feeds, np.ndarray) else list(feeds))
        if len(arrays) != len(self.inputs):
            raise EdgekitError(f"{self.path.name} takes {len(self.inputs)} input(s), got {len(arrays)}",
                               f"inputs: {', '.join(t.name for t in self.inputs)}")
        for array, info in zip(arrays, self.inputs):
            if list(array.shape) != list(info.shape):
                raise EdgekitError(f"input '{info.name}' of {self.path.name} has shape {list(info.shape)}, "
                                   f"got {list(array.shape)}", "resize/transpose the input to match")
        raw = self._infer([quantize(a, t) for a, t in zip(arrays, self.inputs)])
        return [dequantize(r, t) for r, t in zip(raw, self.outputs)]

    def _infer(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def quantize(array: np.ndarray, info: TensorInfo) -> np.ndarray:
    dtype = np.dtype(info.dtype) if info.dtype not in ("image",) else np.float32
    if info.quantization and np.issubdtype(dtype, np.integer) and np.issubdtype(array.dtype, np.floating):
        scale = np.asarray(info.quantization["scale"], np.float32)
        zero = np.asarray(info.quantization["zero_point"], np.float32)
        limits = np.iinfo(dtype)
        return np.clip(np.round(array / scale + zero), limits.min, limits.max).astype(dtype)
    return array.astype(dtype, copy=False)


def dequantize(array: np.ndarray, info: TensorInfo) -> np.ndarray:
    if info.quantization and np.issubdtype(array.dtype, np.integer):
        scale = np.asarray(info.quantization["scale"], np.float32)
        zero = np.asarray(info.quantization["zero_point"], np.float32)
        return (array.astype(np.float32) - zero) * scale
    return array.astype(np.float32, copy=False)


BACKENDS: Registry[type[Runner]] = Registry("backend", __package__)


def open_runner(artifact, backend: str | None = None, device: str | None = None, **options) -> Runner:
    """Open ARTIFACT with BACKEND (default: by format) on DEVICE. OPTIONS are backend-specific
    (`threads` for litert, `hint` for openvino, ...); None values mean "backend default"."""
    path = Path(artifact)
    fmt = detect(path)
    name = backend or DEFAULT_BACKEND.get(fmt)
    if name is None:
        raise EdgekitError(f"{path} is a {fmt} model, which no runtime backend runs",
                           "convert it first with `edgekit convert`")
    runner_cls = BACKENDS.get(name)
    if fmt not in runner_cls.formats:
        raise EdgekitError(f"backend '{name}' cannot run {fmt} models like {path.name}",
                           f"it runs: {', '.join(runner_cls.formats)}")
    reason = runner_cls.unavailable_reason()
    if reason:
        raise EdgekitError(f"backend '{name}' is unavailable on this host: {reason}")
    options = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(options) - set(runner_cls.options))
    if unknown:
        raise EdgekitError(f"backend '{name}' has no option {', '.join(unknown)}",
                           f"its options: {', '.join(runner_cls.options) or 'none'}")
    return runner_cls(path, device, **options)
