"""An image folder or a glob (`photos/`, `shots/*.jpg`): each image once, in name order.
An unreadable file is skipped and reported, not fatal."""
from __future__ import annotations

import glob
from pathlib import Path

import numpy as np

from ...errors import EdgekitError
from ..cv import cv2
from ..types import StreamEvent
from .base import FEEDS, Feed


@FEEDS.register("folder")
class ImageFolderFeed(Feed):
    kind = "image folder"
    live = False

    @classmethod
    def claims(cls, spec: str) -> bool:
        return Path(spec).is_dir() or glob.has_magic(spec)

    def __init__(self, spec: str, size=None, fps=None, loop=False, realtime=False):
        super().__init__(spec, size, fps, loop, realtime)
        root = Path(spec)
        paths = root.iterdir() if root.is_dir() else (Path(p) for p in glob.glob(spec))
        self.paths = sorted(p for p in paths if p.is_file() and not p.name.startswith("."))
        if not self.paths:
            raise EdgekitError(f"no files in '{spec}'", "give a folder or glob with images (jpg, png, ...)")
        self._next = 0
        self._current: str | None = None
        self.skipped: list[str] = []

    def open(self) -> None:
        self._next = 0

    def read(self) -> np.ndarray | None:
        cv = cv2()
        while self._next < len(self.paths):
            path = self.paths[self._next]
            self._next += 1
            image = cv.imread(str(path), cv.IMREAD_COLOR)
            if image is not None:
                self._current = str(path)
                return image
            self.skipped.append(str(path))
            self.report(StreamEvent("skipped", f"unreadable image {path}"))
        return None

    def position(self) -> tuple[str | None, float | None]:
        return self._current, None

    def describe(self) -> str:
        return f"images {self.spec} ({len(self.paths)} files)"
