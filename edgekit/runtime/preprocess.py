"""Image -> model input for the runtime, from the manifest, with the mapping back (FrameMeta)."""
from __future__ import annotations

import numpy as np

from ..manifest import Manifest, Preprocess, TensorInfo
from ..preprocess import preprocess_image, to_layout
from .predictor import FrameMeta


def prepare_image(rgb: np.ndarray, manifest: Manifest | None, model_input: TensorInfo) -> tuple[np.ndarray, FrameMeta]:
    pre = manifest.preprocess if manifest else Preprocess()
    if pre.input_size is None:  # no manifest: read the size off the model's own input
        shape = model_input.shape
        pre.input_size = list(shape[2:4] if pre.layout == "NCHW" else shape[1:3])
    batch = to_layout(preprocess_image(rgb, pre), pre.layout)
    height, width = rgb.shape[:2]
    in_h, in_w = pre.input_size
    if pre.resize == "stretch":
        scale, offset = (in_h / height, in_w / width), (0.0, 0.0)
    elif pre.resize == "letterbox":
        s = min(in_h / height, in_w / width)
        scale, offset = (s, s), ((in_h - round(height * s)) // 2, (in_w - round(width * s)) // 2)
    else:  # center-crop
        s = max(in_h / height, in_w / width)
        scale, offset = (s, s), (-((max(in_h, round(height * s)) - in_h) // 2),
                                 -((max(in_w, round(width * s)) - in_w) // 2))
    return batch, FrameMeta((height, width), (in_h, in_w), scale, (float(offset[0]), float(offset[1])))
