"""A video file (anything FFmpeg decodes). Ends at EOF; never dropped or reopened."""
from __future__ import annotations

from pathlib import Path

from ...errors import EdgekitError
from ..cv import cv2
from .base import FEEDS, VideoCaptureFeed, capture_params


@FEEDS.register("file")
class VideoFileFeed(VideoCaptureFeed):
    kind = "video file"
    live = False

    @classmethod
    def claims(cls, spec: str) -> bool:
        return Path(spec).is_file()

    def open(self) -> None:
        cv = cv2()
        cap = cv.VideoCapture(self.spec, cv.CAP_FFMPEG, capture_params(cv, 10000, 10000))
        if not cap.isOpened():
            cap.release()
            raise EdgekitError(f"cannot decode '{self.spec}' as a video",
                               "give a video file FFmpeg reads (mp4, mkv, avi, ...), or a folder of images")
        self._cap = cap

    def position(self) -> tuple[str | None, float | None]:
        if self._cap is None:
            return None, None
        return None, float(self._cap.get(cv2().CAP_PROP_POS_MSEC))   # of the frame just read

    def describe(self) -> str:
        return f"video {self.spec}"
