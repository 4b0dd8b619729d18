"""Live inference: feeds (cameras, files, network streams, folders, synthetic) -> pipelined
prepare / infer / decode+draw -> sinks (window, MP4, MJPEG web page, JSON lines).

    from edgekit.runtime.predictor import open_predictor
    from edgekit.stream import Pipeline, open_feed, SINKS

    with open_predictor("model.tflite") as predictor:
        result = Pipeline(open_feed("clip.mp4"), [predictor], [SINKS.get("jsonl")("-")]).run()
"""
from __future__ import annotations

from .feeds.base import FEEDS, Feed, open_feed
from .pipeline import Pipeline, RunResult
from .sinks.base import SINKS, Sink
from .types import FrameResult, StreamEvent

__all__ = ["Pipeline", "RunResult", "SINKS", "Sink", "FEEDS", "Feed", "open_feed", "FrameResult",
           "StreamEvent"]
