"""A network stream (RTSP, HTTP MJPEG/TS, UDP, TCP, RTMP, SRT), read through OpenCV's FFmpeg."""
from __future__ import annotations

import re

from ..cv import cv2
from .base import FEEDS, FeedUnavailable, VideoCaptureFeed, capture_params

SCHEMES = ("rtsp", "rtsps", "http", "https", "udp", "tcp", "rtmp", "rtp", "srt")
OPEN_TIMEOUT_MS = 5000
READ_TIMEOUT_MS = 3000   # a silent stream counts as dropped after this long


@FEEDS.register("network")
class NetworkFeed(VideoCaptureFeed):
    kind = "network"
    live = True

    @classmethod
    def claims(cls, spec: str) -> bool:
        match = re.match(r"^([a-z][a-z0-9+.-]*)://", spec, re.IGNORECASE)
        return bool(match) and match.group(1).lower() in SCHEMES

    def open(self) -> None:
        cv = cv2()
        cap = cv.VideoCapture(self.spec, cv.CAP_FFMPEG, capture_params(cv, OPEN_TIMEOUT_MS, READ_TIMEOUT_MS))
        if not cap.isOpened():
            cap.release()
            raise FeedUnavailable(f"cannot open stream {self.spec} (unreachable, refused or not a video stream)")
        self._cap = cap

    def describe(self) -> str:
        return f"stream {self.spec}"
