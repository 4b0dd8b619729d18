"""The pipeline: capture -> prepare -> infer (N workers) -> decode+draw -> sinks, each on its own
thread, joined by small bounded channels.

Stages overlap because the heavy calls (FFmpeg decode, numpy resize, cv2 draw, the runtimes' invoke,
JPEG/MP4 encoding) release the GIL, so throughput approaches the slowest stage instead of the sum.
Several Predictors (one per inference worker: several LiteRT interpreters, several OpenVINO
compiled models) keep more than one inference in flight; results are put back in frame order
before drawing. Live feeds drop the oldest frame when the pipeline is behind, and a frame is
picked for preparation only when inference can take it next (fresh frames, low latency); files
are read only as fast as they are processed (no frame lost). Sinks run on the caller's thread,
which is also where Ctrl-C, SIGTERM and SIGHUP land (edgekit.interrupt): stopping always
finalizes the sinks (a playable MP4, complete JSON lines).
"""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import interrupt
from .capture import Capture
from .channel import CLOSED, Channel
from .overlay import annotate
from .types import Frame, FrameResult, StreamEvent

JOIN_TIMEOUT = 10.0   # the capture thread may sit in a network read for its read timeout


@dataclass
class _Job:
    seq: int
    frame: Frame
    batch: Any
    meta: Any
    prepare_ms: float
    outputs: Any = None
    infer_ms: float = 0.0


@dataclass
class RunResult:
    """What one Pipeline.run did: frames, wall seconds, frames per second, mean latencies in ms."""

    source: str
    model: str
    backend: str
    stopped: str                 # end of source, max frames, interrupted, window closed
    frames: int = 0
    seconds: float = 0.0
    fps: float = 0.0
    latency_ms: float | None = None   # mean capture -> annotated frame; None for files read as fast as processed
    infer_ms: float | None = None     # mean model time
    dropped: int = 0             # frames a live feed delivered that the pipeline skipped to stay current
    reconnects: int = 0
    retries: int = 0
    skipped: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)   # one line per sink (saved file, URL, ...)
    workers: int = 1             # inference workers (model instances)
    workers_auto: str | None = None   # with --workers auto: how the count was chosen

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


class _Stats:
    """Live numbers for the HUD and the web page; written by the draw thread, read anywhere."""

    def __init__(self, window: int = 30):
        self.lock = threading.Lock()
        self.times: deque[float] = deque(maxlen=window)
        self.frames = 0
        self.timed = 0           # frames with an end-to-end latency (live sources)
        self.latency_sum = 0.0
        self.infer_sum = 0.0
        self.latency_ema: float | None = None
        self.infer_ema: float | None = None
        self.latest: dict | None = None
        self.first: float | None = None
        self.last: float | None = None

    def record(self, result: FrameResult, now: float) -> None:
        with self.lock:
            self.times.append(now)
            self.frames += 1
            self.first = self.first if self.first is not None else now
            self.last = now
            self.infer_sum += result.infer_ms
            ema = lambda old, new: new if old is None else old * 0.9 + new * 0.1  # noqa: E731
            if result.latency_ms is not None:
                self.timed += 1
                self.latency_sum += result.latency_ms
                self.latency_ema = ema(self.latency_ema, result.latency_ms)
            self.infer_ema = ema(self.infer_ema, result.infer_ms)
            self.latest = result.to_dict()

    def fps(self) -> float:
        with self.lock:
            if len(self.times) < 2:
                return 0.0
            span = self.times[-1] - self.times[0]
            return (len(self.times) - 1) / span if span > 0 else 0.0


class Pipeline:
    """The camera loop: frames from FEED (a camera, stream, video, folder or synthetic frame
    input, opened by `open_feed`) -> Predictor.prepare -> Predictor.infer (one thread per
    Predictor in PREDICTORS, one Runner each) -> decode and draw -> every sink in SINKS.

    Frames are HxWx3 uint8 RGB; results carry boxes in original-image pixels and timings in
    ms. A live feed keeps only the newest frame and queues drop the oldest, so latency stays
    low; a file feed drops nothing. A dropped live feed is reopened up to MAX_RETRIES
    times with backoff (then BadInput: gave up). MAX_FRAMES stops after that many frames;
    QUEUE_SIZE bounds the file-feed queues. ON_EVENT gets StreamEvents (retry, reconnect,
    skipped file), ON_RESULT every FrameResult. Raises ValueError without a predictor.
    """

    def __init__(self, feed, predictors: Sequence, sinks: Sequence = (), *,
                 on_event: Callable[[StreamEvent], None] | None = None,
                 on_result: Callable[[FrameResult], None] | None = None,
                 max_retries: int = 10, max_frames: int | None = None, queue_size: int = 2):
        if not predictors:
            raise ValueError("a pipeline needs at least one predictor")
        self.feed = feed
        self.predictors = list(predictors)
        self.sinks = list(sinks)
        self.on_result = on_result
        self.max_frames = max_frames
        self.events: list[StreamEvent] = []
        self._on_event = on_event
        self._stop = threading.Event()
        self._error: BaseException | None = None
        live = feed.live
        workers = len(self.predictors)
        # live: the shortest queues that keep every stage busy (each queued frame is latency);
        # files: one spare slot per hand-off, for throughput
        self.frames = Channel(1 if live else queue_size, drop_oldest=live)
        self.batches = Channel(workers if live else workers + 1)
        self.outputs = Channel(workers + 1, producers=workers)
        self.annotated = Channel(1 if live else queue_size, drop_oldest=live)
        self.capture = Capture(feed, self.frames, self._stop, self._event, max_retries)
        runner = self.predictors[0].runner
        self.model = Path(runner.path).name
        self.backend = runner.backend + (f"/{runner.device}" if runner.device else "")
        self.stats = _Stats()
        self._threads = [threading.Thread(target=self._prepare_loop, name="edgekit-prepare", daemon=True),
                         *(threading.Thread(target=self._infer_loop, args=(p,), name=f"edgekit-infer-{i}",
                                            daemon=True) for i, p in enumerate(self.predictors)),
                         threading.Thread(target=self._draw_loop, name="edgekit-draw", daemon=True)]

    # -- public ------------------------------------------------------------------------------
    def run(self) -> RunResult:
        """Run until the feed ends, `max_frames`, a sink asks to stop, stop() or Ctrl-C, then
        finalize every sink (a video is closed properly) and return the RunResult. An error in
        a stage (e.g. an EdgekitError from a sink or the feed) is raised here after shutdown."""
        with _opencv_single_threaded():
            return self._run()

    def _run(self) -> RunResult:
        stopped = "end of source"
        count = 0
        try:
            self.capture.start()
            for thread in self._threads:
                thread.start()
            while True:
                item = self.annotated.get(timeout=0.2)  # a timeout keeps Ctrl-C responsive
                if item is None:
                    continue
                if item is CLOSED:
                    stopped = "stopped" if self._stop.is_set() and self._error is None else stopped
                    break
                image, result = item
                snapshot = self.snapshot()
                if any([sink.write(image, result, snapshot) for sink in self.sinks]):
                    stopped = "window closed"
                    break
                if self.on_result:
                    self.on_result(result)
                count += 1
                if self.max_frames and count >= self.max_frames:
                    stopped = "max frames"
                    break
        except KeyboardInterrupt:
            stopped = "interrupted"
        finally:
            with interrupt.deferred():   # a second Ctrl-C or SIGTERM must not cut a video in half
                outputs = self._shutdown()
        error = self.capture.error or self._error
        if error is not None and stopped != "interrupted":
            raise error
        return self._result(stopped, outputs, count)

    def stop(self) -> None:
        """Ask every stage to finish now (thread-safe; run() then returns)."""
        self._stop.set()
        for channel in (self.frames, self.batches, self.outputs, self.annotated):
            channel.cancel()

    def snapshot(self) -> dict[str, Any]:
        """Live numbers (frames, fps, latency/infer ms, dropped, reconnects, the latest result)
        for the web page and HUD; safe to call from any thread."""
        stats = self.stats
        with stats.lock:
            latency, infer, latest, frames = stats.latency_ema, stats.infer_ema, stats.latest, stats.frames
        return {"frames": frames, "fps": round(stats.fps(), 2),
                "latency_ms": None if latency is None else round(latency, 2),
                "infer_ms": None if infer is None else round(infer, 2),
                "dropped": self.frames.dropped + self.annotated.dropped, "reconnects": self.capture.reconnects,
                "source": self.feed.describe(), "source_fps": self.capture.fps, "live": self.feed.live,
                "model": self.model, "backend": self.backend,
                "workers": len(self.predictors), "latest": latest}

    # -- stages ------------------------------------------------------------------------------
    def _prepare_loop(self) -> None:
        predictor = self.predictors[0]   # prepare/decode are pure functions of the manifest
        live = self.feed.live
        seq = 0
        try:
            while True:
                if live and not self.batches.wait_for_space():   # take the newest frame only when it can move on
                    return
                frame = self.frames.get()
                if frame is CLOSED:
                    return
                start = time.perf_counter()
                batch, meta = predictor.prepare(frame.image, order="BGR")  # frames.py reorders after resizing
                job = _Job(seq, frame, batch, meta, (time.perf_counter() - start) * 1e3)
                seq += 1
                if not self.batches.put(job):
                    return
        except BaseException as exc:
            self._fail(exc)
        finally:
            self.batches.close()

    def _infer_loop(self, predictor) -> None:
        try:
            while True:
                job = self.batches.get()
                if job is CLOSED:
                    return
                start = time.perf_counter()
                job.outputs = predictor.infer(job.batch)
                job.infer_ms = (time.perf_counter() - start) * 1e3
                job.batch = None
                if not self.outputs.put(job):
                    return
        except BaseException as exc:
            self._fail(exc)
        finally:
            self.outputs.close()

    def _draw_loop(self) -> None:
        pending: dict[int, _Job] = {}
        next_seq = 0
        try:
            while True:
                job = self.outputs.get()
                if job is CLOSED:
                    break
                pending[job.seq] = job
                while next_seq in pending:   # workers finish out of order; draw in frame order
                    if not self._draw(pending.pop(next_seq)):
                        return
                    next_seq += 1
            for seq in sorted(pending):
                if self._stop.is_set() or not self._draw(pending.pop(seq)):
                    return
        except BaseException as exc:
            self._fail(exc)
        finally:
            self.annotated.close()

    def _draw(self, job: _Job) -> bool:
        start = time.perf_counter()
        prediction = self.predictors[0].decode(job.outputs, job.meta)
        decoded = time.perf_counter()
        prediction.timings_ms = {"preprocess": round(job.prepare_ms, 3), "infer": round(job.infer_ms, 3),
                                 "postprocess": round((decoded - start) * 1e3, 3)}
        stats = self.stats
        hud = {"fps": stats.fps(), "infer_ms": job.infer_ms, "latency_ms": stats.latency_ema,
               "backend": self.backend, "model": self.model}
        image = annotate(job.frame.image, prediction, hud)
        now = time.perf_counter()
        frame = job.frame
        # end-to-end latency only where frames arrive in real time: a file read as fast as the
        # pipeline goes would report its queueing, which means nothing
        latency = (now - frame.captured) * 1e3 if self.feed.live else None
        result = FrameResult(frame.id, frame.wall_time, latency, job.infer_ms, frame.generation,
                             prediction, frame.name, frame.stream_ms, frame.captured)
        stats.record(result, now)
        return self.annotated.put((image, result))

    # -- plumbing ----------------------------------------------------------------------------
    def _event(self, event: StreamEvent) -> None:
        self.events.append(event)
        if self._on_event:
            self._on_event(event)

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        self.stop()

    def _shutdown(self) -> list[str]:
        self.stop()
        for thread in [self.capture.thread, *self._threads]:
            if thread.is_alive():   # (never started when Ctrl-C came during start-up)
                thread.join(JOIN_TIMEOUT)
        outputs = []
        for sink in self.sinks:
            line = sink.close()
            if line:
                outputs.append(line)
        return outputs

    def _result(self, stopped: str, outputs: list[str], delivered: int) -> RunResult:
        stats = self.stats
        frames = stats.frames   # drawn; `delivered` of them reached the sinks before the stop
        seconds = (stats.last - stats.first) if frames > 1 else 0.0
        return RunResult(
            source=self.feed.describe(), model=self.model, backend=self.backend, stopped=stopped, frames=delivered,
            seconds=round(seconds, 3), fps=round((frames - 1) / seconds, 2) if seconds > 0 else 0.0,
            latency_ms=round(stats.latency_sum / stats.timed, 2) if stats.timed else None,
            infer_ms=round(stats.infer_sum / frames, 2) if frames else None,
            dropped=self.frames.dropped + self.annotated.dropped, reconnects=self.capture.reconnects,
            retries=self.capture.retries, skipped=list(getattr(self.feed, "skipped", [])), outputs=outputs,
            workers=len(self.predictors))


@contextmanager
def _opencv_single_threaded():
    """The pipeline runs its stages side by side already; OpenCV splitting its work (drawing,
    encoding) across cores as well only makes it wait for the core the inference holds (measured
    when OpenCV still did the resizing: a 960x540 prepare took 7.0 ms with 2 threads, 4.2 ms with
    1, while the other core was busy). Restored afterwards."""
    from .cv import cv2

    cv = cv2()
    previous = cv.getNumThreads()
    cv.setNumThreads(1)
    try:
        yield
    finally:
        cv.setNumThreads(previous)
