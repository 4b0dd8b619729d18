"""One JSON line per frame: timestamp, frame id, latency, results. `-` is stdout (live, flushed
per line); a file is written beside its target and moved into place on close."""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from ...errors import EdgekitError
from .base import SINKS, Sink


@SINKS.register("jsonl")
class JsonlSink(Sink):
    name = "jsonl"

    def __init__(self, target: str):
        self.target = target
        self.lines = 0
        self._handle = None
        self._tmp: str | None = None

    def open(self) -> None:
        if self.target == "-":
            self._handle = sys.stdout
            return
        path = Path(self.target)
        if path.is_dir():
            raise EdgekitError(f"--jsonl {path} is a directory", "give a file name like results.jsonl, or - for stdout")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, self._tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        except OSError as exc:
            raise EdgekitError(f"cannot write {path}: {exc.strerror}", "choose a writable path for --jsonl") from None
        self._handle = os.fdopen(fd, "w", encoding="utf-8")

    def write(self, image, result, stats) -> None:
        self._handle.write(json.dumps(result.to_dict(), default=float) + "\n")
        if self._tmp is None:
            self._handle.flush()
        self.lines += 1

    def close(self) -> str | None:
        if self._handle is None or self.target == "-":
            return None
        if self.lines == 0:
            self.discard()
            return f"no frames: {self.target} not written"
        self._handle.close()
        self._handle = None
        os.replace(self._tmp, self.target)
        return f"wrote {self.target} ({self.lines} lines)"

    def discard(self) -> None:
        if self._tmp is not None and self._handle is not None:
            self._handle.close()
            self._handle = None
            Path(self._tmp).unlink(missing_ok=True)
