"""Shared by the scripts in benchmarks/: host facts (a re-export of `edgekit.bench.sysinfo`, where
the logic lives, so `edgekit bench` and these scripts record the same facts) and the results index.

    from hostinfo import collect          # benchmarks/ is on sys.path when a script there runs
    info = collect(extra_packages=["onnx2tf"])
"""
from __future__ import annotations

from edgekit.bench.sysinfo import (ENV_VARS, PACKAGES, collect, contention, core_count, cpu_flags,  # noqa: F401
                                   cpu_name, cpu_snapshot, describe, loadavg, versions)

import os
from pathlib import Path

RESULTS_HEADER = ("# Benchmark results\n\nNewest first. Each entry links the full table (.md) and the raw numbers "
                  "(.json, with host facts). Compare ratios, not milliseconds, across entries.\n\n")


def default_threads() -> int:
    """The cores this process may run on (the scripts' default thread count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def missing_modules(needs) -> str | None:
    """'needs X, Y installed ...' when edgekit or a module of NEEDS cannot be imported, else None."""
    import importlib.util

    missing = [m for m in ("edgekit", *needs) if importlib.util.find_spec(m) is None]
    return (f"needs {', '.join(missing)} installed (run from the repo root with .venv/bin/python)"
            if missing else None)


def results_paths(out_dir: Path, prefix: str, date: str) -> tuple[Path, Path]:
    """<prefix>-<date>.json and .md in OUT_DIR; a second run the same day adds the time, keeping the first."""
    from datetime import datetime, timezone

    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{prefix}-{date}"
    if (out_dir / f"{stem}.json").exists():
        stem += datetime.now(timezone.utc).strftime("-%H%M%S")
    return out_dir / f"{stem}.json", out_dir / f"{stem}.md"


def record(result: dict, json_path: Path, md_path: Path, markdown: str, entry: str) -> None:
    """Write RESULT as JSON, its MARKDOWN table, and ENTRY at the top of the results index."""
    import json

    json_path.write_text(json.dumps(result, indent=2) + "\n")
    md_path.write_text(markdown)
    update_readme(json_path.parent / "README.md", entry)


def show(result: dict, as_json: bool, title: str, columns: list[str], rows: list[list[str]], json_path: Path,
         md_path: Path) -> None:
    """Print RESULT as JSON (--json), or the host line, ROWS as a table and where they were written."""
    import json
    import sys

    if as_json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
        return
    from edgekit.ui import console, table

    out = console()
    out.print(f"[bold]Host:[/] {describe(result['host'])}")
    out.print(table(title, columns, [[c.replace("**", "") for c in row] for row in rows]))
    print(f"wrote {json_path} and {md_path}; updated {json_path.parent / 'README.md'}")


def markdown_table(columns: list[str], rows: list[list[str]]) -> str:
    """COLUMNS and ROWS as a Markdown table (a '|' inside a cell is escaped)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def update_readme(readme: Path, entry: str) -> None:
    """Put ENTRY (a '## ...' section) at the top of the results index, newest first, atomically."""
    from edgekit.fsutil import write_atomic

    text = readme.read_text() if readme.exists() else RESULTS_HEADER
    head, marker, rest = text.partition("\n## ")
    write_atomic(readme, head.rstrip("\n") + "\n\n" + entry.rstrip("\n") + "\n\n" + (("## " + rest) if marker else ""))


if __name__ == "__main__":
    import json

    print(json.dumps(collect(), indent=2))
