"""An annotated video: H.264 in MP4 (or MKV, MOV), which browsers play, encoded by the libx264
that ships inside PyAV's wheel (`av`, the `media` extra).

Frames keep the source's own timing: a video file's timestamps (so a 15 fps, 10 s clip stays a
15 fps, 10 s video), or the wall clock at capture for live sources (cameras, streams, synthetic),
whose real rate is whatever the pipeline delivered. Frames go to a temporary file beside the
target; close() flushes the encoder, writes the index (the moov atom, moved to the front so a
browser can start playing before the download ends) and renames it into place. The pipeline
calls close() on Ctrl-C, SIGTERM and SIGHUP too: the target is always a complete, playable file.
"""
from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

from ...deps import require
from ...errors import EdgekitError
from ...fsutil import temp_beside
from ..cv import cv2
from .base import SINKS, Sink

CONTAINERS = {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov"}
CODEC = "libx264"
# veryfast: the encoder shares the CPU with inference; zerolatency: no look-ahead, so every frame
# leaves the encoder at once and stopping never waits for a backlog
ENCODER_OPTIONS = {"preset": "veryfast", "tune": "zerolatency", "crf": "23"}
TIME_BASE = Fraction(1, 90000)  # MPEG's clock: a 15, 25 or 30000/1001 fps file's frames land on exact ticks
DEFAULT_FPS = 30.0              # the encoder's rate hint when the source does not say


@SINKS.register("video")
class VideoSink(Sink):
    name = "video"

    def __init__(self, path, fps: float | None = None):
        self.path = Path(path)
        self.fps = fps                  # a rate hint; the frames' own timestamps decide the timing
        self.frames = 0
        self._container = None
        self._stream = None
        self._tmp: Path | None = None
        self._size: tuple[int, int] | None = None
        self._origin: float | None = None
        self._last_pts = -1
        self._last_position: float | None = None   # the file position of the last frame, s
        self._pass_offset = 0.0                     # s added to positions of later --loop passes
        self._rate: float | None = None

    def open(self) -> None:
        if self.path.suffix.lower() not in CONTAINERS:
            raise EdgekitError(f"cannot save video as '{self.path}'", f"use one of: {', '.join(CONTAINERS)}")
        if self.path.is_dir():
            raise EdgekitError(f"--save {self.path} is a directory", "give a file name like annotated.mp4")
        require("av", "saving H.264 video")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EdgekitError(f"cannot create {self.path.parent}: {exc.strerror}",
                               "choose a writable folder for --save") from None
        if not os.access(self.path.parent, os.W_OK):
            raise EdgekitError(f"cannot write to {self.path.parent}", "choose a writable folder for --save")

    def write(self, image, result, stats) -> None:
        if self._container is None:
            self._start(image.shape[1], image.shape[0], (stats or {}).get("source_fps"))
        if (image.shape[1], image.shape[0]) != self._size:  # odd sizes, or a source that changed size on reconnect
            image = _fit(image, self._size)
        import av

        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts = self._pts(result)
        frame.time_base = TIME_BASE
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def _pts(self, result) -> int:
        """Ticks since the first frame: the file's own position, or the capture clock for live sources.
        A file played with --loop starts its positions again: each pass continues after the last."""
        if result.stream_ms is not None:
            position = result.stream_ms / 1000.0
            if self._last_position is not None and position < self._last_position:   # the next pass
                self._pass_offset += self._last_position + (1.0 / self._rate if self._rate else 0.0)
            self._last_position = position
            now = self._pass_offset + position
        else:
            now = result.captured
        if self._origin is None:
            self._origin = now
        pts = max(int(round((now - self._origin) / TIME_BASE)), self._last_pts + 1)   # strictly increasing
        self._last_pts = pts
        return pts

    def _start(self, width: int, height: int, source_fps: float | None) -> None:
        import av

        self._size = (width + width % 2, height + height % 2)   # 4:2:0 chroma needs even sides
        fd, self._tmp = temp_beside(self.path, suffix=self.path.suffix)
        os.close(fd)
        rate = Fraction(source_fps or self.fps or DEFAULT_FPS).limit_denominator(1001)
        self._rate = float(rate)
        try:
            self._container = av.open(str(self._tmp), "w", format=CONTAINERS[self.path.suffix.lower()],
                                      container_options={"movflags": "+faststart"})
            stream = self._container.add_stream(CODEC, rate=rate)
            stream.width, stream.height = self._size
            stream.pix_fmt = "yuv420p"
            stream.time_base = TIME_BASE
            stream.codec_context.time_base = TIME_BASE
            stream.options = dict(ENCODER_OPTIONS)
            self._stream = stream
        except (av.FFmpegError, ValueError) as exc:
            self._drop_tmp()
            raise EdgekitError(f"cannot encode {self.path.suffix} video here ({exc})",
                               f"try --save {self.path.stem}.mkv, or reinstall PyAV (pip install av)") from None

    def close(self) -> str | None:
        if self._container is None:
            self._drop_tmp()   # a stop between creating the file and the encoder
            return f"no frames: {self.path} not written"
        for packet in self._stream.encode():   # flush what the encoder still holds
            self._container.mux(packet)
        self._container.close()   # writes the index (moov atom): without it the file does not play
        self._container = None
        os.replace(self._tmp, self.path)
        return f"saved {self.path} ({self.frames} frames)"

    def discard(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # the file is removed anyway
                pass
            self._container = None
        self._drop_tmp()

    def _drop_tmp(self) -> None:
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None


def _fit(image, size: tuple[int, int]):
    """Pad a frame one pixel short of an even size, or resize one of another size."""
    height, width = image.shape[:2]
    if width <= size[0] <= width + 1 and height <= size[1] <= height + 1:
        return cv2().copyMakeBorder(image, 0, size[1] - height, 0, size[0] - width, cv2().BORDER_REPLICATE)
    return cv2().resize(image, size)
