"""`synthetic`: generated frames at a steady rate, to check a device without a camera."""
from __future__ import annotations

import time

import numpy as np

from ..cv import cv2
from .base import FEEDS, Feed

DEFAULT_SIZE = (640, 480)
DEFAULT_FPS = 30.0


@FEEDS.register("synthetic")
class SyntheticFeed(Feed):
    kind = "synthetic"
    live = True
    sets_size = True
    sets_fps = True

    @classmethod
    def claims(cls, spec: str) -> bool:
        return spec == "synthetic"

    def open(self) -> None:
        width, height = self.size or DEFAULT_SIZE
        y, x = np.mgrid[0:height, 0:width]
        self._base = np.stack([(x * 255 // max(width - 1, 1)), (y * 255 // max(height - 1, 1)),
                               np.full_like(x, 96)], axis=2).astype(np.uint8)
        self._count = 0
        self._due = time.perf_counter()

    def describe(self) -> str:
        width, height = self.size or DEFAULT_SIZE
        return f"synthetic {width}x{height} @ {self.fps:g} FPS"

    @property
    def fps(self) -> float:
        return self.requested_fps or DEFAULT_FPS

    def read(self) -> np.ndarray:
        self._due += 1.0 / self.fps
        delay = self._due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        else:  # fell behind (slow consumer): restart the clock rather than burst
            self._due = time.perf_counter()
        cv = cv2()
        height, width = self._base.shape[:2]
        frame = np.roll(self._base, self._count * 4, axis=1)
        radius = max(4, min(width, height) // 8)
        center = (int((self._count * 7) % width), height // 2)
        cv.circle(frame, center, radius, (40, 40, 230), -1)
        cv.putText(frame, f"synthetic {self._count}", (10, height - 12), cv.FONT_HERSHEY_SIMPLEX, 0.6,
                   (255, 255, 255), 1, cv.LINE_AA)
        self._count += 1
        return frame
