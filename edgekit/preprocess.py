"""Image -> model input, exactly as the manifest's Preprocess says. Same code for every stage
(calibration, verify, runtime), so the same picture gives the same tensor everywhere."""
from __future__ import annotations

import numpy as np

from .errors import CalibrationError
from .manifest import Preprocess


def as_rgb(image: np.ndarray, origin: str = "image") -> np.ndarray:
    """Check for HxWx3 RGB. Other channel counts are refused, not guessed at."""
    if image.ndim != 3 or image.shape[2] != 3:
        channels = image.shape[2] if image.ndim == 3 else 1
        raise CalibrationError(f"{origin} has {channels} channel(s) (shape {tuple(image.shape)}); "
                               "the model takes 3-channel images",
                               "convert the images to RGB (drop alpha, expand grayscale)")
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    return image


def center_crop_box(image_size: tuple[int, int], size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the centred part of an image that has the aspect ratio of
    `size`: what a center-crop resize keeps. Shared with the runtime's box mapping."""
    h, w = image_size
    height, width = size
    scale = max(height / h, width / w)
    crop_h, crop_w = min(h, max(1, round(height / scale))), min(w, max(1, round(width / scale)))
    return (h - crop_h) // 2, (w - crop_w) // 2, crop_h, crop_w


def resize(image: np.ndarray, size: tuple[int, int], mode: str) -> np.ndarray:
    import cv2  # lazy: opencv is heavy

    height, width = size
    h, w = image.shape[:2]
    if mode == "stretch":
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if h > height else cv2.INTER_LINEAR)
    if mode == "center-crop":
        # crop first, then resize only what is kept: INTER_AREA over the whole frame costs several
        # times more (about 6.7 vs 2 ms for a 960x540 frame) and its margins are thrown away anyway
        top, left, crop_h, crop_w = center_crop_box((h, w), size)
        return cv2.resize(image[top:top + crop_h, left:left + crop_w], (width, height),
                          interpolation=cv2.INTER_AREA if crop_h > height else cv2.INTER_LINEAR)
    if mode == "letterbox":
        scale = min(height / h, width / w)
        new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
        resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        canvas = np.full((height, width, 3), 114, dtype=np.uint8)  # the grey YOLO-style letterbox pad
        top, left = (height - new_h) // 2, (width - new_w) // 2
        canvas[top:top + new_h, left:left + new_w] = resized
        return canvas
    raise ValueError(f"unknown resize mode {mode!r}")


def preprocess_image(rgb: np.ndarray, pre: Preprocess) -> np.ndarray:
    """RGB uint8 HxWx3 -> float32 1xHxWx3 (NHWC), normalized. Layout is applied by `to_layout`."""
    if pre.input_size is None:
        raise CalibrationError("the model input size is unknown", "pass --input-size HEIGHT,WIDTH")
    image = resize(as_rgb(rgb), tuple(pre.input_size), pre.resize)
    if pre.color_order == "BGR":
        image = image[:, :, ::-1]
    mean = np.asarray(pre.mean, dtype=np.float32)
    std = np.asarray(pre.std, dtype=np.float32)
    return ((image.astype(np.float32) - mean) / std)[None]


def to_layout(batch_nhwc: np.ndarray, layout: str) -> np.ndarray:
    return np.ascontiguousarray(batch_nhwc.transpose(0, 3, 1, 2)) if layout == "NCHW" else batch_nhwc
