"""The Runner contract: open an artifact, describe its tensors, infer, close.

`infer` takes float inputs (already preprocessed, in the artifact's layout) and returns float
outputs: quantized models are quantized and dequantized here, with the tensor's own parameters,
so every backend returns comparable numbers. An input already in a quantized model's integer
dtype is passed through as is (Predictor.prepare makes those straight from uint8 pixels).

`infer` is three steps a benchmark can time apart, as benchmark_app and LiteRT's benchmark_model
do: `load` (check, quantize, copy into the runtime's input buffers), `run` (the runtime call
alone) and `results` (copy out, dequantize). A runtime with its own buffers (LiteRT, OpenVINO)
implements `_load`/`_run`/`_results`; a one-call runtime (ONNX Runtime, Core ML) implements
`_infer`, and its whole call is `run`.

Everything a user can get wrong is checked before the native runtime runs: the file's
structure (its Format's check, edgekit/formats/), the backend, the device, the options, and
each input's count, rank, size and dtype (before it is loaded) and finiteness (just after it is
copied in: `run` refuses until a `load` has passed). Each problem is one EdgekitError line.

A Runner keeps the loaded input and the last outputs: use one per thread (the camera pipeline
opens one per inference worker).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import ClassVar

import numpy as np

from .. import deps
from ..errors import BadInput, EdgekitError, ModelFormatError, UnknownNameError, summary
from ..formats import Format, sniff
from ..formats.base import content_key, probe_timeout, run_probe
from ..manifest import TensorInfo
from ..registry import Registry


class Runner:
    """One artifact loaded in one runtime backend (open it with `open_runner`).

    `inputs`/`outputs` describe the tensors (TensorInfo: name, shape, dtype, quantization).
    `infer(feeds)` takes float32 arrays already preprocessed and in the artifact's layout
    (e.g. float32 [1, 224, 224, 3] for NHWC), or for a quantized input its own integer dtype
    (uint8/int8, passed through), and returns one float32 array per output, dequantized.
    `infer` = `load` + `run` + `results`, for benchmarks that time them apart. Every input
    problem is a BadInput line; a runtime that fails on a checked input raises ModelFormatError
    (the model file is the likely cause). A context manager: `close` releases the runtime.
    """

    backend: ClassVar[str]
    formats: ClassVar[tuple[str, ...]]
    requires: ClassVar[tuple[str, ...]]
    options: ClassVar[tuple[str, ...]] = ()  # keyword options __init__ accepts (threads, hint, ...)
    # device names this backend understands; empty: the backend checks its device itself (edgetpu)
    device_kinds: ClassVar[tuple[str, ...]] = ()
    # Load and run once in a child process before this process does (`probe_backend`): a native
    # crash on a damaged file must not take the caller down. Cached by content hash.
    probe_in_child: ClassVar[bool] = False
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    _accepted: list | None = None  # (type, shape, dtype) of the last inputs check_input passed
    _as_is = False                  # ... and they already had the model's dtypes: no quantize step
    _float_outputs: bool | None = None  # the runtime returns float32 outputs: no dequantize step
    _loaded_ok = False              # load() completed: run() has valid inputs to work on
    _ran = False                    # run() completed on them: results() has outputs to read

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return cls.host_cannot() or deps.missing(*cls.requires)

    @classmethod
    def host_cannot(cls) -> str | None:
        """Why this host's OS or hardware can never run this backend, whatever is installed
        ("needs macOS"), or None. `edgekit bench` skips such rows instead of failing them."""
        return None

    @classmethod
    def available_devices(cls) -> list[str]:
        """Devices present on this host (a backend with a device query overrides this)."""
        return list(cls.device_kinds)

    @classmethod
    def check_device(cls, device: str | None) -> str | None:
        """Refuse a device this backend does not know, or one this host does not have."""
        if device is None or not cls.device_kinds:
            return device
        kind = device.split(".", 1)[0].split(":", 1)[0]
        if kind not in cls.device_kinds:
            raise UnknownNameError(f"{cls.backend} device", device, cls.device_kinds)
        present = cls.available_devices()
        if device not in present and kind not in {p.split(".", 1)[0] for p in present}:
            raise BadInput(f"{cls.backend} device '{device}' is not reachable on this host",
                           f"available: {', '.join(present) or 'none'}")
        return device

    def __init__(self, path: Path, device: str | None = None):
        self.path = Path(path)
        self.device = device

    def infer(self, feeds) -> list[np.ndarray]:
        """FEEDS (one array, a list in input order, or a dict by input name) -> one float32
        array per output, in `outputs` order. See the class docstring for dtypes and errors."""
        self.load(feeds)
        self.run()
        return self.results()

    def load(self, feeds) -> None:
        """Check FEEDS (as `infer` takes them) and put them, quantized where the model is, into
        the runtime's inputs. Raises BadInput for a wrong count, rank, shape or dtype, or a NaN
        or infinite value (checked after the copy)."""
        self._loaded_ok = self._ran = False
        arrays = self.check_feeds(feeds)
        if self._as_is:
            self._native(self._load, arrays)
        else:
            with np.errstate(invalid="ignore"):  # a NaN is reported below, not as a cast warning
                self._native(lambda: self._load([quantize(a, t) for a, t in zip(arrays, self.inputs)]))
        # Finiteness last: the copy has just pulled the arrays into the cache, so this pass costs
        # half of what it does first, right after the previous inference flushed the cache.
        for array, info in zip(arrays, self.inputs):
            check_finite(array, info, self.path.name)
        self._loaded_ok = True

    def run(self) -> None:
        """The runtime's inference call on the loaded inputs, and nothing else: what `edgekit
        bench` times as latency. Raises BadInput when no valid input is loaded."""
        if not self._loaded_ok:
            raise BadInput(f"no valid input is loaded into {self.path.name}", "call load() (or infer()) first")
        self._native(self._run)
        self._ran = True

    def results(self) -> list[np.ndarray]:
        """The last run's outputs as float32 arrays (copies), dequantized where the model is
        quantized, in `outputs` order. Raises BadInput when `run` has not run on this input."""
        if not self._ran:
            raise BadInput(f"{self.path.name} has no outputs for the loaded input", "call run() after load()")
        raw = self._native(self._results)
        if self._float_outputs is None:  # a model's output dtypes never change: decide once
            self._float_outputs = all(r.dtype == np.float32 for r in raw)
        if self._float_outputs:
            return raw
        return [dequantize(r, t) for r, t in zip(raw, self.outputs)]

    def _native(self, step, *args):
        try:
            return step(*args)
        except EdgekitError:
            raise
        except Exception as exc:  # inputs were checked in load: a native failure here is the model's
            raise ModelFormatError(f"{self.backend} failed running {self.path.name}: {summary(exc)}",
                                       "the model may be damaged; check it with `edgekit inspect` or convert it again") from None

    def check_feeds(self, feeds) -> list[np.ndarray]:
        """FEEDS (as `infer` takes them) in input order, each checked against its TensorInfo
        (count, rank, shape, dtype; `check_input`). Raises BadInput for the first mismatch."""
        if isinstance(feeds, dict):
            missing = [t.name for t in self.inputs if t.name not in feeds]
            if missing:
                raise BadInput(f"{self.path.name} needs input(s) {', '.join(missing)}, "
                               f"got {', '.join(map(str, feeds)) or 'none'}",
                               f"inputs: {', '.join(t.name for t in self.inputs)}")
            arrays = [feeds[t.name] for t in self.inputs]
        else:
            arrays = [feeds] if isinstance(feeds, np.ndarray) else list(feeds)
        if len(arrays) != len(self.inputs):
            raise BadInput(f"{self.path.name} takes {len(self.inputs)} input(s), got {len(arrays)}",
                           f"inputs: {', '.join(t.name for t in self.inputs)}")
        # The checks, and whether to quantize, depend only on type, shape and dtype: a repeat of
        # the last accepted ones (every frame of a stream) skips them. This runs right after an
        # inference has flushed the caches, where each Python step costs several times its warm
        # time, so the per-call work is kept to this one comparison.
        signature = [(type(a), getattr(a, "shape", None), getattr(a, "dtype", None)) for a in arrays]
        if signature != self._accepted:
            self._accepted = None
            for array, info in zip(arrays, self.inputs):
                check_input(array, info, self.path.name)
            self._as_is = all(a.dtype == t.dtype for a, t in zip(arrays, self.inputs))  # the model's own dtypes
            self._accepted = signature
        return arrays

    # a one-call runtime implements _infer; the defaults below make it the `run` step
    def _infer(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def _load(self, arrays: list[np.ndarray]) -> None:
        self._loaded = arrays

    def _run(self) -> None:
        self._outputs = self._infer(self._loaded)

    def _results(self) -> list[np.ndarray]:
        return self._outputs

    def close(self) -> None:
        """Release the runtime's resources; the Runner is unusable afterwards."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_input(array, info: TensorInfo, model: str) -> None:
    """Rank, size and dtype of one input, before the runtime sees it (finiteness: check_finite).
    Float arrays suit float inputs and quantized integer inputs (quantized by `quantize`);
    integer arrays only the model's own integer dtype. Raises BadInput naming MODEL."""
    if not isinstance(array, np.ndarray):
        raise BadInput(f"input '{info.name}' of {model} must be a numpy array, got {type(array).__name__}")
    expected = [int(d) for d in info.shape]
    if expected and array.ndim != len(expected):
        raise BadInput(f"input '{info.name}' of {model} has rank {len(expected)} (shape {expected}), "
                       f"got rank {array.ndim} (shape {list(array.shape)})", "add or remove the batch axis")
    if expected and any(e > 0 and e != g for e, g in zip(expected, array.shape)):
        if all(e <= 0 or e == g for e, g in zip(expected[1:], array.shape[1:])):   # only the batch differs
            raise BadInput(f"input '{info.name}' of {model} takes a batch of {expected[0]}, got a batch of "
                           f"{array.shape[0]} (shape {list(array.shape)})",
                           f"feed {expected[0]} sample(s) at once, or convert the model with edgekit, "
                           "which pins the batch to 1")
        raise BadInput(f"input '{info.name}' of {model} has shape {expected}, got {list(array.shape)}",
                       "resize/transpose the input to match (Predictor does this from the manifest)")
    want = np.dtype(info.dtype) if info.dtype != "image" else np.dtype(np.float32)
    if array.dtype.kind == "f":
        if want.kind in "iu" and not info.quantization:
            raise BadInput(f"input '{info.name}' of {model} takes {want.name}, got {array.dtype.name}",
                           f"pass a {want.name} array")
    elif array.dtype.kind in "iub":  # integers: only the model's own integer dtype
        if array.dtype != want and want.kind != "f":
            raise BadInput(f"input '{info.name}' of {model} takes {want.name}, got {array.dtype.name}",
                           f"pass {want.name} (already quantized) or float32 (quantized here)")
        if want.kind == "f":
            raise BadInput(f"input '{info.name}' of {model} takes {want.name}, got {array.dtype.name}",
                           "pass the preprocessed float input (Predictor.prepare makes it from pixels)")
    else:
        raise BadInput(f"input '{info.name}' of {model} takes {want.name}, got {array.dtype.name}")


def check_finite(array: np.ndarray, info: TensorInfo, model: str) -> None:
    """No NaN or infinity in a float input. One BLAS dot product (x.x) finds them in ~25 us for
    a 224x224x3 image, a quarter of np.sum's time; a product that overflowed is re-checked
    element-wise."""
    if array.dtype.kind != "f" or not array.size:
        return
    flat = array.reshape(-1)
    if not np.isfinite(np.dot(flat, flat)) and not np.isfinite(array).all():
        bad = "NaN" if np.isnan(array).any() else "infinite"
        raise BadInput(f"input '{info.name}' of {model} contains {bad} values",
                       "check the preprocessing that produced it")


def quantize(array: np.ndarray, info: TensorInfo) -> np.ndarray:
    """ARRAY in INFO's dtype: a float array for a quantized integer tensor becomes
    round(x / scale + zero_point), clipped to the dtype's range; others are cast."""
    dtype = np.dtype(info.dtype) if info.dtype not in ("image",) else np.float32
    if array.dtype == dtype:  # already the model's own dtype (e.g. quantized by Predictor.prepare)
        return array
    if info.quantization and np.issubdtype(dtype, np.integer) and np.issubdtype(array.dtype, np.floating):
        scale, zero = info.quantization.broadcast(array.ndim)
        limits = np.iinfo(dtype)
        return np.clip(np.round(array / scale + zero), limits.min, limits.max).astype(dtype)
    return array.astype(dtype, copy=False)


def dequantize(array: np.ndarray, info: TensorInfo) -> np.ndarray:
    """ARRAY as float32: (q - zero_point) * scale for a quantized integer tensor, else a cast."""
    if info.quantization and np.issubdtype(array.dtype, np.integer):
        scale, zero = info.quantization.broadcast(array.ndim)
        return (array.astype(np.float32) - zero) * scale
    return array.astype(np.float32, copy=False)


BACKENDS: Registry[type[Runner]] = Registry("backend", __package__)


def open_runner(artifact, backend: str | None = None, device: str | None = None, **options) -> Runner:
    """Open ARTIFACT (a .tflite, OpenVINO .xml, .onnx or Core ML path) with BACKEND (a name
    in BACKENDS; default: the format's own backend, `Format.backend`) on DEVICE (e.g. "CPU",
    "GPU" for OpenVINO, "usb:0" for edgetpu; default: the backend's). OPTIONS are
    backend-specific: `threads` (int >= 1; litert, openvino, onnxruntime) and `hint` ("latency"
    or "throughput"; openvino); None means the backend's default.

    The file's structure is checked first (`Format.check`), and backends that load native code
    first load it in a child process (`vet`), so a damaged file raises ModelFormatError instead
    of crashing this process. Raises BadInput (UnknownNameError for a backend, device or option
    name) for everything else that cannot work. Use as a context manager.
    """
    path = Path(artifact)
    fmt = sniff(path)
    runner_cls = runner_class(path, fmt, backend)
    options = {k: v for k, v in options.items() if v is not None}
    name = runner_cls.backend
    unknown = sorted(set(options) - set(runner_cls.options))
    if unknown:
        raise EdgekitError(f"backend '{name}' has no option {', '.join(unknown)}",
                           f"its options: {', '.join(runner_cls.options) or 'none'}")
    threads = options.get("threads")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise EdgekitError(f"threads must be a whole number of at least 1, got {threads!r}")
    device = runner_cls.check_device(device)
    vet(path, fmt, runner_cls, device, options)
    return runner_cls(path, device, **options)


def runner_class(path: Path, fmt: Format, backend: str | None = None) -> type[Runner]:
    """The backend class that runs PATH (of format FMT): BACKEND, else the format's default.
    Raises EdgekitError when none runs it or it is unavailable here."""
    name = backend or fmt.backend
    if name is None:
        raise EdgekitError(f"{path} is a {fmt.name} model, which no runtime backend runs",
                           "convert it first with `edgekit convert`")
    runner_cls = BACKENDS.get(name)
    if fmt.name not in runner_cls.formats:
        raise EdgekitError(f"backend '{name}' cannot run {fmt.name} models like {path.name}",
                           f"it runs: {', '.join(runner_cls.formats)}")
    reason = runner_cls.unavailable_reason()
    if reason:
        raise EdgekitError(f"backend '{name}' is unavailable on this host: {reason}")
    return runner_cls


def vet(path: Path, fmt: Format, runner_cls: type[Runner], device: str | None, options: dict) -> None:
    """The safety checks before a native runtime in this process sees PATH: the format's
    structure check, then, for a backend that asks for it, one load and run in a child."""
    fmt.check_structure(path)
    if runner_cls.probe_in_child:
        probe_backend(path, fmt, runner_cls.backend, device, options)


def probe_backend(path: Path, fmt: Format, backend: str, device: str | None, options: dict) -> None:
    """Load, compile and run PATH once on zeros with BACKEND in a child (`edgekit.runtime.probe`);
    one line here if that crashes, hangs or fails. A pass is cached by content hash."""
    files = fmt.files(path)
    command = [sys.executable, "-m", "edgekit.runtime.probe", str(path), backend, device or "", json.dumps(options)]
    run_probe(command, path, backend, probe_timeout(files),
              cache_key=content_key(files, backend, device, sorted(options.items())))
