"""Terminal rendering shared by commands: rich tables, progress bars, JSON."""
from __future__ import annotations

import io
import json
import os
import sys
import tempfile
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
    """A rich progress bar on stderr, or None when quiet (--json, or not a terminal)."""
    if not enabled or not _own_stream(True).isatty():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console(stderr=True), transient=True) as progress:
        yield progress


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def table(title: str | None, columns: list[str], rows: list[list[Any]], wrap: tuple[str, ...] = ("notes",)):
    """Cells stay on one line (names, labels, numbers) except in the free-text `wrap` columns."""
    from rich.table import Table

    result = Table(title=title, title_justify="left")
    for column in columns:
        result.add_column(column, overflow="fold", no_wrap=column not in wrap)
    for row in rows:
        result.add_row(*["" if cell is None else str(cell) for cell in row])
    return result


def human_size(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


def fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)
