"""Data passed between the stream stages and handed to callers."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..frames import FrameRecord


@dataclass
class Frame:
    id: int                      # counts every frame the source delivered (gaps = dropped frames)
    image: np.ndarray            # HxWx3 uint8 BGR, as OpenCV reads it
    captured: float              # time.perf_counter() when the read returned
    wall_time: float             # time.time() at the same moment, for logs
    generation: int = 0          # increments each time a live source is reopened
    name: str | None = None      # the image file it came from (folder sources)
    stream_ms: float | None = None   # its position in a video file, ms from the start


@dataclass
class FrameResult:
    frame_id: int
    wall_time: float
    latency_ms: float | None     # capture -> annotated frame ready; None for sources read as fast as processed
    infer_ms: float
    generation: int
    prediction: Any              # edgekit.runtime.predictor.Prediction
    name: str | None = None      # the image file (folder sources)
    stream_ms: float | None = None   # position in the video file (file sources)
    captured: float = 0.0        # time.perf_counter() at capture, for live timing (not serialized)

    def to_dict(self) -> dict[str, Any]:
        """One JSON line, the schema `edgekit remote run` writes too (frames.FrameRecord): every
        key always present; `file` for folders, `stream_ms` for video files, null otherwise."""
        return FrameRecord(self.frame_id, self.wall_time, self.prediction, self.infer_ms, self.latency_ms,
                           self.name, self.stream_ms).to_dict()


@dataclass
class StreamEvent:
    """Something the user should hear about while the run goes on (drops, retries, skips)."""
    kind: str                    # dropped, retry, reconnected, skipped, warning
    message: str
    time: float = field(default_factory=time.time)
    attempt: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "time": self.time, "attempt": self.attempt}
