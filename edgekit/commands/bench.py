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
              help="'random' (a random camera-sized frame), an image file, or a preprocessed .npy tensor.")
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
    A failed artifact is a row with its reason. Exit codes: 0 all ran; 1 some artifacts
    failed or a median regressed beyond --max-regression; 2 bad input or every artifact failed.

    \b
    Examples:
      edgekit bench out/*.tflite out/*.xml out/*.onnx --runs 200 --plot latency.png
      edgekit bench out/model_int8.xml --device CPU --threads 1,2 --hint latency
      edgekit bench out/model_int8.xml --json > benchmarks/results/last.json
      edgekit bench out/model_int8.xml --baseline benchmarks/results/last.json --max-regression 10
      edgekit bench out/model_int8_edgetpu.tflite --profile coral-usb-x86 --input photo.jpg
    """
    from ..bench import report as render
    from ..bench.harness import (ArtifactsFailed, BenchOptions, RegressionError, compare_baseline, load_baseline,
                                 regression_message, run_bench)
    from ..ui import console, native_output_captured, print_json, progress_bar, table

    if runs is not None and duration is not None:
        raise EdgekitError("--runs and --duration both given", "use one: a number of runs or seconds of runs")
    options = BenchOptions(runs=None if duration is not None else (100 if runs is None else runs), duration=duration,
                           warmup=warmup, threads=threads, hint=hint, backend=backend, device=device,
                           input=input_spec)
    if max_regression < 0:
        raise EdgekitError(f"--max-regression must be 0 or more, got {max_regression:g}")
    profile = _profile(profile_name, options) if profile_name else None
    baseline_results = load_baseline(baseline) if baseline else None  # refuse a bad baseline before measuring

    models, sidecars = _models_only(artifacts)
    with progress_bar(not as_json) as progress, native_output_captured(not debug_enabled()):
        result = run_bench(models, options, progress=progress)

    comparisons = compare_baseline(result, baseline_results, max_regression) if baseline_results is not None else None
    if csv_path:
        render.write_csv(result, csv_path)
    if md_path:
        render.write_markdown(result, md_path, profile)
    if plot_path:
        render.write_plot(result, plot_path)

    if as_json:
        data = result.to_dict()
        if profile:
            data["profile"] = {"name": profile.name, "title": profile.title,
                               "references": [vars(r) for r in profile.references],
                               "matched": render.profile_rows(result, profile)}
        if comparisons is not None:
            data["baseline"] = {"path": str(baseline), "max_regression_pct": max_regression,
                                "comparisons": comparisons}
        print_json(data)
    else:
        out = console()
        if sidecars:
            out.print(f"[dim]not benchmarked (manifests and IR weights of listed models): "
                      f"{', '.join(p.name for p in sidecars)}[/]")
        out.print(render.bench_table(result))
        for note in render.failure_notes(result):
            out.print(f"  [red]failed[/] {note}")
        out.print("[dim]RSS MB: this process's peak resident memory, cumulative over the run (--json has each "
                  "artifact's own growth); pre/post: Predictor.prepare/decode medians; io: loading the input and "
                  "reading the outputs around each inference; all three timed apart from it; "
                  "--md/--csv/--json add p90, mean, std, min, max[/]")
        out.print(f"[dim]host: {render.host_line(result)}[/]")
        if profile:
            out.print(table(f"{profile.title}: published references", render.PROFILE_COLUMNS,
                            render.profile_rows(result, profile), wrap=("setup", "source")))
        if comparisons is not None:
            out.print(table(f"baseline {baseline} (max regression {max_regression:g}%)",
                            ["artifact", "backend/device", "threads", "baseline p50 ms", "p50 ms", "change"],
                            [[c["key"][0], f"{c['key'][1]}/{c['key'][2]}", c["key"][3] or "default",
                              f"{c['baseline_ms']:.3f}", f"{c['current_ms']:.3f}",
                              f"{c['change_pct']:+.1f}%" + (" REGRESSED" if c["regressed"] else "")]
                             for c in comparisons]))
            if not comparisons:
                out.print("[yellow]no result matched the baseline (same artifact name, backend, device, threads)[/]")

    failed = result.failed
    if failed and len(failed) == len(result.results):
        reasons = "; ".join(f"{Path(r.artifact).name}: {r.error}" for r in failed)
        raise EdgekitError(f"no artifact could be benchmarked ({reasons})")
    problems = []
    if failed:
        problems.append(f"{len(failed)} of {len(result.results)} runs failed: "
                        + ", ".join(sorted({Path(r.artifact).name for r in failed})))
    regression = regression_message(comparisons or [], max_regression)
    if regression:
        raise RegressionError("; ".join(problems + [regression]))
    if problems:
        raise ArtifactsFailed(problems[0], "see the table for each reason")


def _models_only(paths) -> tuple[list[Path], list[Path]]:
    """Drop what a shell glob like `out/*` brings along beside the models: manifests of listed
    artifacts, and the .bin weights of a listed OpenVINO .xml. Anything else is benchmarked
    (and fails as a row if it is not a model)."""
    from ..manifest import SUFFIX

    listed = {Path(p) for p in paths}
    models, sidecars = [], []
    for path in paths:
        path = Path(path)
        is_manifest = path.name.endswith(SUFFIX) and path.with_name(path.name[: -len(SUFFIX)]) in listed
        is_weights = path.suffix == ".bin" and path.with_suffix(".xml") in listed
        (sidecars if is_manifest or is_weights else models).append(path)
    return models, sidecars


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
