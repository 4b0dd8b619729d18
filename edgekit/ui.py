"""Terminal rendering shared by commands: rich tables, progress bars, JSON."""
from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import Any


def console(stderr: bool = False):
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # tables stay readable in CI logs and pipes, where rich would otherwise assume 80 columns
    return Console(stderr=stderr, highlight=False, width=None if stream.isatty() else 160)


@contextmanager
def progress_bar(enabled: bool):
    """A rich progress bar on stderr, or None when quiet (--json, or not a terminal)."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console(stderr=True), transient=True) as progress:
        yield progress


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def table(title: str | None, columns: list[str], rows: list[list[Any]]):
    from rich.table import Table

    result = Table(title=title, title_justify="left")
    for column in columns:
        result.add_column(column, overflow="fold")
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
