"""A real RTSP server for the stream tests: GStreamer's gst-rtsp-server serving a live 15 FPS
320x240 test pattern as RTP/JPEG at rtsp://127.0.0.1:PORT/live.

Runs under the system Python, which has the GObject bindings from Debian's python3-gi and
gir1.2-gst-rtsp-server-1.0 (`.ci/run` installs them):

    /usr/bin/python3 tests/rtsp_server.py PORT

Prints "ready" once it listens; serves until killed.
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

PIPELINE = ("( videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=15/1 "
            "! videoconvert ! video/x-raw,format=I420 ! jpegenc ! rtpjpegpay name=pay0 pt=26 )")


def main(port: str) -> None:
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(PIPELINE)
    factory.set_shared(True)   # one pipeline for every client, like a camera
    server.get_mount_points().add_factory("/live", factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{port}")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main(sys.argv[1])
