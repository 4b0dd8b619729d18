"""Harness agreement: the `edgekit bench` median against OpenVINO's own `benchmark_app`.

    .venv/bin/python benchmarks/vs_benchmark_app.py [--rounds 8] [--runs 200] [--threads N]
                                                    [--precisions fp32,int8] [--out-dir benchmarks/results] [--json]

Both sides run the same EfficientNet-Lite0 IR (out/demo/efficientnet_lite0_<precision>.xml from
`make demo`; when absent, converted here with edgekit.convert into a cache folder) on the OpenVINO
CPU device with the same settings: synchronous API, one stream, the LATENCY hint, the same
inference thread count, batch 1, the same warm run count.

- edgekit: `edgekit.bench.harness.bench_artifact` (what `edgekit bench` calls), in this process,
  median of `latency_ms`: Runner.run, the runtime call on an input Runner.load has just copied in
  (edgekit bench reports the load and the output read apart, as `io_ms`).
- benchmark_app: run as a child process with -api sync -hint latency and the thread/stream count
  in -load_config (benchmark_app refuses -nthreads beside -hint); its median comes from the
  -json_stats report ("latency (ms)"), never from its printed text.

benchmark_app turns every image-like input into u8 unless told otherwise (its pre_post_processing
sets "is_image" inputs to u8 and adds a convert inside the graph), so it would time a different
graph from the IR edgekit runs: with an int8 IR the u8 input feeds the quantized first convolution
directly. `-ip` is therefore set to the IR's own input type (f32 here).

benchmark_app's default (-inference_only true) fills the input tensor once and times only the
inference: the same span as edgekit's latency. `--inference-only false` makes benchmark_app time
filling the input as well, for a look at that cost.

Rounds interleave the two tools and flip their order every round, so drift on this shared,
noisy machine hits both alike; the reported agreement is the median over rounds of the per-round
ratio edgekit/benchmark_app. Goal: within ±5 %. Timings are reported, never asserted.

Results: benchmarks/results/vs-benchmark-app-<UTC date>.json and .md, and a line at the top of
benchmarks/results/README.md. Exit codes: 0 done, 2 a needed tool or package is missing, 1 anything else.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import hostinfo  # noqa: E402  (re-exports edgekit.bench.sysinfo: light, imports no framework)
from timing import clock, median  # noqa: E402  (the one percentile definition)

MODEL = "efficientnet_lite0"
DEMO_DIR = ROOT / "out" / "demo"
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edgekit" / "vs-benchmark-app"
GOAL_PCT = 5.0
BUSY_WARNING = 0.2  # other processes' share of the CPUs that makes an entry "noisy"
WARMUP = 20


def benchmark_app_command() -> list[str] | None:
    """The benchmark_app that ships with the openvino wheel in this interpreter's environment."""
    script = Path(sys.executable).with_name("benchmark_app")
    if script.exists():
        return [str(script)]
    try:
        import importlib.util

        if importlib.util.find_spec("openvino.tools.benchmark.main"):
            return [sys.executable, "-m", "openvino.tools.benchmark.main"]
    except ModuleNotFoundError:
        pass
    return None


def find_ir(precision: str, progress: bool) -> Path:
    demo = DEMO_DIR / f"{MODEL}_{precision}.xml"
    if demo.exists():
        return demo
    cached = CACHE_DIR / f"{MODEL}_{precision}.xml"
    if not cached.exists():
        convert_ir(progress)
    return cached


def convert_ir(progress: bool) -> None:
    """No `make demo` output: convert the zoo model to OpenVINO fp32 + int8 with edgekit.convert."""
    from edgekit import photos, zoo
    from edgekit.convert import ConvertRequest, convert

    model = zoo.load(MODEL)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    calibration = photos.write_photo_folder(CACHE_DIR / "photos")
    request = ConvertRequest(targets=["openvino"], precisions=["fp32", "int8"], out_dir=CACHE_DIR,
                             calib=str(calibration), input_size=model.input_size, mean=model.mean, std=model.std,
                             bgr=model.color_order == "BGR", resize=model.resize, task=model.task,
                             labels=model.labels_path, name=model.name)
    if progress:
        print(f"converting {MODEL} to OpenVINO IR in {CACHE_DIR} (no {DEMO_DIR} from `make demo`)", file=sys.stderr)
    convert(model.build(), request)


def run_edgekit(ir: Path, threads: int, runs: int) -> dict[str, Any]:
    from edgekit.bench.harness import BenchOptions, bench_artifact

    options = BenchOptions(runs=runs, warmup=WARMUP, threads=[threads], hint="latency", backend="openvino",
                           device="CPU")
    record = bench_artifact(ir, options, threads)
    if record.status != "ok":
        raise RuntimeError(f"edgekit bench failed on {ir.name}: {record.error}")
    return {"p50": record.latency_ms["p50"], "mean": record.latency_ms["mean"], "min": record.latency_ms["min"],
            "runs": record.runs}


def input_precision(ir: Path) -> str:
    """The IR's input element type as benchmark_app's -ip names it (f32, f16, u8, i8, ...)."""
    import openvino as ov

    types = {port.get_element_type().get_type_name() for port in ov.Core().read_model(str(ir)).inputs}
    if len(types) != 1:
        raise RuntimeError(f"{ir.name} has inputs of several types ({', '.join(sorted(types))}); -ip takes one")
    return types.pop()


def run_benchmark_app(command: list[str], ir: Path, threads: int, runs: int, inference_only: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="edgekit-benchmark-app-") as folder:
        config = Path(folder) / "config.json"
        config.write_text(json.dumps({"CPU": {"INFERENCE_NUM_THREADS": str(threads), "NUM_STREAMS": "1",
                                                    "INFERENCE_PRECISION_HINT": "f32"}}))
        # benchmark_app has no warm-up count: it excludes only the first inference, so WARMUP extra
        # iterations are not added; its median is over `runs` calls like ours.
        args = command + ["-m", str(ir), "-d", "CPU", "-api", "sync", "-hint", "latency", "-load_config", str(config),
                          "-ip", input_precision(ir),   # not its default u8 for images: the same graph as ours
                          "-niter", str(runs), "-inference_only", str(inference_only).lower(),
                          "-report_type", "no_counters", "-json_stats",
                          "-report_folder", folder]
        done = subprocess.run(args, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"benchmark_app failed on {ir.name}: {tail[0]}")
        report = json.loads((Path(folder) / "benchmark_report.json").read_text())
    results = report["execution_results"]
    return {"p50": float(results["latency (ms)"]), "mean": float(results["avg latency"]),
            "min": float(results["min latency"]), "runs": int(results["total number of iterations"])}


def run_raw_loop(ir: Path, threads: int, runs: int) -> dict[str, Any]:
    """The least a Python caller can do: the same compiled config, the input set once, then
    `request.infer()` timed two ways: wall clock around the call, and OpenVINO's own
    `request.latency` for the same calls, which is what benchmark_app reports. Splits the gap:
    edgekit/raw wall = what Runner.run adds; raw wall/raw latency = the Python binding's share."""
    import numpy as np
    import openvino as ov

    compiled = ov.Core().compile_model(str(ir), "CPU", {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1,
                                                        "INFERENCE_NUM_THREADS": threads,
                                                        "INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    port = compiled.inputs[0]
    data = np.random.default_rng(0).uniform(-1, 1, tuple(port.shape)).astype(port.get_element_type().to_dtype())
    request.set_input_tensor(ov.Tensor(data))
    for _ in range(WARMUP):
        request.infer()
    wall, internal = [], []
    for _ in range(runs):
        start = clock()
        request.infer()
        wall.append((clock() - start) / 1e6)
        internal.append(request.latency)
    return {"p50": median(wall), "latency_p50": median(internal)}


def measure(args, command: list[str]) -> dict[str, Any]:
    irs = {p: find_ir(p, not args.json) for p in args.precisions}
    result: dict[str, Any] = {"irs": {p: str(ir) for p, ir in irs.items()}, "rounds": []}
    before = hostinfo.cpu_snapshot()
    for index in range(args.rounds):
        order = ("edgekit", "benchmark_app") if index % 2 == 0 else ("benchmark_app", "edgekit")
        entry: dict[str, Any] = {"round": index, "order": list(order)}
        for precision, ir in irs.items():
            measured = {}
            for tool in order:
                measured[tool] = (run_edgekit(ir, args.threads, args.runs) if tool == "edgekit"
                                  else run_benchmark_app(command, ir, args.threads, args.runs, args.inference_only))
            measured["raw"] = run_raw_loop(ir, args.threads, args.runs)
            measured["ratio"] = measured["edgekit"]["p50"] / measured["benchmark_app"]["p50"]
            # the fastest call is what other processes disturb least: a cross-check on a busy machine
            measured["min_ratio"] = measured["edgekit"]["min"] / measured["benchmark_app"]["min"]
            entry[precision] = measured
        result["rounds"].append(entry)
        if not args.json:
            print(f"round {index + 1}/{args.rounds}: " + ", ".join(
                f"{p} edgekit {entry[p]['edgekit']['p50']:.2f} ms, "
                f"benchmark_app {entry[p]['benchmark_app']['p50']:.2f} ms" for p in irs), file=sys.stderr)
    result["contention"] = hostinfo.contention(before, hostinfo.cpu_snapshot())
    result["summary"] = {}
    for precision in irs:
        ratios = [r[precision]["ratio"] for r in result["rounds"]]
        edgekit = [r[precision]["edgekit"]["p50"] for r in result["rounds"]]
        tool = [r[precision]["benchmark_app"]["p50"] for r in result["rounds"]]
        ratio = median(ratios)
        result["summary"][precision] = {
            "ratio_median": ratio, "difference_pct": (ratio - 1) * 100, "within_goal": abs(ratio - 1) * 100 <= GOAL_PCT,
            "ratio_min": min(ratios), "ratio_max": max(ratios),
            "min_latency_ratio_median": median(r[precision]["min_ratio"] for r in result["rounds"]),
            "edgekit_p50_median_ms": median(edgekit), "benchmark_app_p50_median_ms": median(tool),
            # where the gap comes from (medians over rounds of per-round ratios)
            "edgekit_over_raw_wall": median(
                r[precision]["edgekit"]["p50"] / r[precision]["raw"]["p50"] for r in result["rounds"]),
            "raw_wall_over_raw_latency": median(
                r[precision]["raw"]["p50"] / r[precision]["raw"]["latency_p50"] for r in result["rounds"]),
            "raw_latency_over_benchmark_app": median(
                r[precision]["raw"]["latency_p50"] / r[precision]["benchmark_app"]["p50"] for r in result["rounds"])}
    return result


def markdown(result: dict[str, Any], stamp: str) -> str:
    args = result["args"]
    lines = [f"# edgekit bench vs OpenVINO benchmark_app — {stamp}", "",
             f"**Host:** {hostinfo.describe(result['host'])}", "",
             f"EfficientNet-Lite0 IR, OpenVINO CPU, sync API, 1 stream, LATENCY hint, {args['threads']} inference "
             f"thread(s), batch 1, benchmark_app -ip set to the IR's input type and -inference_only "
             f"{str(args.get('benchmark_app_inference_only', True)).lower()}; {args['rounds']} interleaved rounds "
             f"(order flips each round) of {args['runs']} warm runs per tool. Agreement = median over rounds of "
             f"edgekit p50 / benchmark_app p50; "
             f"goal within ±{GOAL_PCT:g} %.", "",
             "| precision | edgekit p50 ms (median of rounds) | benchmark_app p50 ms | edgekit / benchmark_app | "
             "range over rounds | within ±5 % | min-latency ratio (cross-check) |", "|---|---|---|---|---|---|---|"]
    for precision, s in result["summary"].items():
        lines.append(f"| {precision} | {s['edgekit_p50_median_ms']:.3f} | {s['benchmark_app_p50_median_ms']:.3f} | "
                     f"**{s['ratio_median']:.3f}** ({s['difference_pct']:+.1f} %) | {s['ratio_min']:.3f}–"
                     f"{s['ratio_max']:.3f} | {'yes' if s['within_goal'] else 'no'} | "
                     f"{s['min_latency_ratio_median']:.3f} |")
    lines += ["", "Where the difference comes from (medians over rounds; a plain Python loop over the same IR, "
              "input set once, timed by wall clock and by OpenVINO's own `request.latency`, which is what "
              "benchmark_app reports):", "",
              "| precision | edgekit / raw wall (Runner.run vs bare infer()) | raw wall / raw request.latency (Python call) | "
              "raw request.latency / benchmark_app (same definition) |", "|---|---|---|---|"]
    for precision, s in result["summary"].items():
        if "edgekit_over_raw_wall" in s:
            lines.append(f"| {precision} | {s['edgekit_over_raw_wall']:.3f} | {s['raw_wall_over_raw_latency']:.3f} | "
                         f"{s['raw_latency_over_benchmark_app']:.3f} |")
    contention = result.get("contention") or {}
    lines += ["", "Per round (ms, p50):", "", "| round | order | " + " | ".join(
        f"{p} edgekit | {p} benchmark_app | {p} ratio" for p in result["summary"]) + " |",
        "|---|---|" + "---|" * (3 * len(result["summary"]))]
    for entry in result["rounds"]:
        cells = []
        for precision in result["summary"]:
            m = entry[precision]
            cells += [f"{m['edgekit']['p50']:.3f}", f"{m['benchmark_app']['p50']:.3f}", f"{m['ratio']:.3f}"]
        lines.append(f"| {entry['round'] + 1} | {' → '.join(entry['order'])} | " + " | ".join(cells) + " |")
    lines += ["", "CPU use by other processes during the measurement: "
              f"{contention.get('other_processes', 'unknown')} of all cores "
              f"(steal {contention.get('steal', 'unknown')}); a large share means both tools' numbers are inflated "
              "and noisier.", ""]
    return "\n".join(lines)


def record(result: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    from edgekit.fsutil import write_atomic

    now = datetime.now(timezone.utc)
    stamp = now.strftime("%Y-%m-%d-%H%M%S")
    json_path = out_dir / f"vs-benchmark-app-{stamp}.json"
    md_path = out_dir / f"vs-benchmark-app-{stamp}.md"
    write_atomic(json_path, json.dumps(result, indent=2) + "\n")
    write_atomic(md_path, markdown(result, now.strftime("%Y-%m-%d %H:%M UTC")))
    index = out_dir / "README.md"
    other = (result.get("contention") or {}).get("other_processes")
    busy = (f"Measured while other processes used {other:.0%} of the CPUs: noisy, prefer a quieter entry."
            if other is not None and other > BUSY_WARNING else f"Other processes used {other} of the CPUs.")
    summary = "; ".join(f"{p} edgekit/benchmark_app **{s['ratio_median']:.3f}** ({s['difference_pct']:+.1f} %, "
                        f"{'within' if s['within_goal'] else 'outside'} ±{GOAL_PCT:g} %)"
                        for p, s in result["summary"].items())
    entry = (f"## {now:%Y-%m-%d} — vs benchmark_app ([table]({md_path.name}), [raw JSON]({json_path.name}))\n\n"
             f"EfficientNet-Lite0 IR on {result['host']['cpu']}, OpenVINO CPU, sync, 1 stream, latency hint, "
             f"{result['args']['threads']} thread(s), {result['args']['rounds']} interleaved rounds, benchmark_app "
             f"-inference_only {str(result['args']['benchmark_app_inference_only']).lower()}: {summary}. "
             f"{busy}\n\n")
    hostinfo.update_readme(index, entry)
    return json_path, md_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--runs", type=int, default=200, help="warm runs per tool per round")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                        else (os.cpu_count() or 1))
    parser.add_argument("--precisions", default="fp32,int8")
    parser.add_argument("--out-dir", type=Path, default=HERE / "results")
    parser.add_argument("--inference-only", choices=("true", "false"), default="true",
                        help="benchmark_app -inference_only: true (its default) fills the input once; false copies "
                             "it every iteration, as Runner.infer does with each new frame")
    parser.add_argument("--no-record", action="store_true", help="print only; write nothing to --out-dir")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    args.precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    args.inference_only = args.inference_only == "true"

    command = benchmark_app_command()
    from edgekit import deps

    missing = deps.missing("openvino") or (None if command else "no benchmark_app beside this Python and no "
                                           "openvino.tools.benchmark module (pip install openvino)")
    if missing:
        print(f"error: {missing}", file=sys.stderr)
        return 2
    result = measure(args, command)
    result["args"] = {"rounds": args.rounds, "runs": args.runs, "threads": args.threads, "warmup": WARMUP,
                      "benchmark_app_inference_only": args.inference_only,
                      "precisions": args.precisions, "benchmark_app": " ".join(command)}
    result["host"] = hostinfo.collect()
    if not args.no_record:
        json_path, md_path = record(result, args.out_dir)
        result["files"] = [str(json_path), str(md_path)]
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(markdown(result, datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # one line, like the CLI
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
