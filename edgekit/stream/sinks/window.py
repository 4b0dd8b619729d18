"""An OpenCV window; `q` or Esc, or closing the window, ends the run."""
from __future__ import annotations

import os
import re
import sys

from ...errors import EdgekitError
from ..cv import cv2
from .base import SINKS, Sink


def display_unavailable_reason() -> str | None:
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "there is no display (DISPLAY and WAYLAND_DISPLAY are unset)"
    import importlib.util

    if importlib.util.find_spec("cv2") is None:
        return "OpenCV is not installed (pip install 'edgekit[media]')"
    if re.search(r"GUI:\s+NONE", cv2().getBuildInformation()):
        return "this OpenCV build has no GUI support (opencv-python-headless)"
    return None


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
        self._shown = True
        key = cv.waitKey(1) & 0xFF
        closed = cv.getWindowProperty(self.title, cv.WND_PROP_VISIBLE) < 1
        return key in (ord("q"), 27) or closed

    def close(self) -> None:
        if self._shown:
            cv = cv2()
            cv.destroyWindow(self.title)
            cv.waitKey(1)
        return None
