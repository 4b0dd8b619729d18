"""One JSON line per frame: timestamp, frame id, the file name (folders) or position in the video
(files), latency, results. Each line is written to the file under its real name and flushed at
once, so `tail -f` follows a live run; lines are whole (one write each), and `-` is stdout."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ...errors import EdgekitError
from ...fsutil import user_umask
from .base import SINKS, Sink


@SINKS.register("jsonl")
class JsonlSink(Sink):
    name = "jsonl"

    def __init__(self, target: str):
        self.target = target
        self.lines = 0
        self._handle = None
        self._created = False

    def open(self) -> None:
        if self.target == "-":
            self._handle = sys.stdout
            return
        path = Path(self.target)
        if path.is_dir():
            raise EdgekitError(f"--jsonl {path} is a directory", "give a file name like results.jsonl, or - for stdout")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._created = not path.exists()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666 & ~user_umask())
        except OSError as exc:
            raise EdgekitError(f"cannot write {path}: {exc.strerror}", "choose a writable path for --jsonl") from None
        self._handle = os.fdopen(fd, "w", encoding="utf-8")

    def write(self, image, result, stats) -> None:
        self._handle.write(json.dumps(result.to_dict(), default=float) + "\n")
        self._handle.flush()   # a reader sees every line as soon as its frame is drawn
        self.lines += 1

    def close(self) -> str | None:
        if self._handle is None or self.target == "-":
            return None
        if self.lines == 0:
            self.discard()
            return f"no frames: {self.target} not written"
        self._handle.close()
        self._handle = None
        return f"wrote {self.target} ({self.lines} lines)"

    def discard(self) -> None:
        """No line was written: remove the file if this run created it (it is empty)."""
        if self._handle is not None and self.target != "-":
            self._handle.close()
            self._handle = None
            if self._created:
                Path(self.target).unlink(missing_ok=True)
