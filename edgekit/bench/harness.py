"""Benchmark one or more artifacts: load, first inference, warm latency, pre/post, memory.

    from edgekit.bench.harness import BenchOptions, run_bench
    report = run_bench(["out/m_int8.tflite", "out/m_int8.xml"], BenchOptions(runs=200, threads=[1, 2]))
    report.to_dict()     # {"schema_version", "host", "options", "results": [record, ...]}

Each (artifact, thread count) gives one record (schema in stats.py). An artifact that cannot be
opened or run becomes a record with status "failed" and its one-line reason; the others go on.

What is timed, with time.perf_counter_ns:
- check_ms: the model-file safety checks open_runner makes (structure; for OpenVINO/Core ML a
  load in a child process, once per file and options), done first and kept out of load_ms;
- load_ms: open_runner (parse + compile, e.g. OpenVINO compile_model, LiteRT allocate_tensors);
- first_inference_ms: the first Runner.infer, kept apart (lazy init makes it slow on some runtimes);
- latency_ms: each warm inference after `warmup` more calls: the runtime call alone (Runner.run)
  on inputs already loaded, which is what OpenVINO's benchmark_app, LiteRT's benchmark_model and
  `edgekit remote bench` on a board time (ONNX Runtime and Core ML take their inputs with the
  call, so for them it includes feeding the inputs and returning the outputs);
- io_ms: median per call of the rest of Runner.infer around it: loading the input (checks,
  quantize, copy into the runtime) and reading the outputs (copy out, dequantize);
- preprocess_ms / postprocess_ms: medians of Predictor.prepare (image -> input tensor) and
  Predictor.decode (outputs -> labels) in their own loops, so they never inflate latency_ms.
Memory: every row runs in its own fresh process (`python -m edgekit.bench.row`), so peak_rss_mb,
that process's resident-set high-water mark (stats.peak_rss_mb) after the row ran, is the
row's own: the interpreter, edgekit, the runtime's libraries and this model, and nothing another
row left behind. Rows can be compared. rss_growth_mb is resident memory after the runs minus
before the load, in the same process. A runtime that crashes on a model fails its row only.

A row this host can never run (a Core ML model off macOS, an Edge TPU model without an Edge
TPU) gets status "skipped" and the reason ("needs macOS"); it is not a failure.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BadInput, EdgekitError, RuntimeFailure, summary
from . import stats

PREPOST_LOOPS = 30  # pre/post are cheap and steady; a few dozen calls give a stable median


@dataclass
class BenchOptions:
    """How to benchmark, as `edgekit bench` takes it. Invalid values raise BadInput on creation."""

    runs: int | None = 100               # warm runs; None when `duration` is given
    duration: float | None = None        # seconds of warm runs instead of a count
    warmup: int = 10
    threads: list[int | None] = field(default_factory=lambda: [None])  # None: the backend's default
    hint: str | None = None              # OpenVINO performance hint: latency | throughput
    backend: str | None = None
    device: str | None = None
    input: str = "random"                # "random" or an image / .npy path

    def __post_init__(self):
        if (self.runs is None) == (self.duration is None):
            raise BadInput("give either a number of runs or a duration, not both",
                           "use --runs N or --duration SECONDS")
        if self.runs is not None and self.runs < 1:
            raise BadInput(f"--runs must be at least 1, got {self.runs}")
        if self.duration is not None and self.duration <= 0:
            raise BadInput(f"--duration must be positive, got {self.duration}")
        if self.warmup < 0:
            raise BadInput(f"--warmup must be 0 or more, got {self.warmup}")
        if self.hint not in (None, "latency", "throughput"):
            raise BadInput(f"unknown hint '{self.hint}'", "valid hints: latency, throughput")
        if self.input != "random" and not Path(self.input).is_file():
            raise BadInput(f"--input {self.input}: no such file", "give an image, a .npy tensor, or 'random'")


@dataclass
class BenchRecord:
    """One (artifact, thread count) result; the fields and units are the record schema in stats.py."""

    artifact: str
    format: str | None = None
    precision: str | None = None
    backend: str | None = None
    device: str | None = None
    size_bytes: int | None = None
    parity: dict[str, Any] | None = None
    status: str = "ok"                     # ok | failed | skipped (this host can never run it)
    error: str | None = None               # why the row failed or was skipped
    check_ms: float | None = None          # safety checks before loading (child-process probe), not in load_ms
    load_ms: float | None = None
    first_inference_ms: float | None = None
    latency_ms: dict[str, float] = field(default_factory=dict)
    fps: float | None = None
    io_ms: float | None = None             # loading inputs + reading outputs per call, not in latency_ms
    preprocess_ms: float | None = None
    postprocess_ms: float | None = None
    peak_rss_mb: float | None = None
    rss_growth_mb: float | None = None
    runs: int = 0
    warmup: int = 0
    threads: int | None = None
    hint: str | None = None
    input: str = "random"
    samples_ms: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BenchReport:
    """Every record of one run, with the host facts (bench/sysinfo.py) and the options used."""

    host: dict[str, Any]
    options: dict[str, Any]
    results: list[BenchRecord]
    schema_version: int = stats.RECORD_SCHEMA_VERSION

    @property
    def failed(self) -> list[BenchRecord]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def skipped(self) -> list[BenchRecord]:
        """Rows this host can never run (status "skipped"): not failures."""
        return [r for r in self.results if r.status == "skipped"]

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": self.schema_version, "host": self.host, "options": self.options,
                "results": [r.to_dict() for r in self.results]}


def run_bench(artifacts: list[str | Path], options: BenchOptions, progress=None, isolate: bool = True) -> BenchReport:
    """Benchmark every artifact (.tflite, OpenVINO .xml, .onnx, .mlpackage) at every thread count
    of OPTIONS, in order, one at a time (`edgekit bench`): each row in its own child process
    (ISOLATE, the default), so its peak memory is its own; ISOLATE False runs them in this one.

    Each gives a BenchRecord: milliseconds for check, load, first inference, the warm latency
    distribution of the runtime call alone (Runner.run) and the I/O around it, pre/postprocess
    medians; peak and added resident memory in MiB (see the module docstring for what each
    covers). An artifact that cannot be opened or run becomes a record with status "failed"
    and its one-line reason, one this host can never run status "skipped" and the reason
    ("needs macOS"); nothing is raised for either. PROGRESS: a rich Progress, or None.
    """
    from .sysinfo import collect

    jobs = [(Path(a), threads) for a in artifacts for threads in options.threads]
    per_job = (options.runs or 0) + options.warmup + 1
    task = None
    if progress is not None:
        total = per_job * len(jobs) if options.runs else None
        task = progress.add_task("benchmarking", total=total)

    ticks = [0]

    def tick(done: int = 1) -> None:
        ticks[0] += done
        if task is not None:
            progress.advance(task, done)

    results = []
    for path, threads in jobs:
        if progress is not None:
            progress.update(task, description=f"{path.name}" + (f" ({threads} threads)" if threads else ""))
        ticks[0] = 0
        reason = skip_reason(path, options)
        if reason:
            results.append(_skipped(path, options, threads, reason))
        elif isolate:
            results.append(bench_in_child(path, options, threads, tick))
        else:
            results.append(bench_artifact(path, options, threads, tick))
        if options.runs and ticks[0] < per_job:  # a failed or skipped artifact: jump the bar past its share
            tick(per_job - ticks[0])
    host = collect()
    return BenchReport(host=host, options=_options_dict(options), results=results)


def bench_artifact(path: Path, options: BenchOptions, threads: int | None = None,
                   tick: Callable[[int], None] = lambda n=1: None) -> BenchRecord:
    """One BenchRecord for PATH at THREADS (None: the backend's default); never raises for the
    artifact: failures are recorded. TICK(n) is called as inferences complete (progress)."""
    record = BenchRecord(artifact=str(path), threads=threads, hint=options.hint, warmup=options.warmup,
                         input=options.input)
    try:
        _describe(record, path, options)
        _measure(record, path, options, threads, tick)
    except EdgekitError as exc:
        _fail(record, exc.one_line())
    except Exception as exc:  # a runtime rejected the model in a way we did not foresee: one row, not a crash
        _fail(record, f"{type(exc).__name__}: {summary(exc)}")
    return record


def skip_reason(path: Path, options: BenchOptions) -> str | None:
    """Why this host can never run PATH with the chosen backend (its OS or hardware: `needs
    macOS`), or None. Read from the file and the backend class only: nothing is loaded. A file
    compiled for the Edge TPU needs one, whichever backend is named."""
    from ..formats import sniff
    from ..runtime.base import BACKENDS

    try:
        fmt = sniff(path)
        names = [options.backend or fmt.backend]
        if fmt.name == "tflite" and _compiled_for_edgetpu(path):
            names.append("edgetpu")
    except EdgekitError:
        return None   # the row fails with the reason
    for name in names:
        if name in BACKENDS and fmt.name in BACKENDS.get(name).formats:
            reason = BACKENDS.get(name).host_cannot()
            if reason:
                return reason
    return None


def _compiled_for_edgetpu(path: Path) -> bool:
    from ..edgetpu.analyze import is_compiled
    from ..tflite_model import read_tflite

    return is_compiled(read_tflite(path))


def _skipped(path: Path, options: BenchOptions, threads: int | None, reason: str) -> BenchRecord:
    record = BenchRecord(artifact=str(path), threads=threads, hint=options.hint, warmup=options.warmup,
                         input=options.input, status="skipped", error=reason)
    try:
        _describe(record, path, options)
    except EdgekitError:
        pass
    return record


def bench_in_child(path: Path, options: BenchOptions, threads: int | None = None,
                   tick: Callable[[int], None] = lambda n=1: None) -> BenchRecord:
    """bench_artifact in a fresh process (`python -m edgekit.bench.row`), so the record's peak
    memory is the row's own. The child reports progress ticks and then its record over a pipe;
    one that dies (a native crash on the model) is a failed row naming the signal. Ctrl-C,
    SIGTERM and SIGHUP here end the child too."""
    read_fd, write_fd = os.pipe()
    job = json.dumps({"artifact": str(path), "options": asdict(options), "threads": threads})
    try:
        child = subprocess.Popen([sys.executable, "-m", "edgekit.bench.row", str(write_fd)], stdin=subprocess.PIPE,
                                 pass_fds=(write_fd,))
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    record = None
    try:
        child.stdin.write(job.encode())
        child.stdin.close()
        with os.fdopen(read_fd, encoding="utf-8") as reports:
            for line in reports:
                kind, _, payload = line.rstrip("\n").partition(" ")
                if kind == "tick":
                    tick(int(payload))
                elif kind == "record":
                    record = BenchRecord(**json.loads(payload))
        child.wait()
    except BaseException:
        child.kill()
        child.wait()
        raise
    if record is None:
        record = BenchRecord(artifact=str(path), threads=threads, hint=options.hint, warmup=options.warmup,
                             input=options.input)
        _fail(record, _death(child.returncode))
    return record


def _death(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the benchmark process died of {name}: the runtime crashed on this model"
    return f"the benchmark process ended with exit code {code} before reporting a result"


def _fail(record: BenchRecord, reason: str) -> None:
    record.status, record.error = "failed", reason
    record.latency_ms, record.samples_ms, record.fps = {}, [], None


def _describe(record: BenchRecord, path: Path, options: BenchOptions) -> None:
    """Format, size, precision and parity: from the file and its manifest, before any runtime.
    Backend and device say what will be tried (the runner fills in what it picked)."""
    from ..formats import sniff
    from ..manifest import read_manifest

    record.device = options.device
    fmt = sniff(path)
    record.format = fmt.name
    record.backend = options.backend or fmt.backend
    record.size_bytes = fmt.size(path)   # an IR is the .xml plus its .bin
    manifest = read_manifest(path)
    if manifest is not None:
        record.precision = manifest.precision
        if manifest.verify is not None:
            verify = manifest.verify
            record.parity = {"status": verify.status, "cosine": verify.cosine,
                             "top1_agreement": verify.top1_agreement,
                             "top1_agreement_decisive": verify.top1_agreement_decisive, "runtime": verify.runtime}


def _measure(record: BenchRecord, path: Path, options: BenchOptions, threads: int | None, tick) -> None:
    from ..manifest import read_manifest
    from ..runtime.base import open_runner
    from ..runtime.predictor import Predictor

    runner_options = {k: v for k, v in (("threads", threads), ("hint", options.hint)) if v is not None}
    start = time.perf_counter_ns()
    _check_untrusted(path, record.format, options, runner_options)
    record.check_ms = (time.perf_counter_ns() - start) / 1e6
    rss_before = _rss_mb()
    start = time.perf_counter_ns()
    runner = open_runner(path, options.backend, options.device, **runner_options)
    record.load_ms = (time.perf_counter_ns() - start) / 1e6
    with runner:
        record.backend = runner.backend
        record.device = runner.device or _default_device(runner)
        manifest = read_manifest(path)
        if manifest is None:  # what the file itself says (input layout and size), as `predict` does
            from ..runtime.fallback import manifest_from_model

            manifest, _ = manifest_from_model(path, runner)
        predictor = Predictor(runner, manifest)
        batch, image = _input(predictor, options.input)

        start = time.perf_counter_ns()
        outputs = runner.infer(batch)
        record.first_inference_ms = (time.perf_counter_ns() - start) / 1e6
        tick(1)
        for _ in range(options.warmup):
            runner.infer(batch)
            tick(1)

        samples, io = _timed_loop(runner, batch, options, tick)
        record.samples_ms = samples
        record.io_ms = stats.percentile(sorted(io), 50)
        record.runs = len(samples)
        record.latency_ms = stats.summarize(samples)
        record.fps = stats.fps(record.latency_ms)
        record.preprocess_ms, record.postprocess_ms = _prepost(predictor, image, outputs)
    record.peak_rss_mb = stats.peak_rss_mb()
    rss_after = _rss_mb()
    record.rss_growth_mb = (rss_after - rss_before) if rss_after is not None and rss_before is not None else None


def _check_untrusted(path: Path, fmt: str, options: BenchOptions, runner_options: dict) -> None:
    """The safety checks open_runner makes on a model file (structure, and for some backends a
    load in a child process), done first so load_ms times only the load itself. open_runner
    remembers a passed child probe, so it does not run it again."""
    from ..formats import FORMATS
    from ..runtime.base import BACKENDS, vet

    record_format = FORMATS.get(fmt)
    name = options.backend or record_format.backend
    if name is None or name not in BACKENDS:
        return  # open_runner gives the one-line reason
    runner_cls = BACKENDS.get(name)
    if fmt not in runner_cls.formats or runner_cls.unavailable_reason():
        return
    if set(runner_options) - set(runner_cls.options):
        record_format.check_structure(path)  # open_runner refuses the options; the file is still checked
        return
    vet(path, record_format, runner_cls, runner_cls.check_device(options.device), runner_options)


def _default_device(runner) -> str:
    """What runs when no device was asked for: the backend's only device kind, if it has one."""
    kinds = getattr(runner, "device_kinds", ())
    return kinds[0] if len(kinds) == 1 else "default"


def _timed_loop(runner, batch, options: BenchOptions, tick) -> tuple[list[float], list[float]]:
    """Warm latencies of Runner.run, and per call the time Runner.load + Runner.results took.
    The input is loaded afresh every call, as with each new camera frame."""
    samples, io = [], []
    clock = time.perf_counter_ns
    deadline = clock() + int(options.duration * 1e9) if options.duration else None
    count = options.runs or 0
    while (len(samples) < count) if deadline is None else (clock() < deadline or not samples):
        start = clock()
        runner.load(batch)
        loaded = clock()
        runner.run()
        ran = clock()
        runner.results()
        samples.append((ran - loaded) / 1e6)
        io.append((loaded - start + clock() - ran) / 1e6)
        tick(1)
    return samples, io


def _input(predictor, spec: str):
    """The model input and the image it came from (None when the input is a ready tensor).
    'random' is a random 640x480 RGB frame, preprocessed like a camera frame would be; a
    model whose input is not an image (or that takes several) gets random values in [-1, 1]
    of each input's shape. A .npy is the one input's tensor; a .npz holds one array per input
    name (the artifact's, or the source model's as the manifest records them)."""
    inputs = predictor.runner.inputs
    info = inputs[0]
    if spec == "random":
        rng = np.random.default_rng(0)
        if len(inputs) == 1 and _is_image(predictor, info.shape):
            image = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
            return predictor.prepare(image)[0], image
        feeds = [rng.uniform(-1, 1, t.shape).astype(np.float32) for t in inputs]
        return (feeds[0] if len(feeds) == 1 else feeds), None
    path = Path(spec)
    if path.suffix.lower() in (".npy", ".npz"):
        return predictor.tensor_feeds(path), None
    image = _read_rgb(path)
    return predictor.prepare(image)[0], image


def _is_image(predictor, shape: list[int]) -> bool:
    """The manifest says (input_specs); without one, a rank-4 input with 1 or 3 channels."""
    if predictor.manifest is not None and predictor.manifest.input_specs:
        return predictor.manifest.input_kinds()[0] == "image"
    return len(shape) == 4 and (shape[-1] in (1, 3) or shape[1] in (1, 3))


def _read_rgb(path: Path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise BadInput(f"--input {path} is not an image OpenCV can decode", "give a JPEG/PNG, a .npy or 'random'")
    return np.ascontiguousarray(image[:, :, ::-1])


def _prepost(predictor, image: np.ndarray | None, outputs: list[np.ndarray]) -> tuple[float | None, float | None]:
    """Medians of prepare() on the image and decode() on real outputs. Pre is None when the
    input was a ready tensor; post is None when the task's decoder does not fit the outputs."""
    from ..runtime.predictor import FrameMeta

    clock = time.perf_counter_ns
    pre = None
    meta = None
    if image is not None:
        times = []
        for _ in range(PREPOST_LOOPS):
            start = clock()
            _, meta = predictor.prepare(image)
            times.append((clock() - start) / 1e6)
        pre = stats.percentile(sorted(times), 50)
    if meta is None:
        meta = predictor.tensor_meta()
    times = []
    try:
        for _ in range(PREPOST_LOOPS):
            start = clock()
            predictor.decode(outputs, meta)
            times.append((clock() - start) / 1e6)
    except Exception:  # e.g. an "other" model whose outputs are not scores: nothing to decode
        return pre, None
    return pre, stats.percentile(sorted(times), 50)


def _rss_mb() -> float | None:
    try:
        import psutil

        return psutil.Process(os.getpid()).memory_info().rss / (1024 * 1024)
    except ImportError:
        return None


def _options_dict(options: BenchOptions) -> dict[str, Any]:
    return asdict(options)


class RegressionError(RuntimeFailure):
    """A median got slower than the baseline allows. Exit code 1: a finding, not bad input."""


class ArtifactsFailed(RuntimeFailure):
    """Some artifacts could not be benchmarked (the others were). Exit code 1, like a failed gate."""


def load_baseline(path: Path) -> list[dict[str, Any]]:
    """The `results` of an earlier `edgekit bench --json` (or a bare list of records). Raises
    BadInput for an unreadable file, no results, or record schema 1 (its latency also counted I/O)."""
    import json

    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise BadInput(f"baseline {path} cannot be read ({exc.strerror or exc})",
                       "write one with: edgekit bench ... --json > baseline.json") from None
    except ValueError as exc:
        raise BadInput(f"baseline {path} is not JSON ({exc})",
                       "write one with: edgekit bench ... --json > baseline.json") from None
    results = data.get("results") if isinstance(data, dict) else data
    if not isinstance(results, list) or not all(isinstance(r, dict) and "latency_ms" in r for r in results):
        raise BadInput(f"baseline {path} has no benchmark results",
                       "write one with: edgekit bench ... --json > baseline.json")
    if any("io_ms" not in r for r in results):  # record schema 1: latency was the whole Runner.infer
        raise BadInput(f"baseline {path} was written before edgekit bench timed the runtime call alone, "
                       "so its medians also count loading inputs and reading outputs",
                       "write a new one with: edgekit bench ... --json > baseline.json")
    return results


@dataclass
class ComparisonRow:
    """One result beside the baseline's: same artifact file name, backend, device and threads."""

    key: list                 # [artifact file name, backend, device, threads]
    baseline_ms: float        # the baseline's warm p50
    current_ms: float         # this run's warm p50
    change_pct: float         # (current - baseline) / baseline, percent; positive is slower
    regressed: bool           # slower than max_regression_pct allows


@dataclass
class Comparison:
    """This run's rows side by side with an earlier `edgekit bench --json` result (medians)."""

    baseline: str             # the baseline file
    max_regression_pct: float
    rows: list[ComparisonRow]

    @property
    def regressed(self) -> list[ComparisonRow]:
        return [row for row in self.rows if row.regressed]

    def regression_message(self) -> str | None:
        """One line naming every regressed row, or None."""
        if not self.regressed:
            return None
        parts = [f"{r.key[0]} {r.key[1]}/{r.key[2]}" + (f" threads={r.key[3]}" if r.key[3] else "")
                 + f" p50 {r.current_ms:.3f} ms vs {r.baseline_ms:.3f} ms ({r.change_pct:+.1f}%)"
                 for r in self.regressed]
        return f"latency regression beyond {self.max_regression_pct:g}%: " + "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.baseline, "max_regression_pct": self.max_regression_pct,
                "comparisons": [asdict(row) for row in self.rows]}


def compare_baseline(report: BenchReport, baseline: list[dict[str, Any]], max_regression: float,
                     baseline_path: str | Path = "") -> Comparison:
    """REPORT's median latencies against BASELINE's records (from `load_baseline`), row by
    matching (artifact file name, backend, device, threads) key (stats.compare_medians);
    MAX_REGRESSION is in percent (>= 0, else BadInput)."""
    if max_regression < 0:
        raise BadInput(f"--max-regression must be 0 or more, got {max_regression}")
    rows = stats.compare_medians(baseline, [r.to_dict() for r in report.results], max_regression)
    return Comparison(str(baseline_path), max_regression, [ComparisonRow(**row) for row in rows])
