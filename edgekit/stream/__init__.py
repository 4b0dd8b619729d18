"""Live inference: sources (cameras, files, network streams, folders, synthetic) -> pipelined
prepare / infer / decode+draw -> sinks (window, MP4, MJPEG web page, JSON lines).

    from edgekit.runtime.predictor import open_predictor
    from edgekit.stream import Pipeline, open_source, SINKS

    with open_predictor("model.tflite") as predictor:
        result = Pipeline(open_source("clip.mp4"), [predictor], [SINKS.get("jsonl")("-")]).run()
"""
from __future__ import annotations

from .pipeline import Pipeline, RunResult
from .sinks.base import SINKS, Sink
from .sources.base import SOURCES, Source, open_source
from .types import FrameResult, StreamEvent

__all__ = ["Pipeline", "RunResult", "SINKS", "Sink", "SOURCES", "Source", "open_source", "FrameResult",
           "StreamEvent"]
