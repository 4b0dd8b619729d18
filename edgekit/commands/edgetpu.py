"""`edgekit edgetpu`: the offline compatibility report and the compiler driver."""
from __future__ import annotations

from pathlib import Path

import click

from .common import json_option, names


@click.group()
def edgetpu():
    """Coral Edge TPU: predict what the compiler will map, and drive the compiler.

    \b
    Examples:
      edgekit edgetpu check out/model_int8_edgetpu_ready.tflite
      edgekit edgetpu compile out/model_int8_edgetpu_ready.tflite -o out/
    """


@edgetpu.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--min-runtime", type=int, default=None, help="Edge TPU runtime version to target (default 14).")
@click.option("--log", "compiler_log", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="A compiler stdout or .log for MODEL: show predicted vs actual side by side.")
@json_option
def check(model, min_runtime, compiler_log, as_json):
    """Predict, without the compiler, which ops of MODEL run on the Edge TPU and why not.

    \b
    Examples:
      edgekit edgetpu check out/model_int8_edgetpu_ready.tflite
      edgekit edgetpu check model.tflite --json | jq .split
      edgekit edgetpu check model.tflite --log model_edgetpu.log
    """
    from ..edgetpu.analyze import DEFAULT_MIN_RUNTIME, analyze
    from ..edgetpu.report import side_by_side
    from ..ui import console, print_json
    from ..views.edgetpu import render_edgetpu, render_side_by_side

    report = analyze(model, min_runtime or DEFAULT_MIN_RUNTIME)
    actual = _read_log(compiler_log) if compiler_log else None
    if as_json:
        data = {"predicted": report.to_dict()}
        if actual:
            data["compiler"] = actual.to_dict()
            data["side_by_side"] = side_by_side(report, actual)
        print_json(data)
        return
    out = console()
    render_edgetpu(report, out)
    if actual:
        render_edgetpu(actual, out)
        render_side_by_side(side_by_side(report, actual), out)


def _read_log(path: Path):
    from ..edgetpu.logparse import parse_log, parse_output

    text = path.read_text(errors="replace")
    return parse_output(text)[0] if "Input model:" in text or "Invalid model:" in text else parse_log(text)


@edgetpu.command(name="compile")
@click.argument("models", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("-o", "--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Output folder (default: beside the first model).")
@click.option("--segments", type=int, default=None, help="Split one model into N segments to pipeline over N Edge TPUs.")
@click.option("--show-ops/--no-show-ops", "-s/-S", default=True, help="Have the compiler print every op (default: on).")
@click.option("--min-runtime", type=int, default=None, help="Oldest Edge TPU runtime the output must run on (10-16).")
@click.option("-i", "--intermediate", "intermediate", default=None,
              help="Comma-separated tensor names to make outputs of the Edge TPU segment.")
@click.option("--timeout", type=int, default=180, show_default=True, help="Seconds before giving up.")
@json_option
def compile_(models, out_dir, segments, show_ops, min_runtime, intermediate, timeout, as_json):
    """Compile MODELS with edgetpu_compiler (several: co-compiled to share the parameter cache).

    \b
    Examples:
      edgekit edgetpu compile out/model_int8_edgetpu_ready.tflite
      edgekit edgetpu compile a.tflite b.tflite -o compiled/
      edgekit edgetpu compile big.tflite --segments 2 --min-runtime 14
      EDGEKIT_EDGETPU_COMPILER=scripts/edgetpu-compiler/edgetpu_compiler.sh \\
        edgekit edgetpu compile m.tflite
    """
    from ..edgetpu.analyze import analyze
    from ..edgetpu.compiler import compile_models
    from ..edgetpu.report import side_by_side
    from ..errors import EdgekitError
    from ..ui import console, print_json, progress_bar
    from ..views.edgetpu import render_edgetpu, render_side_by_side

    with progress_bar(not as_json):   # in logs: the compiler's start and end lines, with its duration
        result = compile_models(list(models), out_dir or Path(models[0]).parent, min_runtime=min_runtime,
                                show_ops=show_ops, intermediate=names(intermediate), segments=segments,
                                timeout=timeout)
    comparisons = {}
    for compiled in result.models:
        try:
            predicted = analyze(compiled.source) if Path(compiled.source).is_file() else None
        except EdgekitError:
            predicted = None
        if predicted:
            comparisons[compiled.source] = side_by_side(predicted, compiled.report)
    if as_json:
        print_json({**result.to_dict(), "side_by_side": comparisons})
        return
    out = console()
    out.print(f"edgetpu_compiler {result.version or '?'}" + (f", min runtime {min_runtime}" if min_runtime else ""))
    for compiled in result.models:
        render_edgetpu(compiled.report, out)
        out.print(f"  output: {compiled.output}  log: {compiled.log}")
        if compiled.source in comparisons:
            render_side_by_side(comparisons[compiled.source], out)
