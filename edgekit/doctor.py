"""`edgekit doctor`: what this host can convert, run and compile, with versions."""
from __future__ import annotations

import os
import platform
import shutil
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

from . import __version__, deps
from .routes import matrix
from .runtime.base import BACKENDS
from .targets.base import TARGETS


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@dataclass
class PackageStatus:
    name: str                 # distribution name
    version: str | None       # None: not installed
    extra: str                # the pip extra that brings it


@dataclass
class TargetStatus:
    name: str
    precisions: list[str]
    suffix: str
    unavailable: str | None   # why it cannot convert here, or None
    limited: str | None = None   # what it converts but cannot finish here (Target.limits_here)

    @property
    def status(self) -> str:
        """'ready', 'limited' or 'unavailable'."""
        return "unavailable" if self.unavailable else "limited" if self.limited else "ready"


@dataclass
class RuntimeStatus:
    name: str
    unavailable: str | None   # why it cannot run here, or None
    devices: list[str] = field(default_factory=list)   # what --device takes here (when available)


@dataclass
class DoctorReport:
    """What this host can convert, run and compile (`edgekit doctor --json` prints `to_dict`)."""

    edgekit: str
    host: dict[str, Any]                     # platform, machine, python, cpu, cores, executable
    packages: list[PackageStatus]
    targets: list[TargetStatus]
    runtimes: list[RuntimeStatus]
    tools: dict[str, str]                    # tool -> path, or how to get it
    routes: dict[str, dict[str, str]]        # source form -> target -> route or refusal
    edgetpu: dict[str, Any]                  # compiler and libedgetpu, with notes when absent

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for target, status in zip(data["targets"], self.targets):
            target["status"] = status.status
        for runtime in data["runtimes"]:
            if not runtime["devices"]:
                del runtime["devices"]
        return data


def diagnose() -> DoctorReport:
    targets = TARGETS.values()
    compiler = os.environ.get("EDGEKIT_EDGETPU_COMPILER") or shutil.which("edgetpu_compiler")
    runtimes = []
    for name, runner in BACKENDS.items():
        reason = runner.unavailable_reason()
        runtimes.append(RuntimeStatus(name, reason, [] if reason else runner.available_devices()))
    return DoctorReport(
        edgekit=__version__,
        host={"platform": platform.platform(), "machine": platform.machine(), "python": platform.python_version(),
              "cpu": cpu_name(), "cores": os.cpu_count(), "executable": sys.executable},
        packages=[PackageStatus(dist, deps.version(dist), extra) for dist, extra in sorted(set(deps.OPTIONAL.values()))],
        targets=[_target_status(t) for t in targets],
        runtimes=runtimes,
        tools={"edgetpu_compiler": compiler or "not found (x86-64 Linux only; see scripts/ for a container)",
               "libedgetpu": _find_libedgetpu() or "not found (Edge TPU runtime: libedgetpu1-std)"},
        routes=matrix(targets),
        edgetpu=_edgetpu(),
    )


def _target_status(target) -> TargetStatus:
    unavailable = target.unavailable_reason()
    return TargetStatus(target.name, list(target.precisions), target.suffix, unavailable,
                        None if unavailable else target.limits_here())


def _edgetpu() -> dict[str, Any]:
    """Compiler and runtime library for the Coral Edge TPU, with how to get each when absent."""
    from .edgetpu.compiler import HOW_TO_GET, find_compiler
    from .errors import EdgekitError
    from .runtime import edgetpu as runtime

    try:
        compiler, note = find_compiler(), None
    except EdgekitError as exc:
        compiler, note = None, exc.one_line()
    library = runtime.library_path()
    version = None
    if library:
        try:
            version = runtime.runtime_version(runtime.load_library())
        except (EdgekitError, AttributeError, OSError):
            version = None
    return {"compiler": compiler, "compiler_note": note or (None if compiler else f"not installed: {HOW_TO_GET}"),
            "libedgetpu": library, "libedgetpu_runtime_version": version,
            "libedgetpu_note": None if library else f"{runtime.LIBRARY} not found: install {runtime.PROVIDER}"}


def _find_libedgetpu() -> str | None:
    for folder in ("/usr/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/local/lib"):
        candidate = os.path.join(folder, "libedgetpu.so.1")
        if os.path.exists(candidate):
            return candidate
    return None
