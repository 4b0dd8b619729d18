"""Drive edgetpu_compiler: find it, run it with the flags users need, parse what it says.

The compiler is an x86-64 Linux binary from Coral's apt repository. On any other host,
scripts/edgetpu-compiler/edgetpu_compiler.sh runs it in Docker or Podman; point
EDGEKIT_EDGETPU_COMPILER at that script (or at any edgetpu_compiler binary).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BadInput, RuntimeFailure
from ..fsutil import publish, staging_dir
from ..resources import compiler_wrapper
from ..ui import step
from ..tflite_model import read_tflite
from .analyze import is_compiled
from .logparse import merge, parse_log, parse_output
from .report import EdgeTPUReport

ENV_VAR = "EDGEKIT_EDGETPU_COMPILER"
RUNTIME_VERSIONS = range(10, 17)          # -m values compilers 14-16 accept
DEFAULT_TIMEOUT = 180                      # seconds, the compiler's own default
HOW_TO_GET = ("install Coral's apt package edgetpu-compiler (x86-64 Linux only), or on any host with Docker or "
              f"Podman set {ENV_VAR}={compiler_wrapper()}")


def find_compiler() -> str | None:
    """The compiler to run: $EDGEKIT_EDGETPU_COMPILER, else edgetpu_compiler on PATH."""
    configured = os.environ.get(ENV_VAR)
    if configured:
        path = shutil.which(configured) or (configured if os.access(configured, os.X_OK) else None)
        if path is None:
            raise BadInput(f"{ENV_VAR}={configured} is not an executable file",
                           f"point it at edgetpu_compiler or {compiler_wrapper()}")
        return path
    return shutil.which("edgetpu_compiler")


def require_compiler() -> str:
    path = find_compiler()
    if path is None:
        raise BadInput("edgetpu_compiler was not found", HOW_TO_GET)
    return path


def compiler_version(executable: str) -> str | None:
    """'16.0.384591198' from `edgetpu_compiler --version`, or None if it does not say."""
    try:
        done = subprocess.run([executable, "--version"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"version\s+(\d[\w.]*)", done.stdout + done.stderr)
    return match.group(1) if match else None


@dataclass
class CompiledModel:
    source: str
    output: str | None            # the `_edgetpu.tflite` file
    log: str | None               # the compiler's operation log
    report: EdgeTPUReport


@dataclass
class CompileResult:
    compiler: str
    version: str | None
    min_runtime_version: int | None
    command: list[str]
    models: list[CompiledModel] = field(default_factory=list)
    stdout: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_command(executable: str, version: str | None, models: list[str], out_dir: str, *,
                  min_runtime: int | None = None, show_ops: bool = True, intermediate: list[str] | None = None,
                  segments: int | None = None, timeout: int = DEFAULT_TIMEOUT) -> list[str]:
    """The compiler's command line; refuses option combinations it would reject."""
    if not models:
        raise BadInput("no model to compile", "pass one or more .tflite files")
    if min_runtime is not None and min_runtime not in RUNTIME_VERSIONS:
        raise BadInput(f"--min-runtime {min_runtime} is not a runtime version the compiler knows",
                       f"choose {RUNTIME_VERSIONS.start}..{RUNTIME_VERSIONS.stop - 1}")
    if segments is not None and (segments < 2 or len(models) > 1):
        raise BadInput(f"--segments {segments} needs a single model and at least 2 segments",
                       "co-compile several models, or pipeline one model over N >= 2 Edge TPUs")
    if intermediate and len(models) > 1:
        raise BadInput("-i (intermediate tensors) applies to a single model", "compile that model alone")
    command = [executable, "-o", out_dir]
    if show_ops:
        command.append("-s")
    if min_runtime is not None:
        command += ["-m", str(min_runtime)]
    if intermediate:
        command += ["-i", ",".join(intermediate)]
    if segments:
        command += ["-n", str(segments)]
    if version and int(version.split(".")[0]) >= 16:  # older compilers have no timeout flag
        command += ["--timeout_sec", str(timeout)]
    return command + models


def run_compiler(models: list[Path], workdir: Path, *, executable: str | None = None, timeout: int = DEFAULT_TIMEOUT,
                 **flags) -> CompileResult:
    """Compile MODELS (together: co-compilation shares the parameter cache) into WORKDIR/out."""
    executable = executable or require_compiler()
    paths = [Path(m) for m in models]
    names = [p.name for p in paths]
    if len(set(names)) != len(names):
        raise BadInput("two models share a file name", "rename one; the compiler names outputs after inputs")
    for path in paths:
        if is_compiled(read_tflite(path)):   # also bounds-checks the file before the native compiler sees it
            raise BadInput(f"{path} is already compiled for the Edge TPU", "compile the uncompiled int8 model")
    version = compiler_version(executable)
    inputs, out = workdir / "in", workdir / "out"
    inputs.mkdir(parents=True, exist_ok=True)
    out.mkdir(exist_ok=True)
    for path in paths:
        shutil.copyfile(path, inputs / path.name)
    # Relative paths: the container wrapper mounts the working directory only.
    command = build_command(executable, version, [f"in/{n}" for n in names], "out", timeout=timeout, **flags)
    try:
        with step(f"edgetpu_compiler {', '.join(names)}"):
            done = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=timeout + 60)
    except subprocess.TimeoutExpired:
        raise RuntimeFailure(f"edgetpu_compiler did not finish within {timeout} s",
                             "raise --timeout, or split the model with --segments") from None
    except OSError as exc:
        raise BadInput(f"cannot run {executable}: {exc.strerror or exc}", HOW_TO_GET) from None
    text = done.stdout + ("\n" + done.stderr if done.stderr else "")
    reports = parse_output(text)
    failed = next((r for r in reports if r.error), None)
    if done.returncode != 0 or failed:
        problem = failed.error if failed else (text.strip().splitlines() or ["no output"])[-1]
        message = f"edgetpu_compiler failed on {', '.join(names)}: {problem}"
        if "quantized" in problem:  # a float model: the user's input, not the compiler, is at fault
            raise BadInput(message, "convert to full-integer int8 first: edgekit convert MODEL --to edgetpu --calib IMAGES")
        raise RuntimeFailure(message, "see `edgekit edgetpu check` for the offline diagnosis")
    result = CompileResult(executable, version or reports[0].compiler_version, flags.get("min_runtime"), command,
                           stdout=text)
    for report in reports:
        output = out / Path(report.output_model or "").name if report.output_model else None
        log = output.with_suffix(".log") if output else None
        log_report = parse_log(log.read_text(errors="replace")) if log and log.is_file() else None
        merged = merge(report, log_report)
        merged.min_runtime_version = flags.get("min_runtime")
        source = next((str(p) for p in paths if p.stem in report.model), report.model)
        result.models.append(CompiledModel(source, str(output) if output and output.is_file() else None,
                                           str(log) if log and log.is_file() else None, merged))
    return result


def compile_models(models: list[Path], out_dir: Path, **options) -> CompileResult:
    """run_compiler in a staging folder, then publish `*_edgetpu.tflite` and logs into OUT_DIR."""
    out_dir = Path(out_dir)
    with staging_dir(out_dir) as stage:
        result = run_compiler(models, stage, **options)
        staged = [Path(p) for m in result.models for p in (m.log, m.output) if p]
        published = {str(s): str(d) for s, d in zip(staged, publish(staged, out_dir))}
    for model in result.models:
        model.output = published.get(model.output or "", model.output)
        model.log = published.get(model.log or "", model.log)
    return result
