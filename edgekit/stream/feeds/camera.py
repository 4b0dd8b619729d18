"""A local camera: an index (`0`) or a V4L2 device path (`/dev/video2`)."""
from __future__ import annotations

import re
import sys
from pathlib import Path

from ...errors import EdgekitError
from ..cv import cv2
from .base import FEEDS, FeedUnavailable, VideoCaptureFeed

DEVICE = re.compile(r"^/dev/video(\d+)$")


def cameras() -> list[str]:
    return sorted((str(p) for p in Path("/dev").glob("video*")), key=lambda p: (len(p), p))


@FEEDS.register("camera")
class CameraFeed(VideoCaptureFeed):
    kind = "camera"
    live = True
    sets_size = True
    sets_fps = True

    def __init__(self, spec: str, size=None, fps=None, loop=False, realtime=False):
        super().__init__(spec, size, fps, loop, realtime)
        match = DEVICE.match(spec)
        self.index = int(match.group(1) if match else spec)
        if sys.platform.startswith("linux") and not Path(f"/dev/video{self.index}").exists():
            found = cameras()
            raise EdgekitError(f"camera {spec} does not exist (no /dev/video{self.index})",
                               f"cameras on this host: {', '.join(found)}" if found else
                               "no camera is attached to this host (no /dev/video*); try --source synthetic")

    @classmethod
    def claims(cls, spec: str) -> bool:
        return spec.isdigit() or bool(DEVICE.match(spec))

    def open(self) -> None:
        cv = cv2()
        api = cv.CAP_V4L2 if sys.platform.startswith("linux") else cv.CAP_ANY
        cap = cv.VideoCapture(self.index, api)
        if not cap.isOpened():
            cap.release()
            raise FeedUnavailable(f"camera {self.spec} could not be opened (busy, or not a capture device)")
        if self.size:
            cap.set(cv.CAP_PROP_FRAME_WIDTH, self.size[0])
            cap.set(cv.CAP_PROP_FRAME_HEIGHT, self.size[1])
        if self.requested_fps:
            cap.set(cv.CAP_PROP_FPS, self.requested_fps)
        self._cap = cap
