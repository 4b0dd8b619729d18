"""Host facts recorded beside every benchmark result, so numbers from different machines are
never compared by accident. Reads files and package metadata only: imports no framework.

    from edgekit.bench.sysinfo import collect
    info = collect(extra_packages=["onnx2tf"])

`benchmarks/hostinfo.py` re-exports this module for the scripts under benchmarks/.
"""
from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

# distributions whose versions decide the numbers of any edgekit benchmark
PACKAGES = ("edgekit", "tensorflow", "ai-edge-litert", "openvino", "nncf", "torch", "onnxruntime", "onnx",
            "coremltools", "numpy")
# environment variables that change math-library kernels or thread counts
ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
            "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OV_CPU_THREADS")


def cpu_name() -> str:
    """The marketing name of the CPU (x86 "model name"; Arm boards: the device-tree model)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model", "Hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return _read("/proc/device-tree/model") or platform.processor() or platform.machine()


def all_cpu_flags() -> set[str]:
    """Every instruction-set flag /proc/cpuinfo lists (x86 `flags`, Arm `Features`), lower case."""
    return {flag.lower() for flag in _flags_line()}


def cpu_flags() -> list[str]:
    """The SIMD extensions that decide which int8/fp32 kernels run (x86 and Arm)."""
    wanted = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16",
              "fma", "asimd", "asimddp", "i8mm", "sve", "sve2", "bf16")
    present = set(_flags_line())
    return [flag for flag in wanted if flag in present]


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip().strip("\x00") or None  # device-tree strings end in NUL
    except OSError:
        return None


def core_count() -> dict[str, int | None]:
    logical = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else logical
    physical = None
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except ImportError:
        pass
    return {"logical": logical, "usable": usable, "physical": physical}


def versions(names=PACKAGES) -> dict[str, str | None]:
    result = {}
    for name in names:
        try:
            result[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            result[name] = None
    return result


def collect(extra_packages: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    cores = core_count()
    return {
        "timestamp_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_name(),
        "cpu_flags": cpu_flags(),
        "machine": platform.machine(),
        "cores": cores["usable"],
        "cores_detail": cores,
        "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "board": _read("/proc/device-tree/model"),
        "virtualized": "hypervisor" in _flags_line(),
        "memory_gib": _memory_gib(),
        "loadavg": loadavg(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "packages": versions(tuple(PACKAGES) + tuple(extra_packages)),
        "env": {name: os.environ[name] for name in ENV_VARS if name in os.environ},
    }


def _flags_line() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):   # x86, Arm
                return line.split(":", 1)[1].split()
    except OSError:
        pass
    return []


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def cpu_snapshot() -> dict[str, float] | None:
    """Machine-wide and this process's CPU time now; two snapshots give `contention()`."""
    try:
        with open("/proc/stat") as handle:
            values = [int(v) for v in handle.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    values += [0] * (8 - len(values))
    hz = os.sysconf("SC_CLK_TCK")
    own = os.times()   # with the children it waited for: a benchmark's own tools (benchmark_app) are not "others"
    # user nice system idle iowait irq softirq steal (guest time is already inside user)
    return {"monotonic": time.monotonic(), "total": sum(values) / hz, "idle": (values[3] + values[4]) / hz,
            "steal": values[7] / hz, "own": own.user + own.system + own.children_user + own.children_system,
            "loadavg": loadavg()}


def contention(before: dict | None, after: dict | None) -> dict[str, Any] | None:
    """How busy the machine was between two snapshots, as fractions of all cores' time: this
    process (all its threads, and the children it waited for), other processes, and time the
    hypervisor stole. On a shared machine, a large `other_processes` share means the timings in
    that window are inflated."""
    if not before or not after:
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    wall = after["monotonic"] - before["monotonic"]
    capacity = max(wall * cores, 1e-9)
    busy = (after["total"] - before["total"]) - (after["idle"] - before["idle"]) - (after["steal"] - before["steal"])
    own = after["own"] - before["own"]
    return {"wall_seconds": round(wall, 2), "this_process": round(own / capacity, 3),
            "other_processes": round(max(0.0, busy - own) / capacity, 3),
            "steal": round((after["steal"] - before["steal"]) / capacity, 3),
            "loadavg_before": before["loadavg"], "loadavg_after": after["loadavg"]}


def describe(info: dict[str, Any]) -> str:
    """One line for a Markdown header or a terminal caption."""
    packages = ", ".join(f"{k} {v}" for k, v in info["packages"].items() if v)
    env = ", ".join(f"{k}={v}" for k, v in info["env"].items()) or "none"
    return (f"{info['cpu']} ({info['cores']} cores, governor {info['governor'] or 'unreadable'}), "
            f"{info['os']}, Python {info['python']}; {packages}; env: {env}")
