"""`edgekit run`: live inference from a camera, video file, network stream, image folder or
synthetic frames to a window, an MP4, a live web page and/or JSON lines."""
from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

from .common import THREADS, debug_enabled, json_option

AUTO_SERVE = "0.0.0.0:8080"


def _frame_size(ctx, param, value):
    if value is None:
        return None
    parts = value.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise click.BadParameter(f"'{value}' is not WIDTHxHEIGHT (e.g. 640x480)")
    return int(parts[0]), int(parts[1])


def _workers(ctx, param, value):
    """'auto', or a count of at least 1."""
    if value is None or str(value).lower() == "auto":
        return "auto"
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise click.BadParameter(f"'{value}' is not a count of 1 or more, nor 'auto'")
    return count


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--source", required=True,
              help="Camera index or /dev/videoN, video file, rtsp/http/udp URL, image folder or glob, or 'synthetic'.")
@click.option("--backend", help="Runtime backend (default: by the model's format).")
@click.option("--device", help="Device for the backend (e.g. CPU, GPU, NPU for OpenVINO).")
@click.option("--threads", type=THREADS, help="CPU threads per inference worker (litert, openvino CPU, onnxruntime).")
@click.option("--workers", callback=_workers, default="auto", show_default=True, metavar="N|auto",
              help="Inferences in flight (one model instance each: LiteRT interpreters, OpenVINO compiled models); "
                   "auto: from the cores and this model's measured stage times (1 on accelerators).")
@click.option("--size", callback=_frame_size, help="Frame size WIDTHxHEIGHT (cameras and synthetic).")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), help="Frame rate (cameras and synthetic).")
@click.option("--loop", is_flag=True, help="Video file: start again at its end, until stopped (live demos).")
@click.option("--realtime", is_flag=True,
              help="Video file: deliver frames at the file's own frame rate, like a camera (newest frame "
                   "first, end-to-end latency measured), instead of as fast as they are processed.")
@click.option("--save", type=click.Path(path_type=Path),
              help="Write the annotated video here (H.264 .mp4, .mkv, .mov); for an image folder source, "
                   "a folder for the annotated images.")
@click.option("--serve", metavar="HOST:PORT", help="Serve a live web page with the annotated stream and stats.")
@click.option("--serve-token", metavar="TOKEN",
              help="Access token the web page requires (default: a new random one, printed in the URL).")
@click.option("--no-auth", is_flag=True,
              help="Serve the web page without an access token: anyone who reaches the port sees the stream.")
@click.option("--jsonl", metavar="FILE|-", help="One JSON line per frame (timestamp, frame id, latency, results).")
@click.option("--window/--no-window", default=None, help="Show an OpenCV window (default: when a display exists "
              "and no other output is chosen).")
@click.option("--max-retries", type=click.IntRange(min=0), default=10, show_default=True,
              help="Reopen attempts for a live source that is down, before giving up.")
@click.option("--max-frames", type=click.IntRange(min=1), help="Stop after this many frames.")
@click.option("--top-k", type=click.IntRange(min=1), default=5, show_default=True, help="Classes kept per frame.")
@json_option
def run(model, source, backend, device, threads, workers, size, fps, loop, realtime, save, serve, serve_token, no_auth,
        jsonl, window, max_retries, max_frames, top_k, as_json):
    """Run MODEL live on frames from --source and show, save, serve or log the results.

    \b
    Without --save, --serve or --jsonl the results go to a window when a display exists,
    otherwise to a web page on 0.0.0.0:8080. The page needs an access token, printed in its
    URL (--serve-token to choose it, --no-auth for none). Ctrl-C, SIGTERM and SIGHUP stop
    cleanly: the video plays and the JSON lines are complete (exit 0, 143, 129).
    JSON lines are flushed one by one (tail -f works); each names its frame's file or
    stream position. An image folder with --save DIR writes annotated images to DIR.
    A video file is read as fast as it is processed (no frame lost, no end-to-end latency:
    queueing is not latency); --realtime plays it at its own rate like a camera, --loop
    starts it again at its end, so a file can drive a live demo.

    \b
    Examples:
      edgekit run out/model_int8_edgetpu.tflite --source 0
      edgekit run out/model.xml --device CPU --source rtsp://cam.local/stream --serve 0.0.0.0:8080
      edgekit run out/model_int8.tflite --source clip.mp4 --save annotated.mp4 --jsonl results.jsonl
      edgekit run out/model_int8.tflite --source photos/ --save annotated/ --jsonl - --max-frames 10
      edgekit run out/model_int8.tflite --source synthetic --fps 15 --serve 127.0.0.1:8080 --no-auth
      edgekit run out/model_int8.tflite --source clip.mp4 --loop --realtime --serve 0.0.0.0:8080
    """
    from ..ui import console, print_json
    from ..views.run import render_run

    err = console(stderr=True)
    validate(as_json, jsonl, window)
    frame_source = open_feed(source, size, fps, loop, realtime)
    sinks = choose_sinks(model, frame_source, save, serve, serve_token, no_auth, jsonl, window, err)
    result = run_pipeline(model, backend, device, threads, workers, top_k, frame_source, sinks, max_retries,
                          max_frames, err)
    if as_json:
        print_json(result.to_dict())
    else:
        render_run(result, console(stderr=jsonl == "-"))   # stdout carries the JSON lines then
    exit_policy()


def validate(as_json: bool, jsonl: str | None, window: bool | None) -> None:
    """Refuse contradictory outputs (exit 2) before any camera or model is opened."""
    from ..errors import EdgekitError
    from ..stream.sinks.window import display_unavailable_reason

    if as_json and jsonl == "-":
        raise EdgekitError("--json and --jsonl - both write to stdout", "write the JSON lines to a file: --jsonl FILE")
    if window and display_unavailable_reason():
        raise EdgekitError(f"--window: {display_unavailable_reason()}", "use --serve HOST:PORT, --save or --jsonl")


def open_feed(source: str, size, fps, loop: bool = False, realtime: bool = False):
    """The camera, file, stream, folder or synthetic feed the user named (checked, not opened yet)."""
    from ..stream import open_feed as open_stream_feed

    return open_stream_feed(source, size=size, fps=fps, loop=loop, realtime=realtime)


def choose_sinks(model, frame_source, save, serve, serve_token, no_auth, jsonl, window, err) -> list:
    """The outputs asked for; with none, a window when there is a display, else the web page."""
    from ..errors import EdgekitError
    from ..stream import SINKS
    from ..stream.sinks.window import display_unavailable_reason

    auto = not (save or serve or jsonl or window)
    sinks = []
    if window or (auto and window is None and display_unavailable_reason() is None):
        sinks.append(SINKS.get("window")(title=f"edgekit: {Path(model).name}"))
    elif auto and window is None:
        serve = AUTO_SERVE
        err.print(f"no display and no output chosen: serving the live view on {AUTO_SERVE}"
                  f"{'' if no_auth else ' with an access token'} (choose with --serve, --save, --jsonl)")
    token = _serve_token(serve, serve_token, no_auth)
    if serve:
        sinks.append(SINKS.get("web")(serve, token=token))
    if save and frame_source.kind == "image folder":   # a video of photos would last a fraction of a second
        sinks.append(SINKS.get("stills")(save))
    elif save:
        sinks.append(SINKS.get("video")(save))   # the source's own timing, read once it is open
    if jsonl:
        sinks.append(SINKS.get("jsonl")(jsonl))
    if not sinks:
        raise EdgekitError("no output: --no-window without --save, --serve or --jsonl",
                           "add an output, e.g. --jsonl - or --serve 127.0.0.1:8080")
    return sinks


def run_pipeline(model, backend, device, threads, workers, top_k, frame_source, sinks, max_retries, max_frames, err):
    """Open the sinks (a bad path or busy port fails first), then one predictor per worker,
    then run; on any failure before the run, opened sinks leave nothing behind."""
    from ..runtime.predictor import open_predictor
    from ..stream import Pipeline
    from ..ui import native_output_captured

    opened, predictors = [], []
    try:
        for sink in sinks:
            sink.open()
            opened.append(sink)
            if sink.name == "web":
                err.print(f"serving {sink.url}")
        choice = None
        with native_output_captured(not debug_enabled()):   # runtimes announce their delegates on stderr
            predictors.append(open_predictor(model, backend, device, top_k=top_k, threads=threads))
            if workers == "auto":
                from ..stream.workers import choose_workers

                choice = choose_workers(predictors[0], threads, frame_source.size)
                workers = choice.workers
            for _ in range(workers - 1):
                predictors.append(open_predictor(model, backend, device, top_k=top_k, threads=threads))
    except BaseException:
        for sink in opened:
            sink.discard()
        for predictor in predictors:
            predictor.close()
        raise

    pipeline = Pipeline(frame_source, predictors, sinks, max_retries=max_retries, max_frames=max_frames,
                        on_event=lambda event: err.print(f"{event.kind}: {event.message}", markup=False))
    try:
        result = pipeline.run()
        result.workers_auto = choice.reason if choice else None
        return result
    finally:
        for predictor in predictors:
            predictor.close()


def exit_policy() -> None:
    """0 after Ctrl-C or the end of the feed; SIGTERM and SIGHUP exit 143 and 129 once the
    outputs are final, so a supervisor sees who stopped the run."""
    from .. import interrupt

    if interrupt.received() not in (None, signal.SIGINT):
        sys.exit(interrupt.exit_code())


def _serve_token(serve: str | None, token: str | None, no_auth: bool) -> str | None:
    """The web page's access token: --serve-token, none with --no-auth, else a new random one."""
    from ..errors import EdgekitError
    from ..stream.sinks.web import new_token

    if token is not None and no_auth:
        raise EdgekitError("--serve-token and --no-auth contradict each other", "drop one of them")
    if not serve and (token is not None or no_auth):
        raise EdgekitError(f"{'--serve-token' if token is not None else '--no-auth'} applies only to the web page",
                           "add --serve HOST:PORT")
    if token is not None and (len(token) < 8 or not token.isprintable() or " " in token):
        raise EdgekitError("--serve-token must be at least 8 printable characters without spaces",
                           "drop it to get a random token")
    if not serve or no_auth:
        return None
    return token or new_token()
