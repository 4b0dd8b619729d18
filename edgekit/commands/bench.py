"""`edgekit bench`: latency, load time, memory and pre/post cost of artifacts, side by side."""
from __future__ import annotations

from pathlib import Path

import click

from ..errors import EdgekitError
from .common import debug_enabled, hint_option, json_option


def _threads(ctx, param, value):
    if value is None:
        return [None]
    try:
        counts = [int(v) for v in value.replace(" ", "").split(",") if v]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise click.BadParameter(f"'{value}' is not a comma-separated list of positive thread counts (e.g. 1,2)")
    return list(dict.fromkeys(counts))


@click.command()
@click.argument("artifacts", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--backend", help="Runtime backend (default: by format): litert, openvino, onnxruntime, coreml, edgetpu.")
@click.option("--device", help="Device for the backend, e.g. CPU, GPU, NPU, AUTO (OpenVINO).")
@click.option("--threads", callback=_threads, metavar="N[,N...]",
              help="CPU threads (litert, openvino CPU, onnxruntime); several comma-separated: one row per count.")
@hint_option
@click.option("--runs", type=int, help="Warm runs per artifact (default 100).")
@click.option("--duration", type=float, help="Seconds of warm runs per artifact, instead of --runs.")
@click.option("--warmup", type=int, default=10, show_default=True, help="Untimed runs after the first inference.")
@click.option("--input", "input_spec", default="random", show_default=True,
              help="'random' (a random camera-sized frame), an image file, a preprocessed .npy tensor, or a .npz "
                   "with one array per input name (several inputs).")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path, dir_okay=False), help="Also write a CSV table.")
@click.option("--md", "md_path", type=click.Path(path_type=Path, dir_okay=False), help="Also write a Markdown table.")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Also draw latency distributions to a PNG.")
@click.option("--baseline", type=click.Path(path_type=Path, dir_okay=False),
              help="An earlier `bench --json` result: exit 1 if a median got slower than --max-regression.")
@click.option("--max-regression", type=float, default=10.0, show_default=True, help="Allowed slowdown, percent.")
@click.option("--profile", "profile_name", help="Device profile (see `edgekit devices`): show published references.")
@json_option
def bench(artifacts, backend, device, threads, hint, runs, duration, warmup, input_spec, csv_path, md_path, plot_path,
          baseline, max_regression, profile_name, as_json):
    """Benchmark ARTIFACTS: load time, first inference, warm latency p50/p90/p99, FPS,
    peak memory, and pre/postprocessing time, in one side-by-side table.

    \b
    Latency is the runtime's inference call alone, on an input loaded just before it: the
    span OpenVINO's benchmark_app and LiteRT's benchmark_model time. Loading the input
    (checks, quantize, copy in) and reading the outputs are the "io" column.

    \b
    Each row runs in its own process, so its peak memory (RSS) is its own. A failed artifact
    is a row with its reason; one this host can never run (a Core ML model off macOS, an Edge
    TPU model without an Edge TPU) is "skipped: needs macOS", not a failure. Exit codes: 0 all
    ran (skipped rows included); 1 some artifacts failed or a median regressed beyond
    --max-regression; 2 bad input, or no artifact ran.

    \b
    Examples:
      edgekit bench out/*.tflite out/*.xml out/*.onnx --runs 200 --plot latency.png
      edgekit bench out/model_int8.xml --device CPU --threads 1,2 --hint latency
      edgekit bench out/model_int8.xml --json > last.json
      edgekit bench out/model_int8.xml --baseline last.json --max-regression 10
      edgekit bench out/model_int8_edgetpu.tflite --profile coral-usb-x86 --input photo.jpg
    """
    from ..bench.harness import run_bench
    from ..ui import native_output_captured, progress_bar

    options, profile, baseline_results = validate(runs, duration, warmup, threads, hint, backend, device, input_spec,
                                                  max_regression, profile_name, baseline)
    from ..listing import models_only

    models, sidecars = models_only(artifacts)
    with progress_bar(not as_json) as progress, native_output_captured(not debug_enabled()):
        result = run_bench(models, options, progress=progress)
    comparison = _compare(result, baseline_results, max_regression, baseline)
    _write_files(result, profile, csv_path, md_path, plot_path)
    _show(result, profile, comparison, sidecars, as_json)
    exit_policy(result, comparison)


def validate(runs, duration, warmup, threads, hint, backend, device, input_spec, max_regression, profile_name,
             baseline):
    """Options, device profile and baseline, all refused (exit 2) before anything is measured."""
    from ..bench.harness import BenchOptions, load_baseline

    if runs is not None and duration is not None:
        raise EdgekitError("--runs and --duration both given", "use one: a number of runs or seconds of runs")
    options = BenchOptions(runs=None if duration is not None else (100 if runs is None else runs), duration=duration,
                           warmup=warmup, threads=threads, hint=hint, backend=backend, device=device,
                           input=input_spec)
    if max_regression < 0:
        raise EdgekitError(f"--max-regression must be 0 or more, got {max_regression:g}")
    profile = _profile(profile_name, options) if profile_name else None
    return options, profile, load_baseline(baseline) if baseline else None


def _compare(result, baseline_results, max_regression: float, baseline):
    from ..bench.harness import compare_baseline

    if baseline_results is None:
        return None
    return compare_baseline(result, baseline_results, max_regression, baseline)


def _write_files(result, profile, csv_path, md_path, plot_path) -> None:
    from ..bench import report

    if csv_path:
        report.write_csv(result, csv_path)
    if md_path:
        report.write_markdown(result, md_path, profile)
    if plot_path:
        report.write_plot(result, plot_path)


def _show(result, profile, comparison, sidecars, as_json: bool) -> None:
    from ..bench.report import profile_rows
    from ..ui import console, print_json
    from ..views.bench import render_bench

    if not as_json:
        render_bench(result, console(), sidecars, profile, comparison)
        return
    data = result.to_dict()
    if profile:
        data["profile"] = {"name": profile.name, "title": profile.title,
                           "references": [vars(r) for r in profile.references],
                           "matched": profile_rows(result, profile)}
    if comparison is not None:
        data["baseline"] = comparison.to_dict()
    print_json(data)


def exit_policy(result, comparison) -> None:
    """0 every row ran or was skipped (this host can never run it: not a failure); 1 some rows
    failed or a median regressed (RegressionError, ArtifactsFailed); 2 no row ran (EdgekitError)."""
    from ..bench.harness import ArtifactsFailed, RegressionError

    failed = result.failed
    if len(failed) + len(result.skipped) == len(result.results):
        reasons = "; ".join(f"{Path(r.artifact).name}: {'skipped: ' if r.status == 'skipped' else ''}{r.error}"
                            for r in result.results)
        if failed:
            raise EdgekitError(f"no artifact could be benchmarked ({reasons})")
        raise EdgekitError(f"nothing to benchmark on this host ({reasons})",
                           "run these artifacts where their runtime exists")
    problems = []
    if failed:
        problems.append(f"{len(failed)} of {len(result.results)} runs failed: "
                        + ", ".join(sorted({Path(r.artifact).name for r in failed})))
    regression = comparison.regression_message() if comparison is not None else None
    if regression:
        raise RegressionError("; ".join(problems + [regression]))
    if problems:
        raise ArtifactsFailed(problems[0], "see the table for each reason")


def _profile(name: str, options):
    """The named profile, if its device is on this host; its backend/device fill in defaults."""
    from ..bench.profiles import HostDevices, get_profile, presence

    profile = get_profile(name)
    present, why = presence(profile, HostDevices.read())
    if not present:
        raise EdgekitError(f"device profile '{name}' ({profile.title}) is not present on this host: {why}",
                           "`edgekit devices` lists the profiles this host has")
    for option, wanted in (("backend", profile.backend), ("device", profile.device)):
        given = getattr(options, option)
        if given is not None and given != wanted:
            raise EdgekitError(f"--{option} {given} conflicts with profile '{name}', which uses {option} {wanted}",
                               f"drop --{option} or pick another profile")
        setattr(options, option, wanted)
    return profile
