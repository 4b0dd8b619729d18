"""OpenCV, imported lazily and quietly: FFmpeg's own log lines (connection refused, ...) would
otherwise interleave with our one-line messages; our code reports those failures itself."""
from __future__ import annotations

import os


def cv2():
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET; read when FFmpeg first loads
    try:
        import cv2 as module
    except ImportError:
        from ..errors import MissingDependencyError

        raise MissingDependencyError("edgekit run", "opencv-python", "media") from None
    return module
