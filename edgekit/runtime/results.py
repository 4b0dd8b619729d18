"""The result types of the runtime: Prediction (classes, detections or a mask), Classification,
Detection, and FrameMeta (how the original image maps onto the model input).

They are defined in edgekit/frames.py, the numpy-only pre/postprocessing module that the deploy
bundle vendors, because the board runner must build the very same Prediction (one `to_dict`, one
result schema on the host and the board). This module is their import home for host code; like
frames.py it is a leaf of the import graph.
"""
from __future__ import annotations

from ..frames import Classification, Detection, FrameMeta, Prediction

__all__ = ["Classification", "Detection", "FrameMeta", "Prediction"]
