"""Shared by the scripts in benchmarks/: host facts (a re-export of `edgekit.bench.sysinfo`, where
the logic lives, so `edgekit bench` and these scripts record the same facts) and the results index.

    from hostinfo import collect          # benchmarks/ is on sys.path when a script there runs
    info = collect(extra_packages=["onnx2tf"])
"""
from __future__ import annotations

from edgekit.bench.sysinfo import (ENV_VARS, PACKAGES, collect, contention, core_count, cpu_flags,  # noqa: F401
                                   cpu_name, cpu_snapshot, cpu_vendor, describe, loadavg, versions)

from pathlib import Path

RESULTS_HEADER = ("# Benchmark results\n\nNewest first. Each entry links the full table (.md) and the raw numbers "
                  "(.json, with host facts). Compare ratios, not milliseconds, across entries.\n\n")


def update_readme(readme: Path, entry: str) -> None:
    """Put ENTRY (a '## ...' section) at the top of the results index, newest first, atomically."""
    from edgekit.fsutil import write_atomic

    text = readme.read_text() if readme.exists() else RESULTS_HEADER
    head, marker, rest = text.partition("\n## ")
    write_atomic(readme, head.rstrip("\n") + "\n\n" + entry.rstrip("\n") + "\n\n" + (("## " + rest) if marker else ""))


if __name__ == "__main__":
    import json

    print(json.dumps(collect(), indent=2))
