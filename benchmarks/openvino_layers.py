"""Where OpenVINO's int8 time goes: EfficientNet-Lite0 fp32 and int8 IR on the CPU plugin, layer
by layer (OpenVINO's own per-node counters, `PERF_COUNT`), grouped by kind of layer, with the
int8/fp32 ratio of each group measured in the same run.

    .venv/bin/python benchmarks/openvino_layers.py [--artifacts-dir out/demo] [--rounds 8]
                                                   [--runs-per-round 30] [--threads N] [--json]

Why: `convert.py` finds OpenVINO int8 at about 0.78x fp32 on a CPU without VNNI, against a goal
of 0.7x. This shows which layers keep it there: on such a CPU, int8 pointwise (1x1) convolutions
multiply u8 by s8 pairs into int16 and sum them again (vpmaddubsw + vpmaddwd), and depthwise
convolutions have too few channels per pixel to gain from int8 at all.

- Artifacts: `efficientnet_lite0_{fp32,int8}.xml` from --artifacts-dir (default `out/demo`, what
  `make demo` writes), else converted once into --cache-dir (shared with runner_overhead.py).
- Timing: each round runs one block of calls per precision (order flips every round), back to
  back on one model, as a camera loop does; the first call of a block is dropped. Per call, each
  executed node's `real_time` is added to its group. The counters cost a little time themselves,
  so compare the ratios, not the milliseconds, with other benchmarks.
- Groups: pointwise convolution (1x1 kernels), depthwise convolution (GroupConvolution), the
  other convolutions (the 3x3 stem), fully connected, reorders (layout and precision changes),
  everything else. The kernels (exec types) each group ran are listed per precision.

Results: benchmarks/results/openvino-layers-<UTC date>.json and .md, and an entry at the top of
benchmarks/results/README.md. Timings are reported, never asserted.
Exit codes: 0 done, 2 a needed package is missing (one line on stderr), 1 anything else.
"""
from __future__ import annotations

import argparse
import collections
import gc
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
from timing import clock, median  # noqa: E402

PHOTO = "coffee"   # the photo runner_overhead.py times, so the two scripts time the same input

GOAL = 0.7
NEEDS = ("numpy", "cv2", "skimage", "openvino")
GROUPS = ["pointwise conv (1x1)", "depthwise conv", "other conv", "fully connected", "reorder", "other"]


def group_of(node_type: str, exec_type: str) -> str:
    if node_type == "Convolution":
        return GROUPS[0] if "1x1" in exec_type else GROUPS[2]
    if node_type == "GroupConvolution":
        return GROUPS[1]
    if node_type.startswith("FullyConnected"):
        return GROUPS[3]
    return GROUPS[4] if node_type == "Reorder" else GROUPS[5]


def measure(paths: dict[str, Path], threads: int, rounds: int, runs: int) -> dict[str, Any]:
    import numpy as np
    import openvino as ov

    from edgekit import photos
    from edgekit.manifest import read_manifest
    from edgekit.frames import preprocess_image, to_layout

    core = ov.Core()
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads, "PERF_COUNT": True,
              "INFERENCE_PRECISION_HINT": "f32"}  # as the Runner
    requests, kernels, nodes = {}, {}, {}
    for precision, path in paths.items():
        manifest = read_manifest(path)
        batch = to_layout(preprocess_image(photos.photo(PHOTO), manifest.preprocess), manifest.preprocess.layout)
        request = core.compile_model(str(path), "CPU", config).create_infer_request()
        np.copyto(request.get_input_tensor(0).data, batch)
        for _ in range(10):
            request.infer()
        executed = [p for p in request.get_profiling_info() if p.status == p.Status.EXECUTED]
        kernels[precision] = {g: collections.Counter(p.exec_type for p in executed if group_of(p.node_type, p.exec_type) == g)
                              for g in GROUPS}
        nodes[precision] = collections.Counter(group_of(p.node_type, p.exec_type) for p in executed)
        requests[precision] = request
    per_call: dict[str, dict[str, list[float]]] = {p: {g: [] for g in [*GROUPS, "all layers", "wall"]} for p in paths}
    gc.disable()
    try:
        for index in range(rounds):
            for precision in (list(paths) if index % 2 == 0 else list(paths)[::-1]):
                request = requests[precision]
                for call in range(runs + 1):
                    started = clock()
                    request.infer()
                    wall = (clock() - started) / 1e6
                    if call == 0:  # the other model just ran: this call warms the caches
                        continue
                    sums = dict.fromkeys(GROUPS, 0.0)
                    for p in request.get_profiling_info():
                        if p.status == p.Status.EXECUTED:
                            sums[group_of(p.node_type, p.exec_type)] += p.real_time.total_seconds() * 1e3
                    for group, ms in sums.items():
                        per_call[precision][group].append(ms)
                    per_call[precision]["all layers"].append(sum(sums.values()))
                    per_call[precision]["wall"].append(wall)
    finally:
        gc.enable()
    medians = {p: {g: median(v) for g, v in groups.items()} for p, groups in per_call.items()}
    return {"medians_ms": medians, "nodes": nodes, "kernels": {p: {g: dict(c) for g, c in k.items()} for p, k in kernels.items()},
            "config": {k: str(v) for k, v in config.items()}}


# ----------------------------------------------------------------------------- report

COLUMNS = ["layers", "nodes", "fp32 ms", "int8 ms", "int8/fp32", "share of fp32 time", "fp32 kernels", "int8 kernels"]


def rows(data: dict[str, Any]) -> list[list[str]]:
    fp32, int8 = data["medians_ms"]["fp32"], data["medians_ms"]["int8"]
    table = []
    for group in [*GROUPS, "all layers", "wall"]:
        if not fp32[group] and not int8[group]:
            continue
        count = ("—" if group in ("all layers", "wall")
                 else f"{data['nodes']['fp32'].get(group, 0)} / {data['nodes']['int8'].get(group, 0)}")
        names = [", ".join(f"{k} ×{n}" for k, n in data["kernels"][p].get(group, {}).items()) or "—"
                 if group in GROUPS else "—" for p in ("fp32", "int8")]
        ratio = f"{int8[group] / fp32[group]:.2f}" if fp32[group] else "—"
        label = {"all layers": "**sum of layers**", "wall": "**infer() wall time**"}.get(group, group)
        table.append([label, count, f"{fp32[group]:.3f}", f"{int8[group]:.3f}", ratio,
                      f"{fp32[group] / fp32['all layers']:.0%}" if group in GROUPS else "—", *names])
    return table


def render_markdown(result: dict[str, Any]) -> str:
    c = result["config"]
    return "\n".join([
        f"# OpenVINO int8 vs fp32 by layer, {result['date']}", "",
        f"Run {result['host']['timestamp_utc']} by `benchmarks/openvino_layers.py` ({result['duration_seconds']:.0f} s).", "",
        f"**Host:** {hostinfo.describe(result['host'])}", "",
        f"**Setup:** {MODEL} fp32 and int8 IR (`{c['artifacts']}`), photo `{PHOTO}`, CPU plugin with "
        f"{result['latency']['config']}; {c['rounds']} rounds, each one block of {c['runs_per_round']} calls per "
        "precision back to back (order flipped every round, first call of a block dropped). Medians over calls of "
        "the summed `real_time` of the executed nodes in each group. *nodes*: fp32 / int8.", "",
        markdown_table(COLUMNS, rows(result["latency"])), "",
        f"The goal for the whole model is int8 ≤ {GOAL}× fp32. A group's ratio shows what its layers can "
        "contribute; its share of fp32 time, how much that matters. The counters are the plugin's own "
        "per-node times, measured apart from `infer()`'s wall time: their sum need not equal it.", ""])


def readme_entry(result: dict[str, Any], md_name: str, json_name: str) -> str:
    m = result["latency"]["medians_ms"]
    part = ", ".join(f"{g} {m['int8'][g] / m['fp32'][g]:.2f}" for g in GROUPS[:2] if m["fp32"][g])
    return (f"## {result['date']} — OpenVINO int8 vs fp32 by layer ([table]({md_name}), [raw JSON]({json_name}))\n\n"
            f"EfficientNet-Lite0 on {result['host']['cpu']}, {result['config']['threads']} threads: int8/fp32 "
            f"{part}; sum of layers {m['int8']['all layers'] / m['fp32']['all layers']:.2f} (goal ≤ {GOAL}).\n")


# ----------------------------------------------------------------------------- main

def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifacts-dir", type=Path, default=HERE.parent / "out" / "demo",
                        help="where efficientnet_lite0_{fp32,int8}.xml are (default: out/demo)")
    parser.add_argument("--cache-dir", type=Path, default=CACHE_DIR,
                        help="where to convert them once when --artifacts-dir lacks them")
    parser.add_argument("--out-dir", type=Path, default=HERE / "results")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--runs-per-round", type=int, default=30)
    parser.add_argument("--threads", type=int, default=hostinfo.default_threads())
    parser.add_argument("--json", action="store_true", help="print the JSON result instead of the table")
    args = parser.parse_args(argv)
    if min(args.rounds, args.runs_per_round, args.threads) < 1:
        parser.error("--rounds, --runs-per-round and --threads must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    missing = hostinfo.missing_modules(NEEDS)
    if missing:
        print(f"benchmarks/openvino_layers.py: {missing}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    host = hostinfo.collect()
    paths = find_or_convert(args.artifacts_dir, args.cache_dir, runtimes=("openvino",))["openvino"]
    if not args.json:
        print(f"timing {args.rounds} rounds × {args.runs_per_round} calls per precision ...", file=sys.stderr)
    latency = measure(paths, args.threads, args.rounds, args.runs_per_round)
    date = host["timestamp_utc"][:10]
    json_path, md_path = hostinfo.results_paths(args.out_dir, "openvino-layers", date)
    result = {"benchmark": "openvino_layers", "schema": 1, "date": date,
              "duration_seconds": round(time.perf_counter() - started, 1), "host": host,
              "config": {"model": MODEL, "photo": PHOTO, "threads": args.threads, "rounds": args.rounds,
                         "runs_per_round": args.runs_per_round, "artifacts": str(Path(paths["fp32"]).parent)},
              "latency": latency}
    hostinfo.record(result, json_path, md_path, render_markdown(result), readme_entry(result, md_path.name, json_path.name))
    hostinfo.show(result, args.json, "OpenVINO int8 vs fp32 by layer (median ms per call)", COLUMNS, rows(latency), json_path, md_path)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
