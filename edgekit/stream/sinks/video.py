"""An annotated video file. Frames go to a temporary file beside the target, which is released
and moved into place on close, Ctrl-C included: the target is always a complete, playable file."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ...errors import EdgekitError
from ..cv import cv2
from .base import SINKS, Sink

FOURCC = {".mp4": "mp4v", ".mkv": "mp4v", ".avi": "MJPG"}   # codecs every opencv-python wheel writes
DEFAULT_FPS = 25.0


@SINKS.register("video")
class VideoSink(Sink):
    name = "video"

    def __init__(self, path, fps: float | None = None):
        self.path = Path(path)
        self.fps = fps if fps and fps > 0 else DEFAULT_FPS
        self.frames = 0
        self._writer = None
        self._tmp: Path | None = None

    def open(self) -> None:
        if self.path.suffix.lower() not in FOURCC:
            raise EdgekitError(f"cannot save video as '{self.path}'", f"use one of: {', '.join(FOURCC)}")
        if self.path.is_dir():
            raise EdgekitError(f"--save {self.path} is a directory", "give a file name like annotated.mp4")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(self.path.parent, os.W_OK):
            raise EdgekitError(f"cannot write to {self.path.parent}", "choose a writable folder for --save")

    def write(self, image, result, stats) -> None:
        if self._writer is None:
            self._start(image.shape[1], image.shape[0])
        if (image.shape[1], image.shape[0]) != self._size:  # a source that changed resolution on reconnect
            image = cv2().resize(image, self._size)
        self._writer.write(image)
        self.frames += 1

    def _start(self, width: int, height: int) -> None:
        cv = cv2()
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=self.path.suffix, dir=self.path.parent)
        os.close(fd)
        self._tmp = Path(tmp)
        self._size = (width, height)
        self._writer = cv.VideoWriter(tmp, cv.VideoWriter_fourcc(*FOURCC[self.path.suffix.lower()]), self.fps,
                                      self._size)
        if not self._writer.isOpened():
            self._tmp.unlink(missing_ok=True)
            raise EdgekitError(f"OpenCV cannot write {self.path.suffix} video here", f"try --save {self.path.stem}.avi")

    def close(self) -> str | None:
        if self._writer is None:
            if self._tmp is not None:   # Ctrl-C between creating the file and the writer
                self._tmp.unlink(missing_ok=True)
            return f"no frames: {self.path} not written"
        self._writer.release()   # writes the MP4 index (moov atom): without it the file does not play
        self._writer = None
        os.replace(self._tmp, self.path)
        return f"saved {self.path} ({self.frames} frames)"
