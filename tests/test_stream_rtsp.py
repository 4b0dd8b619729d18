"""An RTSP source with real components: GStreamer's gst-rtsp-server (tests/rtsp_server.py) serves
a live RTP/JPEG test pattern on 127.0.0.1, `edgekit run` reads it through OpenCV's FFmpeg; the
server is killed mid-run and restarted, and the same pipeline notices, reconnects and carries on.

The server runs under the system Python (Debian's python3-gi and gir1.2-gst-rtsp-server-1.0,
installed by .ci/run); without them these tests skip with that reason. As in test_stream.py, the
only timing assertion is the reconnect budget (results within 3 s of the stream's return).
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from test_stream import assert_classified_lines, edgekit, free_port, lines_of, through_an_outage

SERVER = Path(__file__).with_name("rtsp_server.py")
SYSTEM_PYTHON = "/usr/bin/python3"
PACKAGES = "python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good"


def rtsp_server_missing() -> str | None:
    probe = ("import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
             "from gi.repository import Gst; Gst.init(None); "
             "missing = [n for n in ('videotestsrc', 'videoconvert', 'jpegenc', 'rtpjpegpay') "
             "if Gst.ElementFactory.find(n) is None]; assert not missing, missing")
    try:
        done = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"no {SYSTEM_PYTHON} to run gst-rtsp-server ({exc})"
    if done.returncode != 0:
        return f"gst-rtsp-server is not installed for {SYSTEM_PYTHON} (apt-get install {PACKAGES})"
    return None


@pytest.fixture(scope="module")
def rtsp(tmp_path_factory):
    reason = rtsp_server_missing()
    if reason:
        pytest.skip(reason)
    servers: list[subprocess.Popen] = []
    logs = tmp_path_factory.mktemp("rtsp")

    def start(port: int) -> subprocess.Popen:
        log = logs / f"server-{len(servers)}.log"   # a file: GStreamer's warnings never fill a pipe
        with open(log, "w") as errors:
            server = subprocess.Popen([SYSTEM_PYTHON, str(SERVER), str(port)], stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=errors, text=True)
        servers.append(server)
        line = server.stdout.readline().strip()   # "ready" once it listens, or EOF if it died
        if line != "ready":
            server.kill()
            raise AssertionError(f"the RTSP server did not start: {log.read_text()[-500:]}")
        return server

    yield start
    for server in servers:
        stop(server)


def stop(process: subprocess.Popen) -> None:
    process.kill()
    process.wait()


def test_rtsp_stream_to_jsonl(tmp_path, stream_model, rtsp):
    port = free_port()
    url = f"rtsp://127.0.0.1:{port}/live"
    results = tmp_path / "rtsp.jsonl"
    server = rtsp(port)
    try:
        proc = edgekit("run", stream_model, "--source", url, "--jsonl", results, "--max-frames", 30,
                       "--max-retries", 3)
    finally:
        stop(server)
    assert proc.returncode == 0, proc.stderr
    assert f"30 frames from stream {url} (max frames)" in proc.stdout
    assert f"wrote {results} (30 lines)" in proc.stdout
    assert lines_of(proc.stderr) == [], proc.stderr
    assert_classified_lines(results, 30)


def test_rtsp_server_dropped_and_restored_reconnects_within_3_s(stream_model, rtsp):
    port = free_port()
    url = f"rtsp://127.0.0.1:{port}/live"
    after = through_an_outage(stream_model, url, lambda: rtsp(port))
    assert f"stream {url} is back" == after[-1].message
