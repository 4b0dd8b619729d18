"""Host facts for the scripts in benchmarks/: a re-export of `edgekit.bench.sysinfo`, where the
logic lives (so `edgekit bench` and these scripts record the same facts).

    from hostinfo import collect          # benchmarks/ is on sys.path when a script there runs
    info = collect(extra_packages=["onnx2tf"])
"""
from __future__ import annotations

from edgekit.bench.sysinfo import (ENV_VARS, PACKAGES, collect, contention, core_count, cpu_flags,  # noqa: F401
                                   cpu_name, cpu_snapshot, cpu_vendor, describe, loadavg, versions)

if __name__ == "__main__":
    import json

    print(json.dumps(collect(), indent=2))
