"""Camera-pipeline benchmark: `edgekit run`'s pipelined throughput vs the model alone, the source
alone, and a plain sequential loop (read -> prepare -> infer -> decode -> draw), on a video file.

    .venv/bin/python benchmarks/pipeline.py [--frames 240] [--size 960x540] [--rounds 3] [--threads 1]
                                            [--model PATH] [--out-dir benchmarks/results] [--json]

Model: EfficientNet-Lite0 int8 TFLite, from `make demo` (out/demo/) when present, else converted
once with edgekit.convert into ~/.cache/edgekit/benchmarks/. Video: scikit-image's photos at
--size, H.264 (mpeg4 without libx264), made with ffmpeg and cached beside the model.

Each round measures, one after the other on the same frames (the order rotates every round, so
drift hits every variant alike):
  source      decode every frame with OpenCV (FFmpeg), nothing else
  model       Predictor.infer on one prepared frame, as many times as there are frames
  sequential  for each frame: read, BGR->RGB + prepare, infer, decode, annotate (one thread)
  pipelined   edgekit.stream.Pipeline on the file (its threads; 1 worker), no sink
  pipelined-2 the same with 2 inference workers (2 interpreters), for information
  auto        the same with the workers `edgekit run`'s default (--workers auto) picks here
              (edgekit.stream.workers.choose_workers: cores and this model's stage times)
The headline ratios come from the per-round medians: auto / min(source, model), what the default
`edgekit run` delivers (goal >= 0.9), pipelined (1 worker) / min(source, model), and pipelined /
sequential (goal: clearly above 1 when pre/post is a sizeable share of a frame).

Results: benchmarks/results/pipeline-<UTC date>.json and .md, and an entry at the top of
benchmarks/results/README.md. Timings are reported, never asserted.
Exit codes: 0 done, 2 a needed package or ffmpeg is missing (one line on stderr), 1 anything else.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import hostinfo  # noqa: E402  (light: imports no framework)
from timing import median  # noqa: E402  (the one percentile definition)

MODEL = "efficientnet_lite0"
DEMO_ARTIFACT = ROOT / "out" / "demo" / f"{MODEL}_int8.tflite"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edgekit" / "benchmarks"
NEEDS = ("numpy", "cv2", "skimage", "ai_edge_litert")
GOAL_VS_BOUND = 0.9
VARIANTS = ("source", "model", "sequential", "pipelined", "pipelined-2", "auto")
WARMUP = 10


# ----------------------------------------------------------------------------------- inputs

def ensure_model(explicit: Path | None) -> tuple[Path, str]:
    if explicit:
        return explicit, "given with --model"
    if DEMO_ARTIFACT.exists():
        return DEMO_ARTIFACT, "from `make demo`"
    cached = CACHE / f"{MODEL}_int8.tflite"
    if cached.exists():
        return cached, f"cached in {CACHE}"
    from edgekit import photos, zoo
    from edgekit.convert import ConvertRequest, convert

    print(f"converting {MODEL} to int8 TFLite into {CACHE} (once) ...", file=sys.stderr)
    model = zoo.load(MODEL)
    with tempfile.TemporaryDirectory() as scratch:
        calibration = photos.write_photo_folder(Path(scratch) / "photos")
        request = ConvertRequest(targets=["tflite"], precisions=["int8"], out_dir=CACHE, calib=str(calibration),
                                 input_size=model.input_size, mean=model.mean, std=model.std,
                                 bgr=model.color_order == "BGR", resize=model.resize, task=model.task,
                                 labels=model.labels_path, name=MODEL)
        artifact = convert(model.build(), request).artifacts[0]
    return Path(artifact.path), f"converted into {CACHE}"


def ensure_video(size: tuple[int, int], frames: int, fps: int = 30) -> tuple[Path, str]:
    """scikit-image's photos, each shown for a third of a second, looped to FRAMES frames."""
    import cv2
    import numpy as np

    from edgekit.photos import PHOTOS, photo

    encoders = subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    codec = "libx264" if " libx264 " in encoders else "mpeg4"
    width, height = size
    path = CACHE / f"photos-{width}x{height}-{frames}-{codec}.mp4"
    if path.exists():
        return path, codec
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        for index, name in enumerate(PHOTOS):
            image = np.ascontiguousarray(photo(name)[:, :, ::-1])
            scale = max(width / image.shape[1], height / image.shape[0])   # cover, then centre-crop
            image = cv2.resize(image, (max(width, round(image.shape[1] * scale)),
                                       max(height, round(image.shape[0] * scale))), interpolation=cv2.INTER_AREA)
            top, left = (image.shape[0] - height) // 2, (image.shape[1] - width) // 2
            cv2.imwrite(str(Path(scratch) / f"{index:02d}.png"), image[top:top + height, left:left + width])
        partial = path.with_name(f".{path.name}.partial.mp4")
        quality = ["-preset", "veryfast", "-crf", "23"] if codec == "libx264" else ["-q:v", "4"]
        subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-stream_loop", "-1", "-framerate", "3",
                        "-i", str(Path(scratch) / "%02d.png"), "-vf", f"fps={fps},format=yuv420p", "-c:v", codec,
                        *quality, "-frames:v", str(frames), str(partial)], check=True)
        os.replace(partial, path)
    return path, codec


# ----------------------------------------------------------------------------------- variants

def run_source(video: Path) -> dict[str, Any]:
    import cv2

    capture = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
    count, start = 0, time.perf_counter()
    while capture.read()[0]:
        count += 1
    seconds = time.perf_counter() - start
    capture.release()
    return {"frames": count, "seconds": seconds}


def run_model(predictor, batch, frames: int) -> dict[str, Any]:
    start = time.perf_counter()
    for _ in range(frames):
        predictor.infer(batch)
    return {"frames": frames, "seconds": time.perf_counter() - start}


def run_sequential(video: Path, predictor) -> dict[str, Any]:
    """The loop a user writes first: every stage in turn on one thread."""
    import cv2

    from edgekit.stream.overlay import annotate

    stages = {"read": 0.0, "prepare": 0.0, "infer": 0.0, "decode+draw": 0.0}
    capture = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
    count, start = 0, time.perf_counter()
    last = start
    while True:
        ok, frame = capture.read()
        t_read = time.perf_counter()
        if not ok:
            break
        batch, meta = predictor.prepare(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        t_prep = time.perf_counter()
        outputs = predictor.infer(batch)
        t_inf = time.perf_counter()
        annotate(frame, predictor.decode(outputs, meta), {"fps": 0.0, "infer_ms": (t_inf - t_prep) * 1e3,
                                                          "backend": "litert", "model": "m"})
        t_draw = time.perf_counter()
        for name, (a, b) in {"read": (last, t_read), "prepare": (t_read, t_prep), "infer": (t_prep, t_inf),
                             "decode+draw": (t_inf, t_draw)}.items():
            stages[name] += b - a
        last = t_draw
        count += 1
    seconds = time.perf_counter() - start
    capture.release()
    return {"frames": count, "seconds": seconds,
            "stage_ms": {name: total / max(count, 1) * 1e3 for name, total in stages.items()}}


def run_pipelined(video: Path, predictors) -> dict[str, Any]:
    from edgekit.stream import Pipeline, open_feed

    start = time.perf_counter()
    result = Pipeline(open_feed(str(video)), predictors).run()
    seconds = time.perf_counter() - start   # thread start-up and shutdown included
    return {"frames": result.frames, "seconds": seconds, "latency_ms": result.latency_ms,
            "infer_ms": result.infer_ms}


def measure(model: Path, video: Path, frames: int, rounds: int, threads: int) -> dict[str, Any]:
    import cv2

    from edgekit.runtime.predictor import open_predictor
    from edgekit.stream.workers import choose_workers

    predictors = [open_predictor(model, threads=threads)]
    try:
        capture = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
        ok, frame = capture.read()
        capture.release()
        if not ok:
            raise RuntimeError(f"cannot decode {video}")
        choice = choose_workers(predictors[0], threads, (frame.shape[1], frame.shape[0]))   # as `edgekit run` does
        print(f"--workers auto: {choice.reason}", file=sys.stderr)
        while len(predictors) < max(2, choice.workers):
            predictors.append(open_predictor(model, threads=threads))
        batch, _ = predictors[0].prepare(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        for predictor in predictors:
            run_model(predictor, batch, WARMUP)
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}
        load = []
        for round_index in range(rounds):
            order = VARIANTS[round_index % len(VARIANTS):] + VARIANTS[:round_index % len(VARIANTS)]
            for name in order:
                before = hostinfo.cpu_snapshot()
                if name == "source":
                    data = run_source(video)
                elif name == "model":
                    data = run_model(predictors[0], batch, frames)
                elif name == "sequential":
                    data = run_sequential(video, predictors[0])
                else:
                    count = {"pipelined": 1, "pipelined-2": 2, "auto": choice.workers}[name]
                    data = run_pipelined(video, predictors[:count])
                after = hostinfo.cpu_snapshot()
                data["fps"] = data["frames"] / data["seconds"]
                data["contention"] = hostinfo.contention(before, after)
                if before and after:   # CPU time this process spent per frame: the work, whatever the load
                    data["cpu_ms_per_frame"] = (after["own"] - before["own"]) / data["frames"] * 1e3
                runs[name].append(data)
                load.append((name, data["contention"]))
                print(f"round {round_index + 1}/{rounds} {name:12s} {data['fps']:7.1f} FPS", file=sys.stderr)
    finally:
        for predictor in predictors:
            predictor.close()
    return {"runs": runs, "auto": {"workers": choice.workers, "reason": choice.reason, "stage_ms": choice.stage_ms}}


# ----------------------------------------------------------------------------------- report

def summarize(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    fps = {name: median(r["fps"] for r in data) for name, data in runs.items()}
    bound = min(fps["source"], fps["model"])
    per_round = [min(s["fps"], m["fps"]) for s, m in zip(runs["source"], runs["model"])]
    stage_ms = {k: median(r["stage_ms"][k] for r in runs["sequential"]) for k in
                runs["sequential"][0]["stage_ms"]}
    non_infer = sum(v for k, v in stage_ms.items() if k != "infer")
    others = [r["contention"]["other_processes"] for data in runs.values() for r in data if r.get("contention")]
    cpu = {name: round(median(r["cpu_ms_per_frame"] for r in data), 2) for name, data in runs.items()
           if all("cpu_ms_per_frame" in r for r in data)}
    return {
        "fps_median": {k: round(v, 2) for k, v in fps.items()},
        "bound_fps": round(bound, 2),
        "auto_over_bound": round(fps["auto"] / bound, 3),
        "auto_over_bound_per_round": [round(p["fps"] / b, 3) for p, b in zip(runs["auto"], per_round)],
        "auto_over_model": round(fps["auto"] / fps["model"], 3),
        "pipelined_over_bound": round(fps["pipelined"] / bound, 3),
        "pipelined_over_bound_per_round": [round(p["fps"] / b, 3) for p, b in zip(runs["pipelined"], per_round)],
        "pipelined_over_sequential": round(fps["pipelined"] / fps["sequential"], 3),
        "pipelined2_over_sequential": round(fps["pipelined-2"] / fps["sequential"], 3),
        "sequential_stage_ms": {k: round(v, 2) for k, v in stage_ms.items()},
        "pre_post_share_of_frame": round(non_infer / sum(stage_ms.values()), 3),
        "goal_vs_bound_met": fps["auto"] / bound >= GOAL_VS_BOUND,
        "cpu_ms_per_frame_median": cpu,
        "pipelined_cpu_over_sequential_cpu": (round(cpu["pipelined"] / cpu["sequential"], 3)
                                              if "pipelined" in cpu and "sequential" in cpu else None),
        "other_processes_cpu_share_max": round(max(others), 3) if others else None,
    }


def markdown_table(columns: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def render_markdown(result: dict[str, Any]) -> str:
    s, config, runs = result["summary"], result["config"], result["runs"]
    rows = []
    for name in VARIANTS:
        data = runs[name]
        load = [r["contention"]["other_processes"] for r in data if r.get("contention")]
        cpu = s["cpu_ms_per_frame_median"].get(name)
        rows.append([name, f"{s['fps_median'][name]:.1f}", ", ".join(f"{r['fps']:.1f}" for r in data),
                     f"{cpu:.1f}" if cpu is not None else "-", f"{max(load):.0%}" if load else "-"])
    stages = s["sequential_stage_ms"]
    lines = [f"# Pipeline benchmark, {result['date']}", "",
             f"Run {result['host']['timestamp_utc']} by `benchmarks/pipeline.py` "
             f"({result['duration_seconds']:.0f} s in all).", "",
             f"**Host:** {hostinfo.describe(result['host'])}", "",
             f"**Model:** {Path(config['model']).name} ({config['model_origin']}), LiteRT, "
             f"{config['threads']} thread(s) per interpreter. **Source:** {config['frames']} frames "
             f"{config['size']} {config['codec']} video of scikit-image photos. {config['rounds']} rounds, the "
             "variant order rotating each round.", "",
             "## Throughput", "",
             markdown_table(["variant", "median FPS", "per round", "CPU ms / frame", "other processes (max)"], rows),
             "",
             "*CPU ms / frame*: CPU time of this process (all its threads) per frame, the work done whatever the "
             "load; pipelining should add little to the sequential loop's (it only moves work onto threads).", "",
             f"- **default `edgekit run` (--workers auto: {result['auto']['reason']}) / min(source, model) = "
             f"{s['auto_over_bound']:.3f}** (goal ≥ {GOAL_VS_BOUND}; per round "
             f"{', '.join(map(str, s['auto_over_bound_per_round']))}): {'met' if s['goal_vs_bound_met'] else 'NOT met'}; "
             f"auto / model alone = {s['auto_over_model']:.3f}.",
             f"- pipelined, 1 worker / min(source, model) = {s['pipelined_over_bound']:.3f} (per round "
             f"{', '.join(map(str, s['pipelined_over_bound_per_round']))}).",
             f"- **pipelined / sequential = {s['pipelined_over_sequential']:.3f}** (2 workers: "
             f"{s['pipelined2_over_sequential']:.3f}); CPU per frame pipelined / sequential = "
             f"{s['pipelined_cpu_over_sequential_cpu']}.",
             f"- Sequential loop per frame: read {stages['read']:.1f} ms, prepare {stages['prepare']:.1f} ms, "
             f"infer {stages['infer']:.1f} ms, decode+draw {stages['decode+draw']:.1f} ms: pre/post is "
             f"{s['pre_post_share_of_frame']:.0%} of a frame.", ""]
    if (s["other_processes_cpu_share_max"] or 0) > 0.2:
        lines += [f"**Caution:** other processes used up to {s['other_processes_cpu_share_max']:.0%} of the CPUs "
                  "during a measurement: the FPS are deflated and the ratios noisier than usual.", ""]
    lines += ["Pipelined runs include starting and joining the pipeline's threads. *model* is "
              "Predictor.infer alone on one prepared frame (quantize + invoke + dequantize).", "",
              f"Raw numbers: [{result['json_name']}]({result['json_name']}).", ""]
    return "\n".join(lines)


def readme_entry(result: dict[str, Any], md_name: str, json_name: str) -> str:
    s, config, workers = result["summary"], result["config"], result["auto"]["workers"]
    return (f"## {result['date']} — pipeline ([table]({md_name}), [raw JSON]({json_name}))\n\n"
            f"EfficientNet-Lite0 int8 on {result['host']['cpu']}, LiteRT {config['threads']} thread(s), "
            f"{config['size']} {config['codec']} file: default `edgekit run` (--workers auto, "
            f"{workers} worker{'s' if workers != 1 else ''}) / min(source, model) **{s['auto_over_bound']:.3f}** (goal ≥ "
            f"{GOAL_VS_BOUND}); 1 worker {s['pipelined_over_bound']:.3f}; pipelined/sequential "
            f"**{s['pipelined_over_sequential']:.2f}** (2 workers {s['pipelined2_over_sequential']:.2f}); "
            f"pre/post {s['pre_post_share_of_frame']:.0%} of a sequential frame; CPU per frame pipelined/sequential "
            f"{s['pipelined_cpu_over_sequential_cpu']}. Other processes used up to "
            f"{(s['other_processes_cpu_share_max'] or 0):.0%} of the CPUs.\n")


# ----------------------------------------------------------------------------------- main

def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=240, help="frames in the video (default 240)")
    parser.add_argument("--size", default="960x540", help="video WIDTHxHEIGHT (default 960x540)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every variant (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="LiteRT threads per interpreter (default 1)")
    parser.add_argument("--model", type=Path, help="an EfficientNet-Lite0 int8 .tflite with its manifest")
    parser.add_argument("--out-dir", type=Path, default=HERE / "results")
    parser.add_argument("--json", action="store_true", help="print the JSON result instead of the summary")
    args = parser.parse_args(argv)
    try:
        args.size = tuple(int(v) for v in args.size.lower().split("x"))
        if len(args.size) != 2 or min(args.size) < 16:
            raise ValueError
    except ValueError:
        parser.error(f"--size {args.size!r} is not WIDTHxHEIGHT, e.g. 960x540")
    if args.frames < 10 or args.rounds < 1 or args.threads < 1:
        parser.error("--frames must be at least 10, --rounds and --threads at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from edgekit import deps

    missing = deps.missing(*NEEDS) or (None if shutil.which("ffmpeg") else "needs ffmpeg (apt install ffmpeg)")
    if missing:
        print(f"error: {missing}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    model, origin = ensure_model(args.model)
    video, codec = ensure_video(args.size, args.frames)
    data = measure(model, video, args.frames, args.rounds, args.threads)
    now = datetime.now(timezone.utc)
    result = {"date": now.strftime("%Y-%m-%d"), "host": hostinfo.collect(),
              "config": {"model": str(model), "model_origin": origin, "video": str(video), "codec": codec,
                         "size": f"{args.size[0]}x{args.size[1]}", "frames": args.frames, "rounds": args.rounds,
                         "threads": args.threads, "warmup": WARMUP},
              "runs": data["runs"], "auto": data["auto"], "summary": summarize(data["runs"]),
              "duration_seconds": round(time.perf_counter() - started, 1)}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"pipeline-{now.strftime('%Y-%m-%d-%H%M%S')}"
    result["json_name"] = f"{stem}.json"
    (args.out_dir / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out_dir / f"{stem}.md").write_text(render_markdown(result))
    hostinfo.update_readme(args.out_dir / "README.md", readme_entry(result, f"{stem}.md", f"{stem}.json"))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(readme_entry(result, f"{stem}.md", f"{stem}.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
