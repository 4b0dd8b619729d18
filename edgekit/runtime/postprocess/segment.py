"""Segmentation: a class id per pixel of the ORIGINAL image.

The output is class scores [1,H,W,C] or [1,C,H,W] (argmax over C) or class ids [1,H,W]. Its
resolution may be below the input's (output stride). Each original pixel's centre is mapped
through the resize/letterbox/crop (FrameMeta) onto the output grid and takes the nearest id;
pixels that fall outside the model's view (the part a centre crop cut away) get class 0.
"""
from __future__ import annotations

import numpy as np

from ..predictor import FrameMeta, Prediction


def class_map(output: np.ndarray, predictor) -> np.ndarray:
    """[1,H,W,C] / [1,C,H,W] scores or [1,H,W] / [1,1,H,W] / [1,H,W,1] ids -> HxW ids."""
    out = np.asarray(output)[0]
    if out.ndim == 2:
        return np.rint(out).astype(np.int32)
    labels = len(predictor.labels)
    layout = predictor.manifest.preprocess.layout if predictor.manifest else None
    if out.shape[0] == 1 or out.shape[2] == 1:
        return np.rint(out[0] if out.shape[0] == 1 else out[..., 0]).astype(np.int32)
    if labels and (out.shape[0] == labels) != (out.shape[2] == labels):
        channels_first = out.shape[0] == labels
    elif layout is not None:
        channels_first = layout == "NCHW"
    else:
        channels_first = out.shape[0] < out.shape[2]
    return np.argmax(out, axis=0 if channels_first else 2).astype(np.int32)


def to_original(mask: np.ndarray, meta: FrameMeta) -> np.ndarray:
    height, width = meta.original_size
    in_h, in_w = meta.input_size
    out_h, out_w = mask.shape
    rows = np.floor(((np.arange(height) + 0.5) * meta.scale[0] + meta.offset[0]) * out_h / in_h).astype(int)
    cols = np.floor(((np.arange(width) + 0.5) * meta.scale[1] + meta.offset[1]) * out_w / in_w).astype(int)
    inside = (rows >= 0) & (rows < out_h), (cols >= 0) & (cols < out_w)
    result = mask[np.clip(rows, 0, out_h - 1)[:, None], np.clip(cols, 0, out_w - 1)[None, :]]
    result[~(inside[0][:, None] & inside[1][None, :])] = 0
    return result


def decode(outputs: list[np.ndarray], meta: FrameMeta, predictor) -> Prediction:
    return Prediction("segmentation", mask=to_original(class_map(outputs[0], predictor), meta))
