"""A bounded hand-off between pipeline stages.

`drop_oldest` channels (live sources) never block the producer: a full channel discards its
oldest item, so lag cannot grow. Other channels block the producer (backpressure: a video file
is read only as fast as it is processed, and no frame of it is lost). `cancel()` wakes every
waiter at once, which is how the pipeline stops without polling.
"""
from __future__ import annotations

import threading
from collections import deque

CLOSED = object()   # returned by get() once every producer closed and the channel is empty, or on cancel


class Channel:
    def __init__(self, capacity: int, drop_oldest: bool = False, producers: int = 1):
        self.capacity = max(1, capacity)
        self.drop_oldest = drop_oldest
        self.dropped = 0
        self._items: deque = deque()
        self._producers = producers
        self._cancelled = False
        self._cond = threading.Condition()

    def put(self, item) -> bool:
        """False when the channel was cancelled (the pipeline is stopping)."""
        with self._cond:
            if self.drop_oldest:
                while len(self._items) >= self.capacity:
                    self._items.popleft()
                    self.dropped += 1
            else:
                while len(self._items) >= self.capacity and not self._cancelled:
                    self._cond.wait()
            if self._cancelled:
                return False
            self._items.append(item)
            self._cond.notify_all()
            return True

    def wait_for_space(self) -> bool:
        """Block until a put() would not wait; False when cancelled. Lets a live pipeline pick its
        frame only when the next stage can take it, so the frame is as fresh as possible."""
        with self._cond:
            while len(self._items) >= self.capacity and not self._cancelled:
                self._cond.wait()
            return not self._cancelled

    def get(self, timeout: float | None = None):
        """The next item, CLOSED, or None when `timeout` passed first."""
        with self._cond:
            while not self._items and self._producers > 0 and not self._cancelled:
                if not self._cond.wait(timeout):
                    return None
            if self._cancelled or not self._items:
                return CLOSED
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def close(self) -> None:
        """One producer is done."""
        with self._cond:
            self._producers -= 1
            self._cond.notify_all()

    def cancel(self) -> None:
        with self._cond:
            self._cancelled = True
            self._items.clear()
            self._cond.notify_all()
