"""Data passed between the stream stages and handed to callers."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np


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
    latency_ms: float            # capture -> annotated frame ready
    infer_ms: float
    generation: int
    prediction: Any              # edgekit.runtime.predictor.Prediction
    name: str | None = None      # the image file (folder sources)
    stream_ms: float | None = None   # position in the video file (file sources)
    captured: float = 0.0        # time.perf_counter() at capture, for live timing (not serialized)

    def to_dict(self) -> dict[str, Any]:
        """One JSON line: `timestamp` (capture wall clock, s) always; `file` for images from a
        folder, `stream_ms` (position in the video, ms) for video files."""
        data: dict[str, Any] = {"timestamp": round(self.wall_time, 6), "frame_id": self.frame_id}
        if self.name is not None:
            data["file"] = self.name
        if self.stream_ms is not None:
            data["stream_ms"] = round(self.stream_ms, 3)
        data.update({"latency_ms": round(self.latency_ms, 3), "infer_ms": round(self.infer_ms, 3),
                     "results": self.prediction.to_dict()})
        return data


@dataclass
class StreamEvent:
    """Something the user should hear about while the run goes on (drops, retries, skips)."""
    kind: str                    # dropped, retry, reconnected, skipped, warning
    message: str
    time: float = field(default_factory=time.time)
    attempt: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "time": self.time, "attempt": self.attempt}
