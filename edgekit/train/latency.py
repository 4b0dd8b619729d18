"""Latency per architecture, measured with edgekit's own bench on this host's runtime for the
target format, cached per host; and the device-profile scaling to a board.

An architecture is (backbone, input size): the head adds a few thousand multiply-adds, far
below the timer's noise, so one measurement serves every head. Each architecture is converted
once through `edgekit.convert` (fp32, linear head) and benchmarked with
`edgekit.bench.harness.run_bench`; the fastest warm run and the artifact size are cached in
`$EDGEKIT_TRAIN_CACHE` (default ~/.cache/edgekit/train/latency.json), keyed by CPU, runtime
versions, format, backbone and size, so the next run on this host starts searching at once.

Format -> runtime: tflite and edgetpu -> LiteRT (fp32 .tflite; an Edge TPU is not on this host),
openvino -> OpenVINO CPU, onnx -> ONNX Runtime. Core ML runs only on macOS: on Linux the search
measures the ONNX model on ONNX Runtime instead and says so.

Device scaling (`--device-profile`): a profile's published latency for MobileNet v2 (224x224)
divided by MobileNet v2's latency measured here, in the same format and runtime as the
candidates, gives a factor that maps every host latency to the board. It assumes that
architectures keep their relative cost across hardware, so it is an estimate, and the
summary says that it was applied, with the numbers it came from.
"""
from __future__ import annotations

import json
import os
import statistics
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import BadInput, RuntimeFailure
from .backbones import Backbone

BENCH_RUNS = 40
# Formats measured from a TorchScript trace: torch.onnx's TorchScript exporter takes a few seconds
# where the dynamo exporter takes 20-30 (measured: 10 s against 23 s per OpenVINO measurement, the
# same latency). onnx2tf cannot map the TorchScript exporter's graph, so TFLite keeps dynamo.
TORCHSCRIPT_TARGETS = ("openvino", "onnx")
REFERENCE_MODEL = "MobileNet v2 (224x224)"
REFERENCE_TOKENS = ("mobilenet_v2", "mobilenet-v2", "mobilenetv2")


@dataclass
class LatencyFormat:
    """Which artifact the search times and on which runtime backend (and why, when it is not the
    requested target's own)."""
    target: str          # what `convert` builds for the measurement
    backend: str         # edgekit runtime backend that runs it
    note: str = ""       # why this is not the requested target's own runtime, when it is not


def search_format(targets: list[str]) -> LatencyFormat:
    """The format whose host latency the search optimizes: that of the first requested target."""
    first = targets[0] if targets else "tflite"
    if first in ("tflite", "edgetpu"):
        note = "" if first == "tflite" else "edgetpu: measured as fp32 TFLite on LiteRT (no Edge TPU on this host)"
        return LatencyFormat("tflite", "litert", note)
    if first == "openvino":
        return LatencyFormat("openvino", "openvino")
    if first == "onnx":
        return LatencyFormat("onnx", "onnxruntime")
    if first == "coreml":
        import sys

        if sys.platform == "darwin":
            return LatencyFormat("coreml", "coreml")
        return LatencyFormat("onnx", "onnxruntime", "coreml: Core ML runs only on macOS; searched on the ONNX "
                                                    "model's ONNX Runtime latency instead")
    return LatencyFormat("onnx", "onnxruntime")


@dataclass
class Measurement:
    """One architecture's host latency (ms, fastest of BENCH_RUNS warm runs) and fp32 artifact size
    (bytes)."""
    latency_ms: float           # fastest of BENCH_RUNS warm runs (see measure_module)
    size_bytes: int             # the fp32 artifact with a linear head
    backend: str
    target: str
    measured: str               # "now" or "cache"
    seconds: float = 0.0        # what converting and timing it took (a cost estimate for the search)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cache_path() -> Path:
    """Where measured latencies are kept per host: $EDGEKIT_TRAIN_CACHE/latency.json (default
    ~/.cache/edgekit/train)."""
    root = os.environ.get("EDGEKIT_TRAIN_CACHE") or str(Path.home() / ".cache" / "edgekit" / "train")
    return Path(root) / "latency.json"


def _host_key(fmt: LatencyFormat) -> str:
    from .. import __version__
    from ..bench.sysinfo import cpu_name, versions

    runtime = {"litert": "ai-edge-litert", "openvino": "openvino", "onnxruntime": "onnxruntime",
               "coreml": "coremltools"}[fmt.backend]
    return (f"{cpu_name()}|{os.cpu_count()}|{fmt.target}/{fmt.backend} {versions([runtime]).get(runtime)}|"
            f"edgekit {__version__}|min of {BENCH_RUNS}")


def _load_cache() -> dict[str, Any]:
    try:
        return json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return {}


def _store(key: str, value: dict[str, Any]) -> None:
    from ..fsutil import write_atomic

    data = _load_cache()
    data[key] = value
    try:
        write_atomic(cache_path(), json.dumps(data, indent=1, sort_keys=True))
    except OSError:
        pass  # a read-only home: the measurement is simply not remembered


class LatencyTable:
    """Measured latency per (backbone, input size) in one format, cached per host."""

    def __init__(self, fmt: LatencyFormat, classes: int, warn=None):
        self.fmt = fmt
        self.classes = classes
        self.warn = warn
        self.host = _host_key(fmt)
        self.measured: dict[str, Measurement] = {}

    def get(self, backbone: Backbone, size: int) -> Measurement:
        """The Measurement of BACKBONE at SIZE x SIZE pixels: from this run, the host cache, or
        converted and timed now."""
        key = self._key(backbone, size)
        if key in self.measured:
            return self.measured[key]
        cached = _load_cache().get(key)
        if cached:
            result = Measurement(**{**cached, "measured": "cache"})
        else:
            result = self._measure(backbone, size)
            _store(key, {k: v for k, v in result.to_dict().items() if k != "measured"})
        self.measured[key] = result
        return result

    def _key(self, backbone: Backbone, size: int) -> str:
        return f"{self.host}|{backbone.name}|{size}"

    def known(self, backbone: Backbone, size: int) -> bool:
        """Measured already (in this run or in the host cache)?"""
        key = self._key(backbone, size)
        return key in self.measured or key in _load_cache()

    def typical_seconds(self) -> float | None:
        """Median time one measurement took on this host (None before the first)."""
        times = [m.seconds for m in self.measured.values() if m.seconds > 0] or \
            [v.get("seconds", 0.0) for k, v in _load_cache().items() if k.startswith(self.host) and v.get("seconds")]
        return statistics.median(times) if times else None

    def _measure(self, backbone: Backbone, size: int) -> Measurement:
        from .backbones import build_trunk
        from .heads import HeadSpec, classifier, make_head

        model = classifier(build_trunk(backbone.name), make_head(HeadSpec(), backbone.feature_dim, self.classes))
        if self.fmt.target in TORCHSCRIPT_TARGETS:
            model = traced(model, size)
        return measure_module(model, size, list(backbone.mean), list(backbone.std), self.fmt, backbone.name)


def measure_module(model, size: int, mean: list[float], std: list[float], fmt: LatencyFormat,
                   name: str) -> Measurement:
    """Convert MODEL (fp32, no verify) to FMT and time it with edgekit's bench; nothing is kept."""
    import time

    from ..bench.harness import BenchOptions, run_bench
    from ..convert import ConvertRequest, convert

    from .threads import backbone_threads, torch_threads

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="edgekit-latency-") as folder, torch_threads(backbone_threads()):
        result = convert(model, ConvertRequest(targets=[fmt.target], precisions=["fp32"], out_dir=Path(folder),
                                               input_size=[size, size], mean=mean, std=std, bgr=False,
                                               resize="stretch", task="classification", verify=False, name=name))
        artifact = result.artifacts[0]
        report = run_bench([artifact.path], BenchOptions(runs=BENCH_RUNS, warmup=5, backend=fmt.backend))
        record = report.results[0]
        if record.status != "ok":
            raise RuntimeFailure(f"could not time {name} at {size}px on {fmt.backend}: {record.error}",
                               "check `edgekit doctor`, or pick another first target with --to")
        # the fastest warm run: other processes on a shared host only ever add time, so the minimum
        # ranks architectures by their own cost (medians swapped Lite0 and Lite1 at a load of 5)
        return Measurement(latency_ms=float(record.latency_ms["min"]), size_bytes=int(artifact.size_bytes),
                           backend=fmt.backend, target=fmt.target, measured="now",
                           seconds=round(time.monotonic() - started, 2))


def traced(model, size: int):
    """TorchScript of MODEL traced on float32 [1, 3, SIZE, SIZE]."""
    import torch

    with torch.no_grad():
        return torch.jit.trace(model, torch.zeros(1, 3, size, size), check_trace=False)


@dataclass
class DeviceScale:
    """The factor from host latency to a board's, and the published and measured MobileNet v2 numbers
    (ms) it came from."""
    profile: str
    title: str
    factor: float
    reference_model: str
    device_ms: float                 # the profile's published number (median when it lists several)
    host_ms: float                   # the same model measured here
    sources: list[str]

    def describe(self) -> str:
        return (f"latencies scaled to {self.profile} ({self.title}) by x{self.factor:.3g}: {self.reference_model} "
                f"takes {self.device_ms:g} ms there (published: {', '.join(sorted(set(self.sources)))}) and "
                f"{self.host_ms:.2f} ms here on {{runtime}}; an estimate that assumes architectures keep their "
                f"relative cost on the board")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def scale_references(profile_name: str):
    """(profile, its published MobileNet v2 references); BadInput for an unknown profile (naming
    the closest) or one that publishes no such number."""
    from ..bench.profiles import get_profile

    profile = get_profile(profile_name)
    references = [r for r in profile.references
                  if any(t in m.lower() for m in r.match for t in REFERENCE_TOKENS)]
    if not references:
        raise BadInput(f"device profile '{profile_name}' publishes no {REFERENCE_MODEL} latency to scale by",
                       "use a profile that lists one (edgekit devices), or drop --device-profile")
    return profile, references


def device_scale(profile_name: str, fmt: LatencyFormat) -> DeviceScale:
    """The factor from host latency to PROFILE_NAME's, through the profile's MobileNet v2 reference."""
    profile, references = scale_references(profile_name)
    device_ms = statistics.median(r.latency_ms for r in references)
    key = f"{_host_key(fmt)}|reference-mobilenet_v2|224"
    cached = _load_cache().get(key)
    host_ms = cached["latency_ms"] if cached else _measure_reference(fmt)
    if not cached:
        _store(key, {"latency_ms": host_ms})
    return DeviceScale(profile.name, profile.title, device_ms / host_ms, REFERENCE_MODEL, device_ms, host_ms,
                       [r.source for r in references])


def _measure_reference(fmt: LatencyFormat) -> float:
    """MobileNet v2 at 224x224 built by Keras without weights (latency does not depend on them)."""
    from .. import deps

    if deps.missing("tensorflow"):
        raise BadInput("--device-profile needs TensorFlow to build its MobileNet v2 reference",
                       "install it with: pip install 'edgekit[tflite]'")
    import keras

    with tempfile.TemporaryDirectory(prefix="edgekit-reference-") as folder:
        path = Path(folder) / "mobilenet_v2.keras"
        keras.applications.MobileNetV2(input_shape=(224, 224, 3), weights=None, classes=1000).save(path)
        return measure_module(str(path), 224, [127.5], [127.5], fmt, "mobilenet_v2").latency_ms
