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
    # tables stay readable in CI logs and pipes, where rich would otherwise assume 80 columns;
    # COLUMNS, when set, is the width asked for
    # soft_wrap on stderr: a long warning or error stays one line for log readers and tests
    width = None if stream.isatty() else _columns() or 160
    return Console(file=stream, highlight=False, width=width, soft_wrap=stderr)


def _columns() -> int | None:
    value = os.environ.get("COLUMNS", "")
    return int(value) if value.isdigit() and int(value) > 0 else None


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


WRAP_MIN = 8  # narrowest a free-text column gets before optional columns are dropped


def table(title: str | None, columns: list[str], rows: list[list[Any]], wrap: tuple[str, ...] = ("notes",),
          optional: tuple[str, ...] = (), caption: str | None = None, caption_column: str | None = None):
    """A rich table that fits the console it is printed on.

    Cells stay whole on one line (names, labels, numbers): those columns are never narrower than
    their longest cell (headers wrap between words instead). Only the free-text `wrap` columns
    wrap their cells, between words while the width allows. When the table is still too wide,
    the `optional` columns are dropped, in the order given, and the caption names them (--json
    keeps every field). CAPTION, printed under the table, explains a column: CAPTION_COLUMN,
    without which (dropped at this width) it is left out."""
    return FitTable(title, columns, rows, wrap, optional, caption, caption_column)


class FitTable:
    """A table laid out at print time, for the width it is printed at."""

    def __init__(self, title: str | None, columns: list[str], rows: list[list[Any]], wrap: tuple[str, ...],
                 optional: tuple[str, ...], caption: str | None = None, caption_column: str | None = None):
        from rich.text import Text

        self.title, self.columns, self.wrap, self.optional = title, list(columns), wrap, optional
        self.caption, self.caption_column = caption, caption_column
        self.rows = [["" if cell is None else _cell(str(cell)) for cell in row] for row in rows]
        cells = [max([0, *(Text.from_markup(row[i]).cell_len for row in self.rows)]) for i in range(len(columns))]
        # whole cells on one line, and the whole header if there is room (else one word a line)
        self.natural = [max(len(c), cells[i]) for i, c in enumerate(columns)]
        self.header_word = [max(len(w) for w in c.split() or [""]) for c in columns]
        # a free-text column narrower than its longest word breaks that word ("savedmod/el")
        self.cell_word = [max([0, *(len(w) for row in self.rows for w in Text.from_markup(row[i]).plain.split())])
                          for i in range(len(columns))]
        self.narrow = [max(cells[i], self.header_word[i]) if c not in wrap else self.natural[i]
                       for i, c in enumerate(columns)]

    def fitted(self, max_width: int):
        """The table for MAX_WIDTH columns: free text wrapped, then headers wrapped between
        words, then optional columns dropped, until the rest fit."""
        dropped: list[str] = []
        while True:
            keep = [i for i, column in enumerate(self.columns) if column not in dropped]
            # free text wraps before headers do (a word a line), and both before columns go
            for fixed, squeeze in ((self.natural, False), (self.natural, True), (self.narrow, False),
                                   (self.narrow, True)):
                widths = self._widths(keep, fixed, max_width, squeeze)
                if widths is not None:
                    return self._build(keep, fixed, widths, dropped)
            if len(dropped) == len(self.optional):   # still too wide: free text as narrow as it takes
                return self._build(keep, self.narrow, self._widths(keep, self.narrow, max_width, True, 1) or {},
                                   dropped)
            dropped.append(self.optional[len(dropped)])

    def _widths(self, keep: list[int], fixed_widths: list[int], max_width: int, squeeze: bool,
                floor: int = WRAP_MIN) -> dict[int, int] | None:
        """Widths of the wrap columns that make the table fit ({} when it fits as is), or None.
        Without SQUEEZE, the wrap columns keep their full width too."""
        borders = len(keep) + 1 + 2 * len(keep)            # rules between columns, one space of padding each side
        fixed = sum(fixed_widths[i] for i in keep if self.columns[i] not in self.wrap)
        flexible = [i for i in keep if self.columns[i] in self.wrap]
        room = max_width - borders - fixed
        if room >= sum(self.natural[i] for i in flexible):
            return {}
        if not squeeze:
            return None
        floors = [min(self.natural[i], max(floor, self.header_word[i], self.cell_word[i] if floor > 1 else 0))
                  for i in flexible]
        if room < sum(floors):
            return None
        # share the room out in proportion to what each column would like, never below its floor
        widths = dict(zip(flexible, floors))
        spare = room - sum(floors)
        wants = {i: self.natural[i] - widths[i] for i in flexible}
        while spare > 0 and any(wants.values()):
            total = sum(wants.values())
            for i in flexible:
                share = min(wants[i], max(1, spare * wants[i] // total)) if wants[i] else 0
                share = min(share, spare)
                widths[i] += share
                wants[i] -= share
                spare -= share
        return widths

    def _build(self, keep: list[int], fixed: list[int], widths: dict[int, int], dropped: list[str]):
        from rich.table import Table
        from rich.text import Text

        hidden = f"not shown at this width: {', '.join(dropped)}" if dropped else None
        explains = self.caption if self.caption_column not in dropped else None
        caption = "\n".join(note for note in (explains, hidden) if note) or None
        result = Table(title=self.title, title_justify="left", caption=caption, caption_justify="left")
        for i in keep:
            column = self.columns[i]
            header = Text(column, no_wrap=False)     # "top-1 clear (all)" may take two lines
            if column in self.wrap:
                result.add_column(header, overflow="fold", width=widths.get(i))
            else:
                result.add_column(header, no_wrap=True, overflow="fold", width=fixed[i])
        for row in self.rows:
            result.add_row(*[row[i] for i in keep])
        return result

    def __rich_console__(self, console, options):
        yield self.fitted(options.max_width)

    def __rich_measure__(self, console, options):
        from rich.measure import Measurement

        return Measurement.get(console, options, self.fitted(options.max_width))


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
