"""Runner overhead: edgekit's `Runner.infer` against the raw runtime call loop, on EfficientNet-Lite0
fp32 and int8, for LiteRT (`Interpreter.invoke`) and OpenVINO CPU (`InferRequest.infer`).

    .venv/bin/python benchmarks/runner_overhead.py [--artifacts-dir out/demo] [--processes 3] [--rounds 12]
                                                   [--runs-per-round 25] [--threads N] [--json]

Goal: Runner.infer median at most 1.03x the raw loop.

- Artifacts: `efficientnet_lite0_{fp32,int8}.{tflite,xml}` from --artifacts-dir (default `out/demo`,
  what `make demo` writes); when missing they are converted once with `edgekit.convert` into
  --cache-dir and reused by later runs.
- Input: one real photo (scikit-image `coffee`), prepared by `Predictor.prepare`, as an application
  does. For the int8 TFLite that is already the uint8 tensor (mean 127 / std 128 against scale 1/128,
  zero point 127 composes to the identity), which the Runner passes through. The raw loop is fed the
  same tensor. A third variant, `runner_float`, feeds the int8 model the float tensor so the Runner
  quantizes it per call: the cost this change removed, kept visible.
- Both sides use the same thread count (and, for OpenVINO, the same compile config: the Runner's).
  The raw side copies its outputs out as the Runner does (LiteRT get_tensor copies; OpenVINO's
  result is read into a numpy array).
- ABAB: inside each round the variants alternate call by call and the order flips every round, so
  drift and other processes' load hit every variant alike.
- Each runtime runs in --processes fresh subprocesses, pooled. The ratio moves by about 1 % from one
  process to the next (where the two copies of the model land in memory; every other process
  loads the raw side first), more than it moves inside a process, so one process is not enough to
  tell 1.02 from 1.03.

Results: benchmarks/results/runner_overhead-<UTC date>.json and .md, and an entry at the top of
benchmarks/results/README.md. Timings are reported, never asserted.
Exit codes: 0 done, 2 a needed package is missing (one line on stderr), 1 anything else.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import hostinfo  # noqa: E402  (light: imports no framework)
from artifacts import CACHE_DIR, MODEL, find_or_convert  # noqa: E402
from hostinfo import markdown_table  # noqa: E402
from timing import clock, interleaved_blocks, median, percentile_of, ratio_summary, stats_ms  # noqa: E402

PHOTO = "coffee"
GOAL = 1.03
RUNTIMES = {"litert": "LiteRT (CPU, XNNPACK)", "openvino": "OpenVINO CPU"}   # runtime -> display name
NEEDS = ("numpy", "cv2", "skimage", "ai_edge_litert", "openvino")


# ----------------------------------------------------------------------------- worker

def _raw_litert(path: Path, threads: int, config: dict):
    """Open the model; returns a function that binds an input batch to a raw call, and its doc."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]

    def bind(batch):
        def raw():
            interpreter.set_tensor(inp, batch)
            interpreter.invoke()
            return interpreter.get_tensor(out)
        return raw

    return bind, "Interpreter(num_threads=N): set_tensor(prepared input); invoke(); get_tensor(output)"


def _raw_openvino(path: Path, threads: int, config: dict):
    import numpy as np
    import openvino as ov

    compiled = ov.Core().compile_model(str(path), "CPU", config)
    request = compiled.create_infer_request()

    # the fastest per-frame idiom: copy into the request's own input tensor (infer({0: batch})
    # makes a new tensor and rebinds the input each call, ~2-4 % slower)
    def bind(batch):
        def raw():
            np.copyto(request.get_input_tensor(0).data, batch)
            request.infer()
            return np.array(request.get_output_tensor(0).data)
        return raw

    return bind, (f"request = core.compile_model(path, 'CPU', {config}).create_infer_request(): "
                  "np.copyto(input tensor data, batch); request.infer(); np.array(output tensor data)")


def _wrapper_cost_us(runner, batch, calls: int = 300) -> dict[str, float]:
    """What Runner.infer adds around the native calls (input checks, quantize, the finiteness
    check, dequantize), timed alone: a load-independent view of the overhead, next to the noisy
    end-to-end ratio. Public API only: the model's own (quantized) outputs are the dequantized
    results quantized back, which gives the same integers."""
    from edgekit.runtime.base import check_finite, dequantize, quantize

    outputs = [quantize(r, t) for r, t in zip(runner.infer(batch), runner.outputs)]
    samples = []
    for _ in range(calls):
        started = clock()
        arrays = runner.check_feeds(batch)
        [quantize(a, t) for a, t in zip(arrays, runner.inputs)]
        for array, info in zip(arrays, runner.inputs):
            check_finite(array, info, runner.path.name)
        [dequantize(r, t) for r, t in zip(outputs, runner.outputs)]
        samples.append(clock() - started)
    return {"median_us": median(samples) / 1e3, "p10_us": percentile_of(samples, 10) / 1e3}


def measure(runtime: str, paths: dict[str, str], threads: int, rounds: int, runs: int, warmup: int,
            raw_first: bool = False) -> dict[str, Any]:
    """One worker process: open both sides, time them interleaved, return the raw samples.
    RAW_FIRST compiles the raw side's model before the Runner's: which of two copies of a model
    is loaded first moves its speed by up to ~0.5 % here, so the parent alternates the order."""
    import numpy as np

    from edgekit import photos
    from edgekit.frames import preprocess_image, to_layout
    from edgekit.runtime.predictor import open_predictor

    image = photos.photo(PHOTO)
    calls: dict[tuple[str, str], Any] = {}
    facts: dict[str, Any] = {}
    for precision, path in paths.items():
        open_raw = {"litert": _raw_litert, "openvino": _raw_openvino}[runtime]
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads,
                  "INFERENCE_PRECISION_HINT": "f32"}  # the Runner's own
        if raw_first:
            bind_raw, raw_doc = open_raw(Path(path), threads, config)
        predictor = open_predictor(path, runtime, threads=threads)
        runner = predictor.runner
        if getattr(runner, "config", config) != config:
            raise RuntimeError(f"the Runner compiled with {runner.config}, the raw side with {config}")
        if not raw_first:
            bind_raw, raw_doc = open_raw(Path(path), threads, config)
        batch, _ = predictor.prepare(image)
        float_batch = to_layout(preprocess_image(image, predictor.manifest.preprocess), predictor.manifest.preprocess.layout)
        raw = bind_raw(batch)
        calls[(precision, "runner")] = lambda r=runner, b=batch: r.infer(b)
        calls[(precision, "raw")] = raw
        if batch.dtype != float_batch.dtype:
            calls[(precision, "runner_float")] = lambda r=runner, b=float_batch: r.infer(b)
        got, want = runner.infer(batch)[0].reshape(-1), raw().reshape(-1)
        wrapper_us = _wrapper_cost_us(runner, batch)
        labels = predictor.manifest.labels
        facts[precision] = {"artifact": str(path), "input_dtype": batch.dtype.name, "input_shape": list(batch.shape),
                            "top1": labels[int(np.argmax(got))], "top1_raw_same": int(np.argmax(got)) == int(np.argmax(want)),
                            "raw": raw_doc, "runner": f"open_predictor(path, '{runtime}', threads=N).runner.infer(prepared)",
                            "config": getattr(runner, "config", {"num_threads": threads}),
                            "wrapper_us": wrapper_us}
    samples, contention = interleaved_blocks(calls, rounds, runs, warmup)
    return {"runtime": runtime, "threads": threads, "rounds": rounds, "runs_per_round": runs, "warmup": warmup,
            "photo": PHOTO, "raw_first": raw_first, "facts": facts, "contention": contention,
            "blocks": {f"{precision}/{kind}": blocks for (precision, kind), blocks in samples.items()}}


def pool(workers: list[dict[str, Any]]) -> dict[str, Any]:
    """One runtime's worker processes as one result: the ratios over all their calls (the headline)
    and each process's own ratio, which shows the spread between processes."""
    samples = {tuple(key.split("/")): [b for w in workers for b in w["blocks"][key]] for key in workers[0]["blocks"]}
    result = {k: v for k, v in workers[0].items() if k not in ("blocks", "contention", "raw_first")}
    result.update(processes=len(workers), rounds=sum(w["rounds"] for w in workers),
                  contention=[w["contention"] for w in workers], **summarize(samples))
    for key, ratio in result["ratios"].items():
        kind, precision = key.split("_over_raw_")
        ratio["per_process"] = [summarize({(precision, k): w["blocks"][f"{precision}/{k}"] for k in (kind, "raw")})
                                ["ratios"][key]["ratio"] for w in workers]
    return result


def summarize(samples: dict[tuple[str, str], list[list[int]]]) -> dict[str, Any]:
    result: dict[str, Any] = {"variants": {}, "ratios": {}}
    for (precision, kind), blocks in samples.items():
        entry = stats_ms([t for b in blocks for t in b])
        entry["per_round_median_ms"] = [median(b) / 1e6 for b in blocks]
        result["variants"].setdefault(precision, {})[kind] = entry
        if kind != "raw":
            result["ratios"][f"{kind}_over_raw_{precision}"] = ratio_summary(blocks, samples[(precision, "raw")],
                                                                             paired=True)
    return result


# ----------------------------------------------------------------------------- report

COLUMNS = ["runtime", "precision", "input", "Runner.infer ms", "raw ms", "Runner/raw", "p10 ratio", "paired median",
           "per process", "per-round range", "wrapper alone µs (share of raw)", f"≤ {GOAL}"]


def rows(latency: dict[str, Any]) -> list[list[str]]:
    table = []
    for runtime, data in latency.items():
        name = RUNTIMES[runtime]
        if "error" in data:
            table.append([name, "—", "—", "—", "—", "—", "—", "—", "—", "—", "—", data["error"].splitlines()[0]])
            continue
        for key, r in data["ratios"].items():
            kind, precision = key.split("_over_raw_")
            feed = data["facts"][precision]["input_dtype"] if kind == "runner" else "float32 (quantized per call)"
            table.append([name, precision, feed, f"{data['variants'][precision][kind]['median_ms']:.3f}",
                          f"{data['variants'][precision]['raw']['median_ms']:.3f}", f"{r['ratio']:.3f}",
                          f"{r['ratio_p10']:.3f}", f"{r['paired_median']:.3f}",
                          " / ".join(f"{x:.3f}" for x in r["per_process"]),
                          f"{r['per_round_min']:.3f}–{r['per_round_max']:.3f}",
                          (f"{data['facts'][precision]['wrapper_us']['median_us']:.0f} "
                           f"({data['facts'][precision]['wrapper_us']['median_us'] / 10 / data['variants'][precision]['raw']['median_ms']:.2f} %)"
                           if kind == "runner" else "—"),
                          "yes" if r["ratio"] <= GOAL else "**no**"])
    return table


def render_markdown(result: dict[str, Any]) -> str:
    config = result["config"]
    lines = [f"# Runner overhead, {result['date']}", "",
             f"Run {result['host']['timestamp_utc']} by `benchmarks/runner_overhead.py` "
             f"({result['duration_seconds']:.0f} s).", "", f"**Host:** {hostinfo.describe(result['host'])}", "",
             f"**Setup:** {MODEL} fp32 and int8, photo `{PHOTO}` prepared by `Predictor.prepare`, "
             f"{config['threads']} threads; {config['processes']} processes per runtime, each "
             f"{config['rounds']} rounds × {config['runs_per_round']} calls per variant "
             f"after {config['warmup']} warm-up calls, variants interleaved call by call (ABAB / BABA). "
             "Every other process loads the raw side's model before the Runner's, because the copy loaded "
             "first can be ~0.5 % faster. "
             f"Artifacts: `{config['artifacts']}`.", "",
             markdown_table(COLUMNS, rows(result["latency"])), "",
             "*Runner/raw* is the ratio of the medians over all calls of all processes; *per process* the same "
             "ratio in each process alone (their spread is the run-to-run noise); *p10 ratio* the ratio of the 10th "
             "percentiles (less sensitive to other processes); *paired median* the median of call-by-call ratios. "
             "The `float32 (quantized per call)` row feeds the int8 model a float tensor, so the Runner quantizes "
             "it on every call (what `Predictor.prepare` now avoids). *wrapper alone* times what Runner.infer adds "
             "around the native call (input checks, quantize, dequantize) by itself, which other processes' load "
             "barely moves; on a busy machine it is the better estimate of the overhead.", "",
             "## Machine load during timing", ""]
    for runtime, data in result["latency"].items():
        for index, c in enumerate(data.get("contention") or []):
            if c:
                lines.append(f"- {RUNTIMES[runtime]}, process {index + 1}: {c['wall_seconds']:.0f} s, this benchmark "
                             f"{c['this_process']:.0%}, other processes {c['other_processes']:.0%}, steal {c['steal']:.0%}")
    lines += ["", "## Outputs", ""]
    for runtime, data in result["latency"].items():
        for precision, fact in data.get("facts", {}).items():
            lines.append(f"- {RUNTIMES[runtime]} {precision}: top-1 `{fact['top1']}`, same as raw: "
                         f"{fact['top1_raw_same']}; input {fact['input_dtype']} {fact['input_shape']}")
    return "\n".join(lines) + "\n"


def readme_entry(result: dict[str, Any], md_name: str, json_name: str) -> str:
    parts = []
    for runtime, data in result["latency"].items():
        if "error" in data:
            parts.append(f"{RUNTIMES[runtime]}: error")
            continue
        r = data["ratios"]
        part = (f"{RUNTIMES[runtime].split(' (')[0]} Runner/raw fp32 **{r['runner_over_raw_fp32']['ratio']:.3f}**, "
                f"int8 **{r['runner_over_raw_int8']['ratio']:.3f}**")
        if "runner_float_over_raw_int8" in r:
            part += f" (int8 fed float, quantized per call: {r['runner_float_over_raw_int8']['ratio']:.3f})"
        parts.append(part)
    return (f"## {result['date']} — runner overhead ([table]({md_name}), [raw JSON]({json_name}))\n\n"
            f"EfficientNet-Lite0 on {result['host']['cpu']}, {result['config']['threads']} threads, goal ≤ {GOAL}: "
            + "; ".join(parts) + ".\n")


# ----------------------------------------------------------------------------- main

def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifacts-dir", type=Path, default=HERE.parent / "out" / "demo",
                        help="where efficientnet_lite0_{fp32,int8}.{tflite,xml} are (default: out/demo)")
    parser.add_argument("--cache-dir", type=Path, default=CACHE_DIR,
                        help="where to convert them once when --artifacts-dir lacks them")
    parser.add_argument("--out-dir", type=Path, default=HERE / "results")
    parser.add_argument("--processes", type=int, default=3,
                        help="worker processes per runtime, pooled (default 3): the ratio moves between processes")
    parser.add_argument("--rounds", type=int, default=12, help="rounds per process")
    parser.add_argument("--runs-per-round", type=int, default=25)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--threads", type=int, default=hostinfo.default_threads())
    parser.add_argument("--json", action="store_true", help="print the JSON result instead of the table")
    parser.add_argument("--_worker", choices=list(RUNTIMES), help=argparse.SUPPRESS)
    parser.add_argument("--_paths", help=argparse.SUPPRESS)
    parser.add_argument("--_raw-first", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.processes, args.rounds, args.runs_per_round, args.threads) < 1 or args.warmup < 0:
        parser.error("--processes, --rounds, --runs-per-round and --threads must be at least 1, --warmup at least 0")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args._worker:
        data = measure(args._worker, json.loads(args._paths), args.threads, args.rounds, args.runs_per_round,
                       args.warmup, raw_first=args._raw_first)
        sys.stdout.write(json.dumps(data) + "\n")
        return 0
    missing = hostinfo.missing_modules(NEEDS)
    if missing:
        print(f"benchmarks/runner_overhead.py: {missing}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    host = hostinfo.collect(extra_packages=("opencv-python", "scikit-image"))
    artifacts = find_or_convert(args.artifacts_dir, args.cache_dir)
    latency: dict[str, Any] = {}
    for runtime in RUNTIMES:
        workers = []
        for index in range(args.processes):
            if not args.json:
                print(f"timing {runtime}, process {index + 1}/{args.processes}: {args.rounds} rounds × "
                      f"{args.runs_per_round} calls per variant ...", file=sys.stderr)
            command = [sys.executable, str(Path(__file__).resolve()), "--_worker", runtime,
                       "--_paths", json.dumps({p: str(v) for p, v in artifacts[runtime].items()}),
                       "--threads", str(args.threads), "--rounds", str(args.rounds),
                       "--runs-per-round", str(args.runs_per_round), "--warmup", str(args.warmup),
                       *(["--_raw-first"] if index % 2 else [])]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                latency[runtime] = {"error": "\n".join(done.stderr.strip().splitlines()[-10:])}
                break
            workers.append(json.loads(done.stdout.strip().splitlines()[-1]))
        else:
            latency[runtime] = pool(workers)
    date = host["timestamp_utc"][:10]
    json_path, md_path = hostinfo.results_paths(args.out_dir, "runner_overhead", date)
    folder = Path(next(iter(artifacts["litert"].values()))).parent
    result = {"benchmark": "runner_overhead", "schema": 2, "date": date, "json_name": json_path.name,
              "duration_seconds": round(time.perf_counter() - started, 1), "host": host,
              "config": {"model": MODEL, "photo": PHOTO, "threads": args.threads, "processes": args.processes,
                         "rounds": args.rounds,
                         "runs_per_round": args.runs_per_round, "warmup": args.warmup, "goal_runner_over_raw_max": GOAL,
                         "artifacts": str(folder)},
              "latency": latency}
    hostinfo.record(result, json_path, md_path, render_markdown(result), readme_entry(result, md_path.name, json_path.name))
    hostinfo.show(result, args.json, "edgekit Runner.infer vs raw runtime call (median)", COLUMNS, rows(latency), json_path, md_path)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
