"""Terminal rendering shared by commands: rich tables, progress bars, JSON."""
from __future__ import annotations

import io
import json
import os
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from functools import lru_cache
from typing import Any


def _own_stream(stderr: bool):
    """A private duplicate of stdout/stderr, so our output survives `native_output_captured`.
    Under test runners that replace sys.stdout with an in-memory buffer, use theirs."""
    stream = sys.stderr if stderr else sys.stdout
    try:
        fd = stream.fileno()
    except (AttributeError, io.UnsupportedOperation, ValueError):
        return stream
    return _dup_of(fd)


@lru_cache(maxsize=2)
def _dup_of(fd: int):
    return os.fdopen(os.dup(fd), "w", buffering=1)


def console(stderr: bool = False):
    from rich.console import Console

    stream = _own_stream(stderr)
    # tables stay readable in CI logs and pipes, where rich would otherwise assume 80 columns
    # soft_wrap on stderr: a long warning or error stays one line for log readers and tests
    return Console(file=stream, highlight=False, width=None if stream.isatty() else 160, soft_wrap=stderr)


@contextmanager
def native_output_captured(enabled: bool = True):
    """Route fds 1 and 2 to a scratch file while converters run: TensorFlow's C++ logs,
    coremltools' tqdm bars and library prints would otherwise bury our progress and tables."""
    if not enabled:
        yield
        return
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except ValueError:
                    pass
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


@contextmanager
def progress_bar(enabled: bool):
    """A rich progress bar on stderr on a terminal (None under --json); where stderr is not a
    terminal (CI logs, pipes, files), a PlainProgress that prints one line when each step starts
    and one when it ends, with its duration, so a log is never silent for minutes."""
    err = _own_stream(True)
    if not err.isatty():
        plain = PlainProgress(err)
        with _steps_to(plain):
            try:
                yield plain
            except KeyboardInterrupt:   # Ctrl-C, SIGTERM, SIGHUP: the log shows where it stopped
                plain.close("stopped after")
                raise
            except BaseException:
                plain.close("failed after")
                raise
            plain.close("done in")
        return
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console(stderr=True), transient=True) as progress:
        yield progress


class PlainProgress:
    """The subset of rich.progress.Progress that edgekit uses (add_task, update, advance,
    remove_task), as plain log lines: `progress: STEP started` and `progress: STEP done in 1.2 s`.
    A task's description changing (convert: "tflite int8" -> "openvino int8") ends one step and
    starts the next; a task reaching its total ends its step."""

    def __init__(self, stream):
        self.stream = stream
        self._tasks: dict[int, dict] = {}
        self._lock = threading.Lock()

    def line(self, text: str) -> None:
        with self._lock:
            self.stream.write(f"progress: {text}\n")
            self.stream.flush()

    def add_task(self, description: str, total: float | None = None, **_) -> int:
        task = len(self._tasks)
        self._tasks[task] = {"description": description, "total": total, "completed": 0, "started": None}
        self._start(task)
        return task

    def update(self, task: int, description: str | None = None, total: float | None = None,
               completed: float | None = None, advance: float | None = None, **_) -> None:
        state = self._tasks[task]
        if description is not None and description != state["description"]:
            self._end(task)
            state["description"] = description
            self._start(task)
        if total is not None:
            state["total"] = total
        if completed is not None:
            state["completed"] = completed
        if advance:
            self.advance(task, advance)

    def advance(self, task: int, advance: float = 1) -> None:
        state = self._tasks[task]
        state["completed"] += advance
        if state["total"] and state["completed"] >= state["total"]:
            self._end(task)

    def remove_task(self, task: int) -> None:
        self._end(task)

    def close(self, outcome: str = "done in") -> None:
        for task in self._tasks:
            self._end(task, outcome)

    def _start(self, task: int) -> None:
        self._tasks[task]["started"] = _Step(self, self._tasks[task]["description"])

    def _end(self, task: int, outcome: str = "done in") -> None:
        state = self._tasks[task]
        if state["started"] is not None:
            state["started"].end(outcome)
            state["started"] = None


def announce_after() -> float:
    """Seconds a step runs before its log lines are printed: EDGEKIT_PROGRESS_AFTER, default 1.
    Shorter steps stay silent (a log full of "done in 0.0 s" hides the slow ones); 0 shows all."""
    try:
        return max(0.0, float(os.environ.get("EDGEKIT_PROGRESS_AFTER", "1")))
    except ValueError:
        return 1.0


class _Step:
    """One step's log lines: "STEP started" once it has run for announce_after() seconds, then
    "STEP done in N s" (or "failed after"). A step that is interrupted always gets both lines,
    so a log shows where Ctrl-C or SIGTERM found the run; a short step that fails leaves the
    error line alone."""

    def __init__(self, plain: PlainProgress, description: str):
        self.plain, self.description = plain, description
        self.started = time.perf_counter()
        self.shown = self.ended = False
        self._lock = threading.Lock()
        self._timer = None
        delay = announce_after()
        if delay == 0:
            self._show()
        else:
            self._timer = threading.Timer(delay, self._show)
            self._timer.daemon = True
            self._timer.start()

    def _show(self) -> None:
        with self._lock:
            if not self.shown and not self.ended:
                self.shown = True
                self.plain.line(f"{self.description} started")

    def end(self, outcome: str = "done in") -> None:
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            if self.ended:
                return
            self.ended = True
            if not self.shown and outcome not in ("stopped after",):
                return
            if not self.shown:
                self.plain.line(f"{self.description} started")
            self.plain.line(f"{self.description} {outcome} {time.perf_counter() - self.started:.1f} s")


_PLAIN: list[PlainProgress] = []   # the log-line reporter of the command running now, if any


@contextmanager
def _steps_to(plain: PlainProgress):
    _PLAIN.append(plain)
    try:
        yield
    finally:
        _PLAIN.remove(plain)


@contextmanager
def step(description: str):
    """Mark a long step inside a library call (onnx2tf, NNCF, the Edge TPU compiler): in logs it
    gets its start and end lines with the duration (once it has run announce_after() seconds, or
    when it fails); on a terminal the command's bar shows progress."""
    plain = _PLAIN[-1] if _PLAIN else None
    if plain is None:
        yield
        return
    announced = _Step(plain, description)
    outcome = "failed after"
    try:
        yield
        outcome = "done in"
    except KeyboardInterrupt:   # Ctrl-C, and SIGTERM/SIGHUP (edgekit.interrupt.Interrupted)
        outcome = "stopped after"
        raise
    finally:
        announced.end(outcome)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def table(title: str | None, columns: list[str], rows: list[list[Any]], wrap: tuple[str, ...] = ("notes",)):
    """Cells stay on one line (names, labels, numbers) except in the free-text `wrap` columns."""
    from rich.table import Table

    result = Table(title=title, title_justify="left")
    for column in columns:
        result.add_column(column, overflow="fold", no_wrap=column not in wrap)
    for row in rows:
        result.add_row(*["" if cell is None else _cell(str(cell)) for cell in row])
    return result


def _cell(text: str) -> str:
    """Our own markup always closes its tags ("[green]ok[/]"); any other text is shown as it is,
    so "pip install 'edgekit-vision[media]'" keeps its "[media]"."""
    from rich.markup import escape

    return text if "[/" in text else escape(text)


def warning(message: str) -> None:
    """`warning: MESSAGE` on stderr (yellow on a terminal), the message shown as it is."""
    from rich.markup import escape

    console(stderr=True).print(f"[yellow]warning:[/] {escape(message)}")


def human_size(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


def fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)
