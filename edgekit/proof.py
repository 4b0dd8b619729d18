"""`edgekit verify ARTIFACT`: rerun an artifact's reference pack on this host's runtime.

The pack (edgekit/reference.py) holds K real inputs as the artifact's runtime is fed them and
the source framework's outputs on them. Here they run on whatever runtime this host has for the
artifact (LiteRT anywhere, the Edge TPU delegate for a compiled model on a host with a Coral,
OpenVINO on CPU/GPU/NPU, ONNX Runtime, Core ML on macOS) and are compared and gated with
edgekit.verify's own functions, the ones `edgekit convert` uses (per output, per channel group in
the source's layout, the int8 step), so the report reads the same.

What is checked, in order: the manifest beside the artifact; the pack's sha256 against the
manifest (a pack from another model or an altered one is refused: BadInput); that this host
has a runtime for the artifact (one line when not: BadInput); then the artifact's own sha256
against the manifest (a damaged or replaced file with the same name FAILS the check) and the
pack's parity gates.
"""
from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import parity
from .errors import BadInput, EdgekitError, ModelFormatError, NoRuntimeHere
from .formats import Format, sniff
from .manifest import VerifyReport, artifact_digest, manifest_path, read_manifest
from .reference import SUFFIX, load_reference
from .runtime.base import BACKENDS, Runner, open_runner
from .verify import gate, match_outputs


@dataclass
class ArtifactCheck:
    """One artifact's pack rerun here: its parity report and what it was checked against."""

    artifact: str                   # the path given
    format: str                     # formats registry name: tflite, openvino, onnx, coreml
    backend: str                    # the runtime backend that ran it (BACKENDS name)
    device: str | None              # the backend's device (CPU, GPU, NPU, usb:0, cpuAndNE, ...)
    host: str                       # this host: system and machine, e.g. "Linux x86_64"
    reference: str                  # path of the reference pack
    reference_sha256: str
    artifact_sha256: str            # of the artifact's bytes now
    artifact_intact: bool           # equal to the manifest's `artifact_sha256`
    verify: VerifyReport            # status pass | fail, per-output parity, gate, notes
    at_conversion: dict[str, Any] | None = None   # the manifest's verify summary (status, cosine, runtime)
    seconds: float = 0.0            # wall clock of the run, loading included

    @classmethod
    def not_run_here(cls, artifact, reason: NoRuntimeHere) -> ArtifactCheck:
        """ARTIFACT, which this host has no runtime for: status "skipped", the reason as its note."""
        path = Path(artifact)
        fmt = sniff(path)
        return cls(artifact=str(path), format=fmt.name, backend=default_backend(path, fmt) or "—", device=None,
                   host=host_name(), reference=str(path) + SUFFIX, reference_sha256="",
                   artifact_sha256=artifact_digest(path), artifact_intact=True,
                   verify=VerifyReport(status="skipped", notes=[reason.one_line()]))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["verify"] = {**self.verify.summary(), "gate": self.verify.gate,
                          "outputs": [asdict(o) for o in self.verify.outputs]}
        data["verify"].pop("steps", None)
        data["verify"].pop("cross_checks", None)
        return data


def default_backend(path: Path, fmt: Format) -> str | None:
    """The backend that runs PATH here by default: the format's own, except that a TFLite file
    compiled for the Edge TPU (an edgetpu-custom-op in the file itself) needs the delegate. A file
    that no longer parses gets the format's own backend, whose failure on it is then reported
    with the sha256 check (a damaged artifact fails, exit 1; it is not bad input)."""
    if fmt.name == "tflite":
        from .edgetpu.analyze import is_compiled
        from .tflite_model import read_tflite

        try:
            compiled = is_compiled(read_tflite(path))
        except ModelFormatError:
            compiled = False
        if compiled:
            return "edgetpu"
    return fmt.backend


def host_runner(path: Path, fmt: Format, backend: str | None, device: str | None) -> tuple[type[Runner], str | None]:
    """The Runner class and device that run PATH on this host. Raises NoRuntimeHere (a BadInput)
    in one line when this host has no runtime for it (Core ML on Linux: "needs macOS"), BadInput
    when the backend or device does not fit it."""
    name = backend or default_backend(path, fmt)
    if name is None:
        raise BadInput(f"{path.name} is a {fmt.name} model, which no runtime backend runs",
                       "verify the artifacts `edgekit convert` wrote")
    runner_cls = BACKENDS.get(name)
    if fmt.name not in runner_cls.formats:
        raise BadInput(f"backend '{name}' cannot run {fmt.name} models like {path.name}",
                       f"it runs: {', '.join(runner_cls.formats)}")
    reason = runner_cls.unavailable_reason()
    if reason:
        raise NoRuntimeHere(f"this host ({host_name()}) cannot run {path.name}: {reason}",
                       f"run `edgekit verify` where its runtime is; copy the artifact with its "
                       f"{manifest_path(Path(path.name)).name} and {path.name}{SUFFIX}")
    return runner_cls, runner_cls.check_device(device)


def host_name() -> str:
    return f"{platform.system()} {platform.machine()}"


def verify_artifact(artifact, backend: str | None = None, device: str | None = None,
                    reference: Path | None = None) -> ArtifactCheck:
    """Rerun ARTIFACT's reference pack (REFERENCE, default: beside it) with BACKEND (a BACKENDS
    name; default: the artifact's own runtime) on DEVICE, and gate it as `edgekit convert` does.

    Returns an ArtifactCheck whose `verify.status` is "pass" or "fail": a gate missed, the runtime
    failed on the artifact, or the artifact is not the file its manifest describes (a damaged or
    replaced artifact with the same name). Raises BadInput (one line) for a missing artifact or
    manifest, a pack that is missing, altered or from another model, or no runtime for it here.
    """
    started = time.perf_counter()
    path = Path(artifact)
    if not path.exists():
        raise ModelFormatError(f"{path}: no such artifact", "pass a model `edgekit convert` wrote")
    fmt = sniff(path)
    manifest = read_manifest(path, check=False)
    if manifest is None:
        raise BadInput(f"{path.name} has no manifest beside it ({manifest_path(path).name})",
                       "verify needs the .edgekit.json and .edgekit.ref.npz that `edgekit convert` wrote beside "
                       "the artifact: copy them along")
    pack = load_reference(path, manifest, reference)
    runner_cls, device = host_runner(path, fmt, backend, device)
    found = artifact_digest(path)
    intact = not manifest.artifact_sha256 or found == manifest.artifact_sha256
    classification = manifest.task == "classification"
    report = VerifyReport(status="pass", runtime=runner_cls.backend, samples=pack.samples, data=pack.meta.get("data"))
    names = list(pack.meta.get("outputs") or [t.name for t in manifest.outputs])
    try:
        with open_runner(path, runner_cls.backend, device) as runner:
            inputs = [t.name for t in runner.inputs]
            batches = [runner.infer(pack.feeds(k, inputs)) for k in range(pack.samples)]
    except EdgekitError as exc:
        report.status = "fail"
        report.notes.append(f"{runner_cls.backend} could not run it: {exc.one_line()}")
    else:
        got = parity.stack_samples(batches)
        steps = [t.quantization.scale[0] if t.quantization is not None and len(t.quantization.scale) == 1 else None
                 for t in manifest.outputs] if len(manifest.outputs) == len(got) else None
        steps = parity.int8_steps(manifest.precision, steps, got)
        report.outputs, problem = match_outputs(pack.expected, got, names, classification,
                                                parity.pack_layout(pack.meta), steps)
        if problem:
            report.status = "fail"
            report.notes.append(problem)
        else:
            gate(report, manifest.precision, classification)
    if not pack.meta.get("real", True):
        report.notes.append("synthetic inputs: accuracy unmeasured")
    if not intact:
        report.status = "fail"
        report.notes.insert(0, f"not the artifact that was converted: sha256 {found[:12]}, its "
                               f"manifest records {manifest.artifact_sha256[:12]} (changed or damaged since)")
    return ArtifactCheck(artifact=str(path), format=fmt.name, backend=runner_cls.backend, device=device,
                         host=host_name(), reference=str(pack.path), reference_sha256=pack.sha256,
                         artifact_sha256=found, artifact_intact=intact, verify=report,
                         at_conversion=manifest.verify.summary() if manifest.verify else None,
                         seconds=round(time.perf_counter() - started, 3))


@dataclass
class VerifyResult:
    """`edgekit verify` over several artifacts: one ArtifactCheck each, in the order given."""

    checks: list[ArtifactCheck] = field(default_factory=list)

    @property
    def failed(self) -> list[ArtifactCheck]:
        return [c for c in self.checks if c.verify.status not in ("pass", "skipped")]

    @property
    def skipped(self) -> list[ArtifactCheck]:
        """Artifacts this host has no runtime for (reported, not verified)."""
        return [c for c in self.checks if c.verify.status == "skipped"]

    def to_dict(self) -> dict[str, Any]:
        return {"host": host_name(), "artifacts": [c.to_dict() for c in self.checks],
                "passed": len(self.checks) - len(self.failed) - len(self.skipped), "failed": len(self.failed),
                "skipped": len(self.skipped)}


def verify_artifacts(artifacts: list, backend: str | None = None, device: str | None = None,
                     reference: Path | None = None) -> VerifyResult:
    """`verify_artifact` on each of ARTIFACTS, in order. An artifact this host has no runtime for
    is reported "skipped" with its reason and the others still run (`out/*` on a Linux host holds
    .mlpackages too); when none could run, that NoRuntimeHere is raised (exit 2). Other bad input
    (BadInput: a missing manifest, a foreign pack) stops the run there. REFERENCE applies only to
    a single artifact."""
    if reference is not None and len(artifacts) != 1:
        raise BadInput(f"--reference names one pack, and {len(artifacts)} artifacts were given",
                       "verify one artifact with --reference, or drop it (each pack lies beside its artifact)")
    if not artifacts:
        raise BadInput("no artifact to verify", "name the artifacts, or a folder `edgekit convert` wrote them to")
    checks, unrunnable = [], []
    for artifact in artifacts:
        try:
            checks.append(verify_artifact(artifact, backend, device, reference))
        except NoRuntimeHere as exc:
            unrunnable.append(exc)
            checks.append(ArtifactCheck.not_run_here(artifact, exc))
    if len(unrunnable) == len(checks):
        raise unrunnable[0]
    return VerifyResult(checks)
