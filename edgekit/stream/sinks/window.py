"""An OpenCV window; `q` or Esc, or closing the window, ends the run."""
from __future__ import annotations

import os
import re
import sys

from ... import pip_install
from ...errors import EdgekitError
from ..cv import cv2
from .base import SINKS, Sink
from .x11 import send_map_notify


def display_unavailable_reason() -> str | None:
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "there is no display (DISPLAY and WAYLAND_DISPLAY are unset)"
    import importlib.util

    if importlib.util.find_spec("cv2") is None:
        return f"OpenCV is not installed ({pip_install('media')})"
    if gui_backend() == "NONE":
        return "this OpenCV build has no GUI support (opencv-python-headless)"
    return None


def gui_backend() -> str:
    """OpenCV's highgui backend as its build information names it: QT5, GTK3, WIN32UI, NONE, ..."""
    match = re.search(r"GUI:\s+(\S+)", cv2().getBuildInformation())
    return match.group(1).upper() if match else "NONE"


@SINKS.register("window")
class WindowSink(Sink):
    name = "window"

    def __init__(self, title: str = "edgekit"):
        self.title = title
        self._shown = False

    def open(self) -> None:
        reason = display_unavailable_reason()
        if reason:
            raise EdgekitError(f"cannot open a window: {reason}", "use --serve HOST:PORT, --save or --jsonl instead")

    def write(self, image, result, stats) -> bool:
        cv = cv2()
        cv.imshow(self.title, image)
        key = cv.waitKey(1) & 0xFF
        if not self._shown:
            self._shown = True
            if os.environ.get("DISPLAY") and gui_backend().startswith("QT"):
                # opencv-python's Qt 5 sometimes loses the MapNotify of its new window on an X
                # server without a window manager (seen about 1 launch in 100 on Xvfb): it then
                # takes the window for unmapped and never paints it. Repeating the event is
                # harmless when it was not lost.
                send_map_notify()
        closed = cv.getWindowProperty(self.title, cv.WND_PROP_VISIBLE) < 1
        return key in (ord("q"), 27) or closed

    def close(self) -> None:
        if self._shown:
            cv = cv2()
            cv.destroyWindow(self.title)
            cv.waitKey(1)
        return None
