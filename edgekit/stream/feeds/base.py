"""The Feed contract (a camera input: frames in) and the registry that picks a feed kind from
what the user typed after `--source`.

A feed kind claims a spec (`0`, `/dev/video2`, `clip.mp4`, `rtsp://...`, `photos/`, `*.jpg`,
`synthetic`); the claims are disjoint, so the first kind that claims wins. `open()` raises
`FeedUnavailable` for what may pass (a stream not up yet: live feeds retry it) and any other
EdgekitError for what will not (a camera that does not exist).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import numpy as np

from ...errors import EdgekitError
from ...registry import Registry
from ..types import StreamEvent


class FeedUnavailable(EdgekitError):
    """The feed cannot be opened right now; a live feed retries with backoff."""


class Feed:
    kind: ClassVar[str]
    live: ClassVar[bool]                 # newest frame only; reopened when it drops
    sets_size: ClassVar[bool] = False    # honours --size
    sets_fps: ClassVar[bool] = False     # honours --fps
    plays: ClassVar[bool] = False        # honours --loop and --realtime (a video file)

    def __init__(self, spec: str, size: tuple[int, int] | None = None, fps: float | None = None,
                 loop: bool = False, realtime: bool = False):
        for value, supported, flag in ((size, self.sets_size, "--size"), (fps, self.sets_fps, "--fps")):
            if value is not None and not supported:
                raise EdgekitError(f"{flag} is not supported by {self.kind} sources like '{spec}'",
                                   f"drop {flag}; it applies to cameras and 'synthetic'")
        for wanted, flag in ((loop, "--loop"), (realtime, "--realtime")):
            if wanted and not self.plays:
                raise EdgekitError(f"{flag} applies to video files, not to {self.kind} sources like '{spec}'",
                                   f"drop {flag}")
        self.loop = loop
        self.realtime = realtime
        self.spec = spec
        self.size = size            # width, height requested
        self.requested_fps = fps
        self.report: Callable[[StreamEvent], None] = lambda event: None  # set by the capture thread

    @classmethod
    def claims(cls, spec: str) -> bool:
        raise NotImplementedError

    def open(self) -> None:
        raise NotImplementedError

    def read(self) -> np.ndarray | None:
        """The next BGR frame, or None at the end of a file / when a live feed dropped."""
        raise NotImplementedError

    @property
    def fps(self) -> float | None:
        """The nominal frame rate, when the feed knows it (files: only once open)."""
        return self.requested_fps

    def position(self) -> tuple[str | None, float | None]:
        """(file name, position in ms) of the frame read last: what a result line names it by."""
        return None, None

    def at_end(self) -> bool:
        """True once a finite feed has nothing more to give (read() returned None for good), so a
        live-paced file that ended is not mistaken for a dropped stream to reconnect."""
        return False

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return f"{self.kind} {self.spec}"


FEEDS: Registry[type[Feed]] = Registry("feed", __package__)


def open_feed(spec: str, size: tuple[int, int] | None = None, fps: float | None = None, loop: bool = False,
              realtime: bool = False) -> Feed:
    """The feed for SPEC, what the user gave as `--source` (validated, not opened yet: the capture
    thread opens it). LOOP restarts a video file at its end; REALTIME paces it at its own frame
    rate, as a camera would deliver it. Raises EdgekitError when no feed kind claims SPEC, or for
    an option the kind does not take."""
    spec = str(spec)
    for feed_cls in FEEDS.values():
        if feed_cls.claims(spec):
            return feed_cls(spec, size=size, fps=fps, loop=loop, realtime=realtime)
    raise EdgekitError(f"source '{spec}' is not a camera index, /dev/videoN, URL, image folder or glob, "
                       "existing video file, or 'synthetic'",
                       "e.g. --source 0, --source clip.mp4, --source rtsp://host/stream, --source photos/")


def capture_params(cv2, open_ms: int, read_ms: int) -> list[int]:
    return [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, open_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, read_ms]


class VideoCaptureFeed(Feed):
    """Shared by the kinds OpenCV's VideoCapture reads (camera, file, network)."""

    def __init__(self, spec: str, size=None, fps=None, loop=False, realtime=False):
        super().__init__(spec, size, fps, loop, realtime)
        self._cap = None

    def read(self) -> np.ndarray | None:
        if self._cap is None:
            return None
        ok, frame = self._cap.read()
        return frame if ok and frame is not None else None

    @property
    def fps(self) -> float | None:
        if self.requested_fps:
            return self.requested_fps
        if self._cap is not None:
            from ..cv import cv2

            value = self._cap.get(cv2().CAP_PROP_FPS)
            if 0 < value < 1000:
                return float(value)
        return None

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
