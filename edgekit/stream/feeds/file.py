"""A video file (anything FFmpeg decodes). Ends at EOF; never dropped or reopened.

`--loop` starts it again at its end (frame ids keep counting; `stream_ms` is the position in
the file, so it starts again too). `--realtime` paces it at its own frame rate, as a camera
would deliver it: the feed is then live (the pipeline keeps the newest frame and drops the rest
when it falls behind), and end-to-end latency means what it means for a camera. Without it a
file is read as fast as it is processed, no frame is lost, and end-to-end latency is not
reported (a frame's wait in the queue is no latency).
"""
from __future__ import annotations

import time
from pathlib import Path

from ...errors import EdgekitError
from ..cv import cv2
from .base import FEEDS, VideoCaptureFeed, capture_params

REBASE_AFTER_S = 0.5   # realtime: this far behind schedule, the clock restarts instead of bursting to catch up


@FEEDS.register("file")
class VideoFileFeed(VideoCaptureFeed):
    kind = "video file"
    live = False
    plays = True

    def __init__(self, spec: str, size=None, fps=None, loop=False, realtime=False):
        super().__init__(spec, size, fps, loop, realtime)
        self.live = realtime       # paced like a camera: newest frame only, latency measured
        self.loops = 0             # times the file started again (--loop)
        self._ended = False
        self._position: float | None = None
        self._clock: float | None = None    # perf_counter() at which position 0 of this pass is due
        self._read_in_pass = 0

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
        self._clock = None
        self._read_in_pass = 0

    def read(self):
        frame = super().read()
        if frame is None and self.loop and self._read_in_pass:   # an empty pass would loop forever
            self.close()
            self.open()
            self.loops += 1
            frame = super().read()
        if frame is None:
            self._ended = True
            return None
        self._read_in_pass += 1
        self._position = float(self._cap.get(cv2().CAP_PROP_POS_MSEC))   # of the frame just read
        if self.realtime:
            self._pace(self._position)
        return frame

    def _pace(self, position_ms: float) -> None:
        """Wait until this frame is due: the pass's start plus its position in the file."""
        now = time.perf_counter()
        if self._clock is None:
            self._clock = now - position_ms / 1000.0
        delay = self._clock + position_ms / 1000.0 - now
        if delay > 0:
            time.sleep(delay)
        elif delay < -REBASE_AFTER_S:   # decoding fell behind: restart the clock rather than burst
            self._clock = now - position_ms / 1000.0

    def at_end(self) -> bool:
        return self._ended

    def position(self) -> tuple[str | None, float | None]:
        return None, self._position

    def describe(self) -> str:
        modes = [mode for mode, on in (("looped", self.loop), ("real time", self.realtime)) if on]
        return f"video {self.spec}" + (f" ({', '.join(modes)})" if modes else "")
