"""`edgekit run` and edgekit.stream with real components: a tiny converted TFLite classifier,
video files made by ffmpeg, a network stream served by ffmpeg on 127.0.0.1 that is killed and
restarted, headless Chromium watching the live page, SIGINT during --save.

Only the reconnect budget of the issue (results within 3 s of the stream's return) is a timing
assertion; everything else checks behaviour.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edgekit.errors import EdgekitError

from conftest import CLASSES

pytest.importorskip("cv2")
pytest.importorskip("ai_edge_litert")

FFMPEG = shutil.which("ffmpeg")
FFPROBE = shutil.which("ffprobe")
CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "", shutil.which("chromium-browser") or "")
                 if p and os.path.exists(p)), None)
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None or FFPROBE is None, reason="ffmpeg/ffprobe not installed "
                                  "(Debian package ffmpeg; .ci/run installs it)")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian package chromium)")
EDGEKIT = [sys.executable, "-m", "edgekit"]


# -- fixtures and helpers ------------------------------------------------------------------------
def assert_dropped_and_restored(events, results, marks, summary) -> list:
    """What a live stream that dies and comes back must show: the drop, retries, one reconnect,
    results again within 3 s of the stream's return, one frame counter throughout. Returns the
    events from the drop on."""
    assert "error" not in marks, f"{marks.get('error')}; events: {[e.message for e in events]}"
    after = events[marks["events_before_drop"]:]
    kinds = [e.kind for e in after]
    assert kinds[0] == "dropped" and kinds[-1] == "reconnected" and set(kinds[1:-1]) == {"retry"}, kinds
    first_new = min(t for t, r in results if r.generation == 1)
    print(f"results resumed {first_new - marks['restored']:.2f} s after the stream's return")
    assert first_new - marks["restored"] < 3.0, "results did not resume within 3 s of the stream's return"
    assert summary.reconnects == 1 and summary.retries == sum(e.kind == "retry" for e in events)
    assert summary.stopped == "stopped"
    ids = [r.frame_id for _, r in results]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)           # one frame counter across the reconnect
    return after


@pytest.fixture(scope="session")
def clip(tmp_path_factory) -> Path:
    """A 24-frame 320x240 MPEG-4 clip made by ffmpeg."""
    if FFMPEG is None:
        pytest.skip("ffmpeg not installed")
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc=size=320x240:rate=12:duration=2", "-c:v", "mpeg4", "-q:v", "5", str(path)], check=True)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def edgekit(*args, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    """The real CLI in a subprocess (a hang fails the test through the timeout)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    return subprocess.run([*EDGEKIT, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env,
                          **kwargs)


def frame_count(video: Path) -> int:
    return int(probe_video(video)["nb_read_frames"])


def probe_video(video: Path) -> dict:
    """ffprobe's view of the first video stream: codec, frame rates, duration, decoded frame count.
    ffprobe fails on an MP4 without its index (moov atom), so a result means the file plays."""
    probe = subprocess.run([FFPROBE, "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                            "stream=nb_read_frames,codec_name,width,height,pix_fmt,avg_frame_rate,r_frame_rate,duration",
                            "-of", "json", str(video)], capture_output=True, text=True, check=True)
    return json.loads(probe.stdout)["streams"][0]


def lines_of(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# -- sources, channel, overlay (library level) ---------------------------------------------------
def test_run_help_has_examples_and_json(run_cli):
    code, out, _ = run_cli("run", "--help")
    assert code == 0 and "Examples:" in out and "--json" in out and "--max-retries" in out
    code, out, _ = run_cli("--help")
    assert code == 0 and " run " in out


def test_feed_kinds_are_picked_from_the_spec(tmp_path, clip, photos_dir):
    from edgekit.stream import open_feed

    assert open_feed("synthetic").kind == "synthetic"
    assert open_feed(str(clip)).kind == "video file"
    assert open_feed(str(photos_dir)).kind == "image folder"
    assert open_feed(str(photos_dir / "*_chelsea*.png")).kind == "image folder"
    for url in ("rtsp://cam.local/stream", "http://127.0.0.1:9/x.mjpg", "udp://127.0.0.1:5000"):
        assert open_feed(url).kind == "network"
    with pytest.raises(EdgekitError, match=r"source 'nothing-here\.mp4' is not a camera index, /dev/videoN, URL"):
        open_feed("nothing-here.mp4")
    with pytest.raises(EdgekitError, match=r"--size is not supported by video file sources"):
        open_feed(str(clip), size=(640, 480))


def test_missing_camera_is_one_line_naming_the_device():
    from edgekit.stream import open_feed
    from edgekit.stream.feeds.camera import cameras

    index = next(i for i in range(60, 100) if f"/dev/video{i}" not in cameras())
    with pytest.raises(EdgekitError, match=rf"camera {index} does not exist \(no /dev/video{index}\)"):
        open_feed(str(index))


def test_live_channel_drops_oldest_and_file_channel_blocks():
    from edgekit.stream.channel import CLOSED, Channel

    live = Channel(2, drop_oldest=True)
    for item in range(5):
        assert live.put(item)
    assert (live.get(), live.get(), live.dropped) == (3, 4, 3)
    live.close()
    assert live.get() is CLOSED

    bounded = Channel(1)
    bounded.put("a")
    blocked = threading.Thread(target=bounded.put, args=("b",))
    blocked.start()
    blocked.join(0.3)
    assert blocked.is_alive()            # backpressure: the producer waits for the consumer
    assert bounded.get() == "a"
    blocked.join(5)
    assert bounded.get() == "b"
    bounded.cancel()
    assert bounded.get() is CLOSED


def test_overlay_draws_classes_boxes_mask_and_hud():
    from edgekit.runtime.results import Classification, Detection, Prediction
    from edgekit.stream.overlay import annotate, palette

    image = np.full((240, 320, 3), 128, np.uint8)
    mask = np.zeros((240, 320), np.int32)
    mask[150:200, 200:300] = 3
    prediction = Prediction("detection", classes=[Classification(1, "cat", 0.9)],
                            detections=[Detection([40, 60, 140, 160], 2, "dog", 0.75)], mask=mask)
    out = annotate(image, prediction, {"fps": 30.0, "infer_ms": 5.0, "latency_ms": 20.0, "backend": "litert",
                                       "model": "m.tflite"})
    assert np.array_equal(image, np.full_like(image, 128))          # the source frame is untouched
    colours = palette()
    assert tuple(out[110, 40]) == tuple(colours[2])                  # left edge of the box, in its class colour
    assert not np.array_equal(out[175, 250], image[175, 250])        # mask blended over its pixels
    assert np.array_equal(out[100, 250], image[100, 250])            # background (id 0) left alone
    assert not np.array_equal(out[8:30, 8:60], image[8:30, 8:60])    # class label box
    assert not np.array_equal(out[-20:, 5:200], image[-20:, 5:200])  # HUD line at the bottom


# -- CLI: files in, files out --------------------------------------------------------------------
@needs_ffmpeg
def test_video_file_to_mp4_and_jsonl_keeps_every_frame_in_order(tmp_path, stream_model, clip):
    saved, results = tmp_path / "annotated.mp4", tmp_path / "results.jsonl"
    proc = edgekit("run", stream_model, "--source", clip, "--save", saved, "--jsonl", results, "--workers", "2",
                   "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["stopped"] == "end of source" and summary["frames"] == 24 and summary["dropped"] == 0
    assert f"saved {saved} (24 frames)" in summary["outputs"]
    records = [json.loads(line) for line in lines_of(results.read_text())]
    assert [r["frame_id"] for r in records] == list(range(24))      # two workers, drawn in frame order
    from edgekit.photos import PHOTOS

    for record in records:
        # a file is read as fast as it is processed: queueing is no latency, so none is reported
        assert record["latency_ms"] is None and record["infer_ms"] > 0 and record["file"] is None
        classes = record["results"]["classes"]
        assert len(classes) == 5 and classes[0]["label"] in PHOTOS[:CLASSES]
        assert classes[0]["score"] >= classes[1]["score"]
    assert frame_count(saved) == 24
    assert sorted(p.name for p in tmp_path.iterdir()) == ["annotated.mp4", "results.jsonl"]  # no temp files left


def test_folder_source_skips_and_reports_an_unreadable_image(tmp_path, stream_model, photos_dir):
    folder = tmp_path / "shots"
    folder.mkdir()
    for photo in sorted(photos_dir.iterdir())[:3]:
        shutil.copy(photo, folder / photo.name)
    (folder / "001_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    proc = edgekit("run", stream_model, "--source", folder, "--jsonl", "-")
    assert proc.returncode == 0, proc.stderr
    assert len(lines_of(proc.stdout)) == 3                               # stdout is only the JSON lines
    assert f"skipped: unreadable image {folder / '001_broken.jpg'}" in proc.stderr
    assert "3 frames from images" in proc.stderr and "skipped 1 unreadable file(s)" in proc.stderr


def test_bad_inputs_are_one_line_errors(tmp_path, stream_model):
    missing = next(i for i in range(60, 100) if not os.path.exists(f"/dev/video{i}"))
    proc = edgekit("run", stream_model, "--source", missing, "--jsonl", tmp_path / "r.jsonl")
    assert proc.returncode == 2
    assert lines_of(proc.stderr) == [lines_of(proc.stderr)[0]] and \
        f"error: camera {missing} does not exist (no /dev/video{missing})" in proc.stderr

    port = free_port()   # nothing listens there: connection refused on every attempt
    proc = edgekit("run", stream_model, "--source", f"http://127.0.0.1:{port}/live.mjpg", "--max-retries", "2",
                   "--jsonl", tmp_path / "r.jsonl", timeout=60)
    assert proc.returncode == 2
    errors = lines_of(proc.stderr)
    assert [line.split(":")[0] for line in errors] == ["retry", "retry", "error"], proc.stderr
    assert "attempt 1/2 in 0.25 s" in errors[0] and "attempt 2/2 in 0.50 s" in errors[1]
    assert errors[2].startswith(f"error: gave up on stream http://127.0.0.1:{port}/live.mjpg after 2 retries: "
                                "cannot open stream")
    assert not list(tmp_path.iterdir())                               # the run never started: no file left

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = edgekit("run", stream_model, "--source", "synthetic", "--serve", f"127.0.0.1:{port}")
    assert proc.returncode == 2
    assert lines_of(proc.stderr) == [f"error: cannot serve on 127.0.0.1:{port}: the port is already in use. "
                                     "stop the other server or pick another port with --serve HOST:PORT"]

    proc = edgekit("run", stream_model, "--source", "synthetic", "--window")   # the helper unsets DISPLAY
    assert proc.returncode == 2 and lines_of(proc.stderr) == [
        "error: --window: there is no display (DISPLAY and WAYLAND_DISPLAY are unset). "
        "use --serve HOST:PORT, --save or --jsonl"]

    proc = edgekit("run", stream_model, "--source", "synthetic", "--save", tmp_path / "out.gif")
    assert proc.returncode == 2 and "cannot save video as" in proc.stderr and "use one of: .mp4" in proc.stderr


# -- live sources, shutdown -----------------------------------------------------------------------
def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def mjpeg_server(port: int) -> subprocess.Popen:
    """ffmpeg serving a live HTTP MJPEG stream (multipart/x-mixed-replace) to one client on 127.0.0.1."""
    return subprocess.Popen([FFMPEG, "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i",
                             "testsrc=size=320x240:rate=15", "-f", "mpjpeg", "-q:v", "5", "-listen", "1",
                             f"http://127.0.0.1:{port}/live.mjpg"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def other_threads(baseline: set) -> list[str]:
    return sorted(t.name for t in threading.enumerate() if t not in baseline and t.is_alive())


def assert_classified_lines(path: Path, count: int) -> None:
    """COUNT JSON lines at PATH, one per frame in frame order, each classified by the tiny model."""
    from edgekit.photos import PHOTOS

    records = [json.loads(line) for line in lines_of(path.read_text())]
    ids = [r["frame_id"] for r in records]
    assert len(records) == count and ids == sorted(ids) and len(set(ids)) == count
    for record in records:
        assert record["latency_ms"] >= record["infer_ms"] > 0
        assert record["results"]["classes"][0]["label"] in PHOTOS[:CLASSES]


def through_an_outage(model: Path, url: str, start_server) -> list:
    """A Pipeline on URL through an outage of its server: once 10 results came, the server
    (start_server() started it) is killed; once the drop and a failed reopen were reported, it is
    started again; the run stops after 10 results from the reconnected stream. Checks what
    assert_dropped_and_restored checks, the drop's message, and a clean shutdown: no thread of
    ours and no child process left (every server is killed first). Returns the events from the
    drop on."""
    import psutil

    from edgekit.runtime.predictor import open_predictor
    from edgekit.stream import Pipeline, open_feed

    baseline = set(threading.enumerate())
    results: list = []   # (perf_counter at delivery, FrameResult)
    events: list = []
    marks: dict = {}
    servers = [start_server()]
    try:
        with open_predictor(model) as predictor:
            pipeline = Pipeline(open_feed(url), [predictor], max_retries=30, on_event=events.append,
                                on_result=lambda r: results.append((time.perf_counter(), r)))

            def since_drop(kind: str) -> bool:
                return any(e.kind == kind for e in events[marks["events_before_drop"]:])

            def control():
                try:
                    wait_for(lambda: len(results) >= 10, 30, "first results")
                    marks["events_before_drop"] = len(events)   # the first open may have raced the server's start
                    servers[0].kill()
                    servers[0].wait()
                    # a closed connection is noticed at once; a silent UDP/RTP stream by the read timeout
                    wait_for(lambda: since_drop("dropped"), 30, "the drop to be noticed")
                    wait_for(lambda: since_drop("retry"), 30, "a failed reopen while the server is down")
                    marks["restored"] = time.perf_counter()
                    servers.append(start_server())
                    wait_for(lambda: sum(r.generation == 1 for _, r in results) >= 10, 30, "results after the return")
                except BaseException as exc:
                    marks["error"] = exc
                finally:
                    pipeline.stop()

            controller = threading.Thread(target=control, name="test-control")
            controller.start()
            summary = pipeline.run()
            controller.join(60)
    finally:
        for server in servers:
            server.kill()
            server.wait()
    after = assert_dropped_and_restored(events, results, marks, summary)
    assert f"stream {url} stopped delivering frames; reconnecting" == after[0].message
    assert other_threads(baseline) == []
    assert psutil.Process().children(recursive=True) == []
    return after


@needs_ffmpeg
def test_network_stream_dropped_and_restored_reconnects_within_3_s(stream_model):
    port = free_port()
    through_an_outage(stream_model, f"http://127.0.0.1:{port}/live.mjpg", lambda: mjpeg_server(port))


def test_stop_with_a_web_viewer_connected_leaves_no_thread(stream_model):
    import urllib.request

    import psutil

    from edgekit.runtime.predictor import open_predictor
    from edgekit.stream import SINKS, Pipeline, open_feed

    baseline = set(threading.enumerate())
    web = SINKS.get("web")("127.0.0.1:0")
    web.open()
    received = bytearray()

    def viewer():
        with urllib.request.urlopen(f"http://127.0.0.1:{web.port}/stream.mjpg", timeout=30) as stream:
            while chunk := stream.read(4096):
                received.extend(chunk)

    idle = socket.create_connection(("127.0.0.1", web.port))   # like a browser's preconnect: sends nothing
    watcher = threading.Thread(target=viewer, name="test-viewer")
    watcher.start()
    count = []

    with open_predictor(stream_model) as predictor:
        pipeline = Pipeline(open_feed("synthetic", size=(160, 120), fps=30), [predictor], [web],
                            on_result=lambda r: count.append(r))
        def stop_when_watched():
            try:
                wait_for(lambda: len(received) > 20000, 30, "MJPEG bytes at the viewer")
            finally:
                pipeline.stop()

        stopper = threading.Thread(target=stop_when_watched, name="test-stopper")
        stopper.start()
        summary = pipeline.run()
    stopper.join(10)
    watcher.join(10)
    idle.close()
    assert summary.stopped == "stopped" and summary.frames == len(count) > 0
    assert summary.outputs == [f"served http://127.0.0.1:{web.port}/"]
    assert received.count(b"Content-Type: image/jpeg") >= 2 and b"\xff\xd8" in received
    assert other_threads(baseline) == []
    assert psutil.Process().children(recursive=True) == []


def test_live_source_faster_than_the_sinks_drops_frames_instead_of_lagging(stream_model):
    """A slow consumer (here a sink that takes 20 ms a frame, like a slow display) must not make
    a live source's backlog grow: the lag in frames stays within the pipeline's queue capacity."""
    from edgekit.runtime.predictor import open_predictor
    from edgekit.stream import Pipeline, Sink, open_feed

    class SlowSink(Sink):
        name = "slow"

        def write(self, image, result, stats):
            time.sleep(0.02)

    lags = []
    with open_predictor(stream_model) as predictor:
        pipeline = Pipeline(open_feed("synthetic", size=(96, 64), fps=300), [predictor], [SlowSink()],
                            max_frames=60, on_result=lambda r: lags.append(pipeline.capture.frames - 1 - r.frame_id))
        summary = pipeline.run()
    assert summary.frames == 60 and summary.dropped > 0
    # at most one frame per place a frame can be: the source slot, preparing, prepared, inferring,
    # 2 inferred, drawing, drawn, in the sink (9), +1 for the frame being read
    assert max(lags[30:]) <= 10, lags


def test_sigint_during_save_leaves_a_playable_mp4(tmp_path, stream_model):
    import cv2

    saved, results = tmp_path / "live.mp4", tmp_path / "live.jsonl"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    proc = subprocess.Popen([*EDGEKIT, "run", str(stream_model), "--source", "synthetic", "--size", "320x240",
                             "--fps", "20", "--save", str(saved), "--jsonl", str(results)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_for(lambda: any(p.name.startswith(".live.") and p.stat().st_size > 20000 for p in tmp_path.iterdir()),
                 90, "frames being written to the temporary video")
        assert not saved.exists()              # only complete files appear under the target's name
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, err
    assert "(interrupted)" in out and f"saved {saved}" in out
    frames = frame_count(saved) if FFPROBE else None
    capture = cv2.VideoCapture(str(saved))
    ok, first = capture.read()
    capture.release()
    assert ok and first.shape == (240, 320, 3)
    if frames is not None:
        assert frames == len(lines_of(results.read_text())) > 5     # both sinks got every drawn frame
    assert sorted(p.name for p in tmp_path.iterdir()) == ["live.jsonl", "live.mp4"]


# -- the live page in a real headless Chromium ---------------------------------------------------
class DevTools:
    """A minimal Chrome DevTools Protocol client over a stdlib WebSocket (RFC 6455, client side)."""

    def __init__(self, ws_url: str):
        import base64
        from urllib.parse import urlparse

        url = urlparse(ws_url)
        self.sock = socket.create_connection((url.hostname, url.port), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(f"GET {url.path} HTTP/1.1\r\nHost: {url.hostname}:{url.port}\r\nUpgrade: websocket\r\n"
                          f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                          .encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise RuntimeError(f"DevTools refused the WebSocket: {head[:200]!r}")
        self.next_id = 0

    def _recv_exact(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("DevTools closed the connection")
            data += chunk
        return data

    def _send(self, text: str) -> None:
        payload = text.encode()
        mask = os.urandom(4)
        size = len(payload)
        header = bytes([0x81]) + (bytes([0x80 | size]) if size < 126 else
                                  bytes([0x80 | 126]) + size.to_bytes(2, "big") if size < 65536 else
                                  bytes([0x80 | 127]) + size.to_bytes(8, "big"))
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def _recv(self) -> str:
        message = b""
        while True:
            first, second = self._recv_exact(2)
            size = second & 0x7F
            if size == 126:
                size = int.from_bytes(self._recv_exact(2), "big")
            elif size == 127:
                size = int.from_bytes(self._recv_exact(8), "big")
            message += self._recv_exact(size)
            if first & 0x80:   # FIN: the last fragment
                return message.decode()

    def call(self, method: str, **params):
        self.next_id += 1
        self._send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self._recv())
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def evaluate(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def close(self) -> None:
        self.sock.close()


def page_target(devtools_port: int, url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{devtools_port}/json/list", timeout=10) as reply:
        pages = [t for t in json.load(reply) if t.get("type") == "page" and t.get("url", "").startswith(url)]
    return pages[0]["webSocketDebuggerUrl"] if pages else ""


@needs_chromium
def test_web_page_shows_live_frames_and_stats_in_headless_chromium(tmp_path, stream_model):
    import urllib.request

    import cv2

    port = free_port()
    url = f"http://127.0.0.1:{port}/?token=chromium-test-token"   # the page passes the token on to the stream and stats
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    server = subprocess.Popen([*EDGEKIT, "run", str(stream_model), "--source", "synthetic", "--size", "320x240",
                               "--fps", "15", "--serve", f"127.0.0.1:{port}", "--serve-token", "chromium-test-token"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    profile = tmp_path / "chromium-profile"
    browser = None
    devtools = None
    try:
        def stats():
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats?token=chromium-test-token", timeout=5) as reply:
                return json.load(reply)

        def serving():
            try:
                return stats()["frames"] > 0
            except OSError:
                return False

        wait_for(serving, 90, "the page's /stats to report frames")
        browser = subprocess.Popen([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                                    "--no-first-run", "--disable-background-networking", "--disable-component-update",
                                    "--disable-sync", f"--user-data-dir={profile}", "--remote-debugging-port=0",
                                    "--window-size=900,700", url],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        active = profile / "DevToolsActivePort"
        wait_for(lambda: active.exists() and active.read_text().strip(), 60, "Chromium's DevTools port")
        devtools_port = int(active.read_text().split()[0])
        wait_for(lambda: page_target(devtools_port, url), 30, "the page target")
        devtools = DevTools(page_target(devtools_port, url))
        read_page = ("JSON.stringify({stats: document.getElementById('stats').textContent,"
                     " rect: document.getElementById('stream').getBoundingClientRect()})")
        def page_ready():
            value = devtools.evaluate(read_page)   # None while the page is still loading
            return value is not None and "frame id" in json.loads(value)["stats"] and \
                json.loads(value)["rect"]["width"] > 300   # the <img> has its first decoded frame

        wait_for(page_ready, 30, "stats on the page")

        def look():
            page = json.loads(devtools.evaluate(read_page))
            rect = page["rect"]
            shot = devtools.call("Page.captureScreenshot", format="png",
                                 clip={"x": rect["x"], "y": rect["y"], "width": rect["width"],
                                       "height": rect["height"], "scale": 1})
            import base64

            pixels = cv2.imdecode(np.frombuffer(base64.b64decode(shot["data"]), np.uint8), cv2.IMREAD_COLOR)
            frame_id = int(page["stats"].split("frame id")[1].split()[0])
            return page, pixels, frame_id

        first_page, first_pixels, first_id = look()
        time.sleep(1.5)
        second_page, second_pixels, second_id = look()
    finally:
        if devtools:
            devtools.close()
        if browser:
            os.killpg(browser.pid, signal.SIGKILL)
            browser.wait()
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=60)

    assert first_page["rect"]["width"] == 322 == second_page["rect"]["width"]   # 320 px frames + 1 px border
    assert first_pixels.shape[:2] == (242, 322) and first_pixels.std() > 10   # 320x240 + 1 px border; a picture
    assert np.abs(first_pixels.astype(int) - second_pixels.astype(int)).mean() > 1.0   # and it moves
    assert second_id > first_id and first_page["stats"] != second_page["stats"]    # stats update live
    for text in ("FPS", "latency", "inference", "results"):
        assert text in second_page["stats"]
    assert any(label in second_page["stats"] for label in __import__("edgekit.photos").photos.PHOTOS[:CLASSES])
    assert server.returncode == 0, err
    assert f"serving {url}" in err and f"served {url}" in out
