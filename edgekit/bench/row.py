"""One `edgekit bench` row in its own process, so the row's peak memory is its own.

    python -m edgekit.bench.row FD     (the job as JSON on stdin: artifact, options, threads)

Writes `tick N` lines while inferences complete and finally `record {...}` (a BenchRecord as
JSON) to file descriptor FD, a pipe from `edgekit.bench.harness.bench_in_child`. stdout and
stderr stay the parent's, where runtimes print their own messages.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    from .harness import BenchOptions, bench_artifact

    job = json.loads(sys.stdin.read())
    with os.fdopen(int(argv[0]), "w", encoding="utf-8", buffering=1) as reports:
        def tick(count: int = 1) -> None:
            reports.write(f"tick {count}\n")

        record = bench_artifact(Path(job["artifact"]), BenchOptions(**job["options"]), job["threads"], tick)
        reports.write("record " + json.dumps(record.to_dict()) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
