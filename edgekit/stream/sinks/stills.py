"""Annotated stills: one image per frame of a folder source, named like the file it came from.

`edgekit run --source photos/ --save annotated/` writes annotated/<name> for every image (a video
of photos would be a fraction of a second long). Each image is written beside its final name and
renamed into place, so an interrupted run leaves only complete images.
"""
from __future__ import annotations

import os
from pathlib import Path

from ...errors import EdgekitError
from ...fsutil import temp_beside
from ..cv import cv2
from .base import SINKS, Sink

WRITABLE = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


@SINKS.register("stills")
class StillsSink(Sink):
    name = "stills"

    def __init__(self, folder):
        self.folder = Path(folder)
        self.images = 0
        self._used: set[str] = set()

    def open(self) -> None:
        if self.folder.suffix.lower() in (".mp4", ".mkv", ".mov", ".avi") or self.folder.is_file():
            raise EdgekitError(f"--save {self.folder}: an image folder source writes annotated stills, not a video",
                               "give a folder: --save annotated/")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EdgekitError(f"cannot create {self.folder}: {exc.strerror}", "choose a writable folder for --save") from None
        if not os.access(self.folder, os.W_OK):
            raise EdgekitError(f"cannot write to {self.folder}", "choose a writable folder for --save")

    def write(self, image, result, stats) -> None:
        target = self.folder / self._name(result)
        fd, tmp = temp_beside(target, suffix=target.suffix)
        os.close(fd)
        try:
            if not cv2().imwrite(str(tmp), image):
                raise EdgekitError(f"OpenCV could not write {target}", "check the free space in the --save folder")
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self.images += 1

    def _name(self, result) -> str:
        """The source file's name (.png when OpenCV cannot write its format); a glob over several
        folders may repeat a name, so later ones get the frame id."""
        source = Path(result.name or f"frame_{result.frame_id:06d}.png")
        name = source.name if source.suffix.lower() in WRITABLE else source.stem + ".png"
        if name in self._used:
            name = f"{Path(name).stem}_{result.frame_id}{Path(name).suffix}"
        self._used.add(name)
        return name

    def close(self) -> str | None:
        return f"saved {self.images} annotated image(s) to {self.folder}"

    def discard(self) -> None:
        if self.images == 0:
            try:
                self.folder.rmdir()   # only when we made it and left it empty
            except OSError:
                pass
