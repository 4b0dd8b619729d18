"""`edgekit run --workers auto`: how many inference workers (one model instance each) the
pipeline gets, from the cores and the stage times measured on this model here.

The pipeline prepares on one thread and decodes and draws on another, while N workers infer
side by side; its rate is about min(1 / prepare, N / infer, 1 / draw, cores / all the work of a
frame). So auto takes the workers that keep inference up with the slower of the other stages and
the cores, ceil(infer x that rate), and no more than the cores allow at the interpreter's thread
count (LiteRT runs one thread unless --threads says otherwise; OpenVINO and ONNX Runtime use
every core by default, so they get one worker unless --threads is set). Accelerators (Edge TPU,
an OpenVINO GPU or NPU, Core ML) take one inference at a time: one worker.

Measured with EfficientNet-Lite0 int8 on a 960x540 file (benchmarks/pipeline.py): where
inference dominates (17 ms against 5 ms of preparing), 2 workers ran at 1.15-1.34 x the model
alone and 1 worker at 0.86-0.89 x; where a frame's other work costs as much as its inference
(2-core Xeon: 7.5 ms against 6.9 ms; 2-core AMD EPYC with VNNI: 2.0 ms against 1.5 ms), the
cores are the limit, and a second worker ran 1-6 % slower than one.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

import numpy as np

CPU_BACKENDS = ("litert", "onnxruntime", "openvino")
PROBE_RUNS = 3
PROBE_SIZE = (640, 480)   # width, height when the source does not say (a common camera mode)
# Share of the cores the prepare, infer and draw stages get: decoding the source, the sinks and
# the hand-offs take the rest (benchmarks/pipeline.py: 1.75 of 2 cores busy, the source's decoding
# about a fifth of a frame's work)
CORE_SHARE = 0.8


@dataclass
class WorkerChoice:
    workers: int
    reason: str               # one line: the figures it was chosen from
    stage_ms: dict            # measured prepare, infer, draw (decode + annotate), ms


def cpu_count() -> int:
    """The cores this process may run on (a container's or taskset's limit, not the machine's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def workers_for(backend: str, device: str | None, threads: int | None, cores: int,
                stage_ms: dict[str, float]) -> tuple[int, str]:
    """The worker count for STAGE_MS ({"prepare", "infer", "draw"}: ms per frame) and why."""
    if backend not in CPU_BACKENDS or (backend == "openvino" and (device or "CPU").upper() != "CPU"):
        return 1, f"1 worker: {backend}{'/' + device if device else ''} runs one inference at a time"
    per_worker = threads or (1 if backend == "litert" else cores)
    room = max(1, cores // per_worker)
    other = max(stage_ms["prepare"], stage_ms["draw"], 0.05)
    frame = max(stage_ms["prepare"] + stage_ms["infer"] + stage_ms["draw"], 0.05)
    rate = min(1 / other, cores * CORE_SHARE / frame)   # frames per ms the rest of the pipeline allows
    needed = max(1, math.ceil(stage_ms["infer"] * rate - 1e-9))
    workers = min(room, needed)
    return workers, (f"{workers} worker{'s' if workers > 1 else ''}: inference {stage_ms['infer']:.1f} ms vs "
                     f"prepare {stage_ms['prepare']:.1f} ms, draw {stage_ms['draw']:.1f} ms; {cores} cores, "
                     f"{per_worker} thread{'s' if per_worker > 1 else ''} per worker")


def measure_stages(predictor, size: tuple[int, int] | None = None) -> dict[str, float]:
    """Median ms of prepare, infer and decode + annotate on a frame of SIZE (width, height):
    PROBE_RUNS each after one warm-up run."""
    from .overlay import annotate

    width, height = size or PROBE_SIZE
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    times: dict[str, list[float]] = {"prepare": [], "infer": [], "draw": []}
    for run in range(PROBE_RUNS + 1):
        start = time.perf_counter()
        batch, meta = predictor.prepare(image)
        prepared = time.perf_counter()
        outputs = predictor.infer(batch)
        inferred = time.perf_counter()
        annotate(image, predictor.decode(outputs, meta), {})
        drawn = time.perf_counter()
        if run:   # the first run warms caches and allocates
            for stage, ms in (("prepare", prepared - start), ("infer", inferred - prepared), ("draw", drawn - inferred)):
                times[stage].append(ms * 1e3)
    return {stage: float(np.median(values)) for stage, values in times.items()}


def choose_workers(predictor, threads: int | None, size: tuple[int, int] | None = None,
                   cores: int | None = None) -> WorkerChoice:
    """`--workers auto` for PREDICTOR (opened, the first worker's): measures it, then workers_for."""
    runner = predictor.runner
    stage_ms = measure_stages(predictor, size)
    workers, reason = workers_for(runner.backend, runner.device, threads, cores or cpu_count(), stage_ms)
    return WorkerChoice(workers, reason, {k: round(v, 3) for k, v in stage_ms.items()})
