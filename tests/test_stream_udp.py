"""A UDP MPEG-TS network source with real components: ffmpeg sends a live test pattern to
udp://127.0.0.1:PORT, `edgekit run` reads it through OpenCV's FFmpeg; the sender is killed
mid-run and restarted, and the same pipeline notices, reconnects and carries on.

UDP has no connection: a dead sender is only noticed by the source's read timeout, and an open
waits (up to the open timeout) for packets to arrive. As in test_stream.py, the only timing
assertion is the reconnect budget (results within 3 s of the stream's return).
"""
from __future__ import annotations

import socket
import subprocess

from test_stream import FFMPEG, assert_classified_lines, edgekit, lines_of, needs_ffmpeg, through_an_outage


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def udp_sender(port: int) -> subprocess.Popen:
    """ffmpeg sending a live 15 FPS MPEG-2 test pattern as MPEG-TS over UDP to 127.0.0.1:PORT
    (7 TS packets a datagram, as IPTV senders do)."""
    return subprocess.Popen([FFMPEG, "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i",
                             "testsrc=size=320x240:rate=15", "-c:v", "mpeg2video", "-q:v", "5", "-f", "mpegts",
                             f"udp://127.0.0.1:{port}?pkt_size=1316"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(process: subprocess.Popen) -> None:
    process.kill()
    process.wait()


@needs_ffmpeg
def test_udp_mpegts_stream_to_jsonl(tmp_path, stream_model):
    port = free_udp_port()
    results = tmp_path / "udp.jsonl"
    sender = udp_sender(port)
    try:
        proc = edgekit("run", stream_model, "--source", f"udp://127.0.0.1:{port}", "--jsonl", results,
                       "--max-frames", 30, "--max-retries", 5)
    finally:
        stop(sender)
    assert proc.returncode == 0, proc.stderr
    assert f"30 frames from stream udp://127.0.0.1:{port} (max frames)" in proc.stdout
    assert f"wrote {results} (30 lines)" in proc.stdout
    # the stream never dropped (a first open racing the sender's start may be retried, nothing else)
    assert all(line.startswith("retry: ") for line in lines_of(proc.stderr)), proc.stderr
    assert_classified_lines(results, 30)


@needs_ffmpeg
def test_udp_stream_dropped_and_restored_reconnects_within_3_s(stream_model):
    port = free_udp_port()
    url = f"udp://127.0.0.1:{port}"
    # nothing tells a UDP receiver that the sender is gone: the read timeout does
    after = through_an_outage(stream_model, url, lambda: udp_sender(port))
    assert f"stream {url} is back" == after[-1].message
