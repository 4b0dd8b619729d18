"""Image -> model input for the runtime, from the manifest, with the mapping back (FrameMeta).

For a quantized input the tensor is made straight from the uint8 pixels: normalization followed
by quantization is, per channel, a function of the pixel value alone, so it is a 256-entry table
computed with the very same float code (bit-identical to normalizing then quantizing). When that
table is the identity or a constant shift (EfficientNet: mean 127, std 128 against scale 1/128,
zero point 127) the pixels are used as they are, and the float pass costs nothing.
"""
from __future__ import annotations

import numpy as np

from ..errors import EdgekitError
from ..manifest import Manifest, Preprocess, TensorInfo
from ..preprocess import as_rgb, center_crop_box, preprocess_image, resize, to_layout
from .base import quantize
from .predictor import FrameMeta

MAX_SIDE = 16384  # pixels: a larger model input is a damaged shape, not a picture
_TABLES: dict[tuple, tuple[str, np.ndarray | int]] = {}


def preprocess_for(manifest: Manifest | None, model_input: TensorInfo) -> Preprocess:
    pre = manifest.preprocess if manifest else Preprocess()
    if pre.input_size is None:  # no manifest: read the size off the model's own input
        shape = model_input.shape
        pre.input_size = [int(d) for d in (shape[2:4] if pre.layout == "NCHW" else shape[1:3])]
    if len(pre.input_size) != 2 or not all(1 <= d <= MAX_SIDE for d in pre.input_size):
        raise EdgekitError(f"the model input '{model_input.name}' (shape {model_input.shape}) is not an image "
                           f"size edgekit can prepare ({pre.input_size})",
                           "the model may be damaged, or its input is not an image")
    return pre


def frame_meta(original: tuple[int, int], pre: Preprocess) -> FrameMeta:
    """Where the original image lands in the model input: x_model = x * scale + offset."""
    height, width = original
    in_h, in_w = pre.input_size
    if pre.resize == "stretch":
        return FrameMeta((height, width), (in_h, in_w), (in_h / height, in_w / width), (0.0, 0.0))
    if pre.resize == "letterbox":  # the same rounding as edgekit.preprocess.resize
        s = min(in_h / height, in_w / width)
        new_h, new_w = max(1, round(height * s)), max(1, round(width * s))
        return FrameMeta((height, width), (in_h, in_w), (new_h / height, new_w / width),
                         (float((in_h - new_h) // 2), float((in_w - new_w) // 2)))
    top, left, crop_h, crop_w = center_crop_box((height, width), (in_h, in_w))   # center-crop
    scale_y, scale_x = in_h / crop_h, in_w / crop_w
    return FrameMeta((height, width), (in_h, in_w), (scale_y, scale_x), (-top * scale_y, -left * scale_x))


def prepare_image(rgb: np.ndarray, manifest: Manifest | None, model_input: TensorInfo) -> tuple[np.ndarray, FrameMeta]:
    pre = preprocess_for(manifest, model_input)
    meta = frame_meta(rgb.shape[:2], pre)
    table = _pixel_table(pre, model_input)
    if table is None:
        return to_layout(preprocess_image(rgb, pre), pre.layout), meta
    kind, value = table
    image = resize(as_rgb(rgb), tuple(pre.input_size), pre.resize)
    if pre.color_order == "BGR":
        image = image[:, :, ::-1]
    dtype = np.dtype(model_input.dtype)
    if kind == "shift":  # q = pixel + constant, no rounding involved
        batch = image[None] if value == 0 else (image[None].astype(np.int16) + value).astype(dtype)
    else:
        batch = np.take_along_axis(value, image.reshape(-1, 3).astype(np.intp), axis=0).reshape((1, *image.shape))
    return to_layout(np.ascontiguousarray(batch, dtype=dtype), pre.layout), meta


def _pixel_table(pre: Preprocess, model_input: TensorInfo):
    """('shift', c) or ('table', 256x3) for a quantized 8-bit input; None for a float input."""
    if not model_input.quantization or model_input.dtype not in ("uint8", "int8"):
        return None
    key = (tuple(pre.mean), tuple(pre.std), pre.color_order, model_input.dtype,
           tuple(model_input.quantization.scale), tuple(model_input.quantization.zero_point))
    if key not in _TABLES:
        levels = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)  # 256 x 3 "pixels"
        normalized = (levels.astype(np.float32) - np.asarray(pre.mean, np.float32)) / np.asarray(pre.std, np.float32)
        table = quantize(normalized, model_input)
        shift = table.astype(np.int16) - levels.astype(np.int16)
        _TABLES[key] = ("shift", int(shift[0, 0])) if (shift == shift[0, 0]).all() else ("table", table)
    return _TABLES[key]
