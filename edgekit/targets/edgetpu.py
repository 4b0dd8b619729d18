"""Coral Edge TPU target: the full-integer int8 TFLite (the tflite target's int8 path), the offline
compatibility report, and the compiled `_edgetpu.tflite` when edgetpu_compiler is available.

The verified artifact is the uncompiled int8 model (it runs on any LiteRT CPU, so parity is
measured here); the compiled model and the compiler's log are published beside it, and the
manifest's `edgetpu` record (manifest.EdgeTPUInfo) holds the prediction, the compiler version
and the minimum Edge TPU runtime version.
"""
from __future__ import annotations

from pathlib import Path

from ..bridges.base import ConvertContext
from ..errors import EdgekitError
from ..edgetpu.analyze import DEFAULT_COMPILER, DEFAULT_MIN_RUNTIME, analyze
from ..edgetpu.compiler import HOW_TO_GET, compiler_version, find_compiler, run_compiler
from ..manifest import EdgeTPUCompiled, EdgeTPUInfo
from ..sources.base import SourceModel
from .base import TARGETS, TargetOutput, register
from .tflite import TFLiteTarget


@register
class EdgeTPUTarget(TFLiteTarget):
    name = "edgetpu"
    format = "tflite"
    precisions = ("int8",)
    runtime = "litert"   # numerics of the uncompiled int8 model; the compiled one needs the device

    def limits_here(self) -> str | None:
        try:
            if find_compiler():
                return None
        except EdgekitError as exc:   # EDGEKIT_EDGETPU_COMPILER set, but not to an executable
            return f"int8 + offline report; compile needs edgetpu_compiler ({exc.one_line()})"
        return "int8 + offline report; compile needs edgetpu_compiler"

    def artifact_name(self, stem: str, precision: str) -> str:
        # distinct from the tflite target's model_int8.tflite, so both can share an output folder
        return f"{stem}_{precision}_edgetpu_ready.tflite"

    def convert(self, model: SourceModel, precision: str, artifact: Path, ctx: ConvertContext) -> TargetOutput:
        self.check_precision(precision)
        output = TARGETS.get("tflite").convert(model, precision, artifact, ctx)
        note = None
        try:
            compiler = find_compiler()
        except EdgekitError as exc:  # a misconfigured EDGEKIT_EDGETPU_COMPILER: say so, keep the int8 model
            compiler, note = None, exc.one_line()
        # predict for the compiler the user has (op-version rules differ), else for the last release
        version = compiler_version(compiler) if compiler else None
        major = int(version.split(".")[0]) if version and version.split(".")[0].isdigit() else DEFAULT_COMPILER
        info = EdgeTPUInfo(predicted=analyze(artifact, compiler=major), compiler_note=note)
        if compiler is None:
            info.compiler_note = info.compiler_note or (f"{artifact.name} was not compiled: edgetpu_compiler is not "
                                                        f"installed here; {HOW_TO_GET}")
        else:
            try:
                output.files = [*self._compile(compiler, artifact, info), *output.files]
            except EdgekitError as exc:  # keep the verified int8 model; say why it is not compiled
                info.compiler_note = f"{artifact.name} was not compiled: {exc.one_line()}"
        output.edgetpu = info
        if info.compiler_note:  # convert() shows notes as warnings: the one line on how to get the compiler
            output.notes.append(info.compiler_note)
        return output

    def _compile(self, compiler: str, artifact: Path, info: EdgeTPUInfo) -> list[Path]:
        """Compile beside the artifact; the output is named <stem>_int8_edgetpu.tflite."""
        workdir = artifact.parent / ".edgetpu-compile"
        source = workdir / "src" / artifact.name.replace("_edgetpu_ready", "")
        source.parent.mkdir(parents=True)
        source.write_bytes(artifact.read_bytes())
        version = compiler_version(compiler)
        # -m pins what the manifest records; compilers before 16 keep their own default (recorded as None)
        runtime = DEFAULT_MIN_RUNTIME if version and int(version.split(".")[0]) >= 16 else None
        result = run_compiler([source], workdir, executable=compiler, min_runtime=runtime)
        compiled = result.models[0]
        info.compiled = EdgeTPUCompiled(artifact=Path(compiled.output).name if compiled.output else None,
                                        compiler=Path(result.compiler).name, compiler_version=result.version,
                                        min_runtime_version=runtime, report=compiled.report)
        return [Path(p) for p in (compiled.log, compiled.output) if p]
