"""A small web page for headless boards: the live annotated MJPEG stream and live stats.

    GET /             the page: the stream in an <img> and a stats panel refreshed from /stats
    GET /stream.mjpg  multipart/x-mixed-replace JPEG stream (every browser shows it in an <img>)
    GET /stats        JSON: FPS, latency (null for a file read as fast as processed), inference ms,
                      frames, drops, latest results

With an access token (the default of `edgekit run`: a live camera must not be open to the whole
network), every request needs `?token=TOKEN` or `Authorization: Bearer TOKEN`, and gets 401
without it; the printed URL carries the token and the page passes it on to /stats and the stream.

Standard library only (ThreadingHTTPServer). Frames are JPEG-encoded only while a client watches.
"""
from __future__ import annotations

import errno
import hmac
import json
import secrets
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote

from ...errors import EdgekitError
from ..cv import cv2
from .base import SINKS, Sink

BOUNDARY = "edgekitframe"
JPEG_QUALITY = 80

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>edgekit run</title>
<style>
 body{font-family:system-ui,sans-serif;background:#111;color:#eee;margin:0;display:flex;flex-wrap:wrap;gap:16px;padding:16px}
 img{max-width:100%;background:#000;border:1px solid #333}
 pre{font-size:14px;line-height:1.5;min-width:22em;margin:0}
 h1{font-size:16px;margin:0 0 8px 0}
</style></head>
<body>
<div><img id="stream" alt="live stream"></div>
<div><h1 id="title">edgekit run</h1><pre id="stats">waiting for the first frame...</pre></div>
<script>
const auth = location.search;   // ?token=... : the same access token for the stream and the stats
document.getElementById("stream").src = "/stream.mjpg" + auth;
function fmt(v, unit){ return v === null || v === undefined ? "-" : v.toFixed(1) + unit; }
function results(latest){
  if(!latest){ return "-"; }
  const r = latest.results || {};
  const lines = [];
  (r.classes || []).slice(0, 5).forEach(c => lines.push("  " + c.label + "  " + c.score.toFixed(3)));
  (r.detections || []).slice(0, 10).forEach(d => lines.push("  " + d.label + "  " + d.score.toFixed(3) +
      "  [" + d.box.map(v => Math.round(v)).join(", ") + "]"));
  if(r.mask){ lines.push("  mask " + r.mask.shape.join("x") + ", classes " + Object.keys(r.mask.classes).join(" ")); }
  return lines.join("\\n") || "  (none)";
}
async function refresh(){
  try{
    const s = await (await fetch("/stats" + auth, {cache: "no-store"})).json();
    document.getElementById("title").textContent = s.model + " on " + s.backend;
    document.getElementById("stats").textContent =
      "FPS        " + fmt(s.fps, "") + "\\n" +
      (s.live === false ? "" : "latency    " + fmt(s.latency_ms, " ms") + "\\n") +
      "inference  " + fmt(s.infer_ms, " ms") + "\\n" +
      "frames     " + s.frames + "\\n" +
      "dropped    " + s.dropped + "\\n" +
      "reconnects " + s.reconnects + "\\n" +
      "source     " + s.source + "\\n" +
      "frame id   " + (s.latest ? s.latest.frame_id : "-") + "\\n" +
      "results\\n" + results(s.latest);
  }catch(e){
    document.getElementById("stats").textContent = "stream ended (" + e + ")";
  }
}
setInterval(refresh, 500);
refresh();
</script>
</body></html>
"""


def new_token() -> str:
    """A random access token (128 bits, URL-safe)."""
    return secrets.token_urlsafe(16)


def parse_address(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = "", value
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise EdgekitError(f"--serve '{value}' is not HOST:PORT", "e.g. --serve 0.0.0.0:8080 or --serve 127.0.0.1:8080")
    return host, int(port)


class _Server(ThreadingHTTPServer):
    daemon_threads = False   # server_close() joins the handlers, so stopping leaves no thread behind

    def __init__(self, address, handler, sink):
        self.sink = sink
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format, *args):  # noqa: A002  (no access log on our stderr)
        pass

    def setup(self):
        super().setup()
        self.server.sink._track(self.connection, True)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.sink._track(self.connection, False)

    def do_GET(self):  # noqa: N802  (http.server's naming)
        path, _, query = self.path.partition("?")
        sink = self.server.sink
        if not sink.authorized(parse_qs(query).get("token", [None])[0], self.headers.get("Authorization")):
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Bearer realm="edgekit"')
            body = b"401 unauthorized: this live view needs its access token; open the URL edgekit printed\n"
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if path in ("/", "/index.html"):
            self._send(200, "text/html; charset=utf-8", PAGE.encode())
        elif path == "/stats":
            self._send(200, "application/json", json.dumps(sink.stats, default=float).encode())
        elif path == "/stream.mjpg":
            self._stream(sink)
        else:
            self._send(404, "text/plain", b"not found\n")

    def _send(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, sink: WebSink) -> None:
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        seen = -1
        with sink._viewers_lock:
            sink._viewers += 1
        try:
            while True:
                jpeg, seen = sink._next_jpeg(seen)
                if jpeg is None:
                    return
                self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                                 .encode() + jpeg + b"\r\n")
        except OSError:  # the viewer went away
            return
        finally:
            with sink._viewers_lock:
                sink._viewers -= 1


@SINKS.register("web")
class WebSink(Sink):
    name = "web"

    def __init__(self, address: str, token: str | None = None):
        """`token`: the access token every request must carry; None serves without one."""
        self.host, self.port = parse_address(address)
        self.token = token
        self.stats: dict = {"frames": 0, "fps": 0.0, "latency_ms": None, "infer_ms": None, "dropped": 0,
                            "reconnects": 0, "source": "", "model": "", "backend": "", "latest": None}
        self._jpeg: bytes | None = None
        self._seq = 0
        self._closed = False
        self._cond = threading.Condition()
        self._viewers = 0
        self._viewers_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = socket.gethostname() if self.host in ("0.0.0.0", "::") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/" + (f"?token={quote(self.token)}" if self.token else "")

    def authorized(self, query_token: str | None, authorization: str | None) -> bool:
        if self.token is None:
            return True
        given = query_token
        if given is None and authorization and authorization.lower().startswith("bearer "):
            given = authorization[7:].strip()
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def open(self) -> None:
        handler_server = _Server
        if ":" in self.host:
            handler_server = type("_Server6", (_Server,), {"address_family": socket.AF_INET6})
        try:
            self._server = handler_server((self.host, self.port), _Handler, self)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise EdgekitError(f"cannot serve on {self.host}:{self.port}: the port is already in use",
                                   "stop the other server or pick another port with --serve HOST:PORT") from None
            raise EdgekitError(f"cannot serve on {self.host}:{self.port}: {exc.strerror or exc}",
                               "check the address (e.g. 0.0.0.0:8080 for every interface)") from None
        self.port = self._server.server_address[1]   # the real port when 0 was asked for
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="edgekit-web", daemon=True)
        self._thread.start()

    def write(self, image, result, stats) -> None:
        self.stats = stats
        if self._viewers == 0:
            return
        cv = cv2()
        ok, jpeg = cv.imencode(".jpg", image, [cv.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if ok:
            with self._cond:
                self._jpeg = jpeg.tobytes()
                self._seq += 1
                self._cond.notify_all()

    def _next_jpeg(self, seen: int) -> tuple[bytes | None, int]:
        """The newest frame after `seen` (slow viewers skip frames), or None once closed."""
        with self._cond:
            while not self._closed and (self._jpeg is None or self._seq == seen):
                self._cond.wait(0.5)
            return (None, seen) if self._closed else (self._jpeg, self._seq)

    def _track(self, connection, add: bool) -> None:
        with self._viewers_lock:
            (self._connections.add if add else self._connections.discard)(connection)

    def close(self) -> str | None:
        if self._server is None:
            return None
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._server.shutdown()
        with self._viewers_lock:   # unblock handlers waiting on idle keep-alive or preconnect sockets
            for connection in list(self._connections):
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self._server.server_close()
        self._thread.join(5)
        self._server = None
        return f"served {self.url}"
