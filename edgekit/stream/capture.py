"""The capture thread: reads a feed into a channel, reopening a live feed that drops.

Retries back off (0.25 s doubling to a 1 s cap, so a stream that comes back is picked up within
about a second) and each one is reported. After `max_retries` failed attempts in a row the
capture gives up with a one-line error; a successful reopen resets the count.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..errors import EdgekitError
from .channel import Channel
from .feeds.base import Feed, FeedUnavailable
from .types import Frame, StreamEvent

BACKOFF_START = 0.25
BACKOFF_CAP = 1.0


class Capture:
    def __init__(self, feed: Feed, out: Channel, stop: threading.Event,
                 on_event: Callable[[StreamEvent], None], max_retries: int = 10):
        self.feed = feed
        self.out = out
        self.stop = stop
        self.on_event = on_event
        self.max_retries = max_retries
        self.error: BaseException | None = None
        self.frames = 0
        self.drops = 0
        self.reconnects = 0
        self.retries = 0
        self.generation = 0
        self.fps: float | None = None   # the source's own rate, read once it is open
        feed.report = on_event
        self.thread = threading.Thread(target=self._run, name="edgekit-capture", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        try:
            if not self._open():
                return
            while not self.stop.is_set():
                image = self.feed.read()
                if image is None:
                    if not self.feed.live or self.feed.at_end() or self.stop.is_set():
                        return  # end of file (also one played in real time), or we are stopping
                    self.drops += 1
                    self.on_event(StreamEvent("dropped",
                                              f"{self.feed.describe()} stopped delivering frames; reconnecting"))
                    self.feed.close()
                    if not self._open():
                        return
                    self.reconnects += 1
                    self.generation += 1
                    self.on_event(StreamEvent("reconnected", f"{self.feed.describe()} is back"))
                    continue
                name, stream_ms = self.feed.position()
                frame = Frame(self.frames, image, time.perf_counter(), time.time(), self.generation, name, stream_ms)
                self.frames += 1
                if not self.out.put(frame):
                    return
        except BaseException as exc:  # handed to the pipeline, which re-raises it on the caller's thread
            self.error = exc
        finally:
            self.feed.close()
            self.out.close()

    def _open(self) -> bool:
        """Open (or reopen) the feed; False when stopping. Raises when retries are exhausted."""
        attempt = 0
        while not self.stop.is_set():
            try:
                self.feed.open()
                self.fps = self.feed.fps or self.fps   # a file's rate is known only once it is open
                return True
            except FeedUnavailable as exc:
                if not self.feed.live:
                    raise
                attempt += 1
                if attempt > self.max_retries:
                    raise EdgekitError(f"gave up on {self.feed.describe()} after {self.max_retries} "
                                       f"retr{'y' if self.max_retries == 1 else 'ies'}: {exc.message}",
                                       "check that the source is up and reachable, or raise --max-retries") from None
                delay = min(BACKOFF_START * 2 ** (attempt - 1), BACKOFF_CAP)
                self.retries += 1
                self.on_event(StreamEvent("retry", f"{exc.message}; attempt {attempt}/{self.max_retries} "
                                          f"in {delay:.2f} s", attempt=attempt))
                self.stop.wait(delay)
        return False
