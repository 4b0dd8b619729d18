"""Frames in, results out: THE pre- and postprocessing of edgekit, the same on the host and the board.

Image -> model input (`prepare`, `preprocess_image`): resize (stretch, letterbox, centre crop),
colour order, channel count, normalization `(pixel - mean) / std`, layout, and the quantized-input
fast path. Model outputs -> results (`decode`): softmax top-k, detection boxes (SSD, the
TFLite_Detection_PostProcess op, YOLO heads, with NMS) and segmentation masks, mapped back to the
original image's pixels (`FrameMeta`).

This file needs numpy and nothing else, imports nothing from edgekit, and runs on Python 3.7: the
deploy bundle vendors it verbatim (sha256-checked) next to the board runner, so a board with only
numpy computes bit-identical tensors and the same results as `edgekit predict` on the same frame.
Image decoding (OpenCV, Pillow) stays with the callers.

Conventions: images are uint8 [H, W, 3] (RGB unless `order` says BGR), sizes are (height, width)
in pixels, boxes are x1, y1, x2, y2 in pixels, and every tensor has a batch axis of 1.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

RESIZE_MODES = ("stretch", "letterbox", "center-crop")
LAYOUTS = ("NHWC", "NCHW", "HW")    # HW: a channel-less greyscale input [1, H, W] (MNIST-style)
COLOR_ORDERS = ("RGB", "BGR")
LETTERBOX_PAD = 114                 # pixel value of the letterbox bars (the grey of YOLO exports)
LUMA_BT601 = (0.299, 0.587, 0.114)  # R, G, B weights of luma Y' (ITU-R BT.601), for 1-channel models
MAX_SIDE = 16384                    # pixels: a larger model input is a damaged shape, not a picture
TASKS = ("classification", "detection", "segmentation", "other")
DETECTION_FORMATS = ("tflite-postprocess", "ssd", "yolo")


class FrameError(ValueError):
    """Input that cannot be prepared or outputs that cannot be decoded; `remedy` says what to do.
    The host turns it into an EdgekitError, the board runner into {"error": ...}."""

    def __init__(self, message: str, remedy: str = ""):
        super().__init__(message)
        self.remedy = remedy


# ---------------------------------------------------------------- specs and results

@dataclass
class FrameSpec:
    """How a picture becomes this model's input (the manifest's `preprocess` record, resolved)."""
    input_size: Tuple[int, int]                  # model input height, width (pixels)
    resize: str = "stretch"                      # stretch | letterbox | center-crop
    color_order: str = "RGB"                     # channel order the model takes: RGB | BGR
    layout: str = "NHWC"                         # NHWC | NCHW | HW (channel-less, always 1 channel)
    mean: Tuple[float, ...] = (0.0, 0.0, 0.0)    # per channel, in pixel units (0-255)
    std: Tuple[float, ...] = (255.0, 255.0, 255.0)
    channels: int = 3                            # 3: colour; 1: BT.601 luma (greyscale models)

    @classmethod
    def of(cls, record: Any, input_shape: Optional[Sequence[int]] = None) -> "FrameSpec":
        """A checked FrameSpec from a manifest Preprocess, a dict with the same keys, or a FrameSpec.

        A missing `input_size` (and `channels`) is read from `input_shape`, the model input's shape
        in `layout` ([1, H, W, C], [1, C, H, W] or [1, H, W]). Raises FrameError for an unknown size,
        a size outside 1..MAX_SIDE, or an unknown resize mode, colour order, layout or channel count."""
        def get(key: str, default: Any = None) -> Any:
            value = record.get(key) if isinstance(record, dict) else getattr(record, key, None)
            return default if value is None else value

        layout = get("layout", "NHWC")
        size = get("input_size")
        channels = 1 if layout == "HW" else get("channels")
        shape = [int(d) for d in input_shape] if input_shape is not None else None
        if shape is not None:
            if size is None:
                size = shape[2:4] if layout == "NCHW" else shape[1:3]
            if channels is None and len(shape) == 4 and (shape[1] if layout == "NCHW" else shape[3]) == 1:
                channels = 1
        if size is None:
            raise FrameError("the model input size is unknown", "pass --input-size HEIGHT,WIDTH")
        size = [int(d) for d in size]
        if len(size) != 2 or not all(1 <= d <= MAX_SIDE for d in size):
            raise FrameError("the model input%s is not an image size edgekit can prepare (%s)"
                             % (" (shape %s)" % shape if shape is not None else "", size),
                             "the model may be damaged, or its input is not an image")
        channels = int(channels or 3)
        for name, value, allowed in (("resize mode", get("resize", "stretch"), RESIZE_MODES),
                                     ("colour order", get("color_order", "RGB"), COLOR_ORDERS),
                                     ("layout", layout, LAYOUTS), ("channel count", channels, (1, 3))):
            if value not in allowed:
                raise FrameError("unknown %s %r" % (name, value), "use one of: %s" % ", ".join(map(str, allowed)))
        return cls((size[0], size[1]), get("resize", "stretch"), get("color_order", "RGB"), layout,
                   _per_channel(get("mean", (0.0,) * 3), channels, "mean"),
                   _per_channel(get("std", (255.0,) * 3), channels, "std"), channels)

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready fields (tuples as lists); `FrameSpec.of` reads it back."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def _per_channel(values: Any, channels: int, name: str) -> Tuple[float, ...]:
    values = [float(v) for v in (values if isinstance(values, (list, tuple, np.ndarray)) else [values])]
    if len(values) == 1:
        return tuple(values * channels)
    if len(values) == channels:
        return tuple(values)
    if channels == 1 and len(set(values)) == 1:  # [m, m, m] on a greyscale model
        return (values[0],)
    raise FrameError("%s %s does not fit a %d-channel input" % (name, values, channels),
                     "give one value, or one per channel")


@dataclass
class FrameMeta:
    """Where the original image lands in the model input: x_model = x_original * scale + offset."""
    original_size: Tuple[int, int]               # height, width of the image given to prepare()
    input_size: Tuple[int, int]                  # height, width of the model input
    scale: Tuple[float, float] = (1.0, 1.0)      # model px per original px (y, x)
    offset: Tuple[float, float] = (0.0, 0.0)     # model px of the original's top-left corner (y, x)


@dataclass
class DecodeSpec:
    """How this model's outputs become a Prediction (what decoders need, and nothing else)."""
    task: str = "other"                          # classification | detection | segmentation | other
    labels: List[str] = field(default_factory=list)
    top_k: int = 5                               # classification: labels kept
    score_threshold: float = 0.25                # detection: lowest score kept
    iou_threshold: float = 0.45                  # detection: NMS merges overlaps above this IoU
    max_detections: int = 100
    detection_format: Optional[str] = None       # tflite-postprocess | ssd | yolo; None: from the outputs
    layout: Optional[str] = None                 # model input layout: a hint for segmentation outputs
    output_names: List[str] = field(default_factory=list)  # in output order; names tell SSD outputs apart

    @classmethod
    def of(cls, record: Dict[str, Any]) -> "DecodeSpec":
        """A checked DecodeSpec from a dict of its fields (bundle.json's "decode"). Raises FrameError."""
        known = {k: v for k, v in record.items() if k in cls.__dataclass_fields__}
        spec = cls(**known)
        if spec.task not in TASKS:
            raise FrameError("unknown task %r" % spec.task, "use one of: %s" % ", ".join(TASKS))
        if spec.detection_format is not None and spec.detection_format not in DETECTION_FORMATS:
            raise FrameError("unknown detection_format %r" % spec.detection_format,
                             "use one of: %s" % ", ".join(DETECTION_FORMATS))
        return spec

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready fields; `DecodeSpec.of` reads it back."""
        return asdict(self)


@dataclass
class Classification:
    """One class of a classifier's top-k."""
    index: int
    label: str
    score: float                                 # probability (softmax applied to logits)


@dataclass
class Detection:
    """One box of a detector, after NMS."""
    box: List[float]                             # x1, y1, x2, y2 in original-image pixels
    index: int
    label: str
    score: float


@dataclass
class Prediction:
    """What a model found in one frame: classes (top-k), detections, or a mask."""
    task: str
    classes: List[Classification] = field(default_factory=list)
    detections: List[Detection] = field(default_factory=list)
    mask: Optional[np.ndarray] = None            # int32 [H, W] class ids at the original size
    timings_ms: Dict[str, float] = field(default_factory=dict)  # preprocess, infer, postprocess

    @property
    def top1(self) -> Optional[Classification]:
        """The best class, or None for a detection or segmentation result."""
        return self.classes[0] if self.classes else None

    def to_dict(self) -> Dict[str, Any]:
        """The result schema, the same from `edgekit predict`, `edgekit run` and the board runner."""
        data = {"task": self.task, "timings_ms": self.timings_ms}  # type: Dict[str, Any]
        if self.classes:
            data["classes"] = [vars(c) for c in self.classes]
        if self.detections:
            data["detections"] = [vars(d) for d in self.detections]
        if self.mask is not None:
            ids, counts = np.unique(self.mask, return_counts=True)
            data["mask"] = {"shape": list(self.mask.shape),
                            "classes": {int(i): int(c) for i, c in zip(ids, counts)}}
        return data


@dataclass
class FrameRecord:
    """One frame's result line: what `edgekit run --jsonl` and `edgekit remote run --jsonl` both
    write, built by this one class on the host and on the board, so the keys are always the same
    (a value that does not apply is null, never a missing key):

        timestamp    capture wall clock, seconds since the epoch
        frame_id     counts every frame the source delivered, from 0 (gaps: frames dropped to stay live)
        file         the image file the frame came from (folder sources), else null
        stream_ms    the frame's position in a video file, ms from its start, else null
        latency_ms   capture -> result, ms; null for files and folders, which are read as fast as
                     they are processed, so the time a frame waits in the queue is no latency
        infer_ms     the model's own time for this frame, ms
        results      Prediction.to_dict(): task, classes / detections / mask, timings_ms
    """
    frame_id: int
    timestamp: float
    prediction: Prediction
    infer_ms: float
    latency_ms: Optional[float] = None
    file: Optional[str] = None
    stream_ms: Optional[float] = None

    KEYS = ("timestamp", "frame_id", "file", "stream_ms", "latency_ms", "infer_ms", "results")

    def to_dict(self) -> Dict[str, Any]:
        def ms(value: Optional[float]) -> Optional[float]:
            return None if value is None else round(float(value), 3)

        return {"timestamp": round(float(self.timestamp), 6), "frame_id": int(self.frame_id), "file": self.file,
                "stream_ms": ms(self.stream_ms), "latency_ms": ms(self.latency_ms), "infer_ms": ms(self.infer_ms),
                "results": self.prediction.to_dict()}


# ---------------------------------------------------------------- geometry

def center_crop_box(image_size: Sequence[int], size: Sequence[int]) -> Tuple[int, int, int, int]:
    """(top, left, height, width) in pixels of the centred part of an image of `image_size`
    (height, width) that has the aspect ratio of `size`: what a centre-crop resize keeps."""
    h, w = image_size
    height, width = size
    scale = max(height / h, width / w)
    crop_h, crop_w = min(h, max(1, round(height / scale))), min(w, max(1, round(width / scale)))
    return (h - crop_h) // 2, (w - crop_w) // 2, crop_h, crop_w


def letterbox_box(image_size: Sequence[int], size: Sequence[int]) -> Tuple[int, int, int, int]:
    """(top, left, height, width) in pixels of where a letterboxed image of `image_size` lands in a
    model input of `size`: scaled to fit whole, centred, the rest filled with LETTERBOX_PAD."""
    h, w = image_size
    height, width = size
    scale = min(height / h, width / w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    return (height - new_h) // 2, (width - new_w) // 2, new_h, new_w


def frame_meta(image_size: Sequence[int], spec: FrameSpec) -> FrameMeta:
    """How an image of `image_size` (height, width) maps onto the model input under `spec`."""
    height, width = int(image_size[0]), int(image_size[1])
    in_h, in_w = spec.input_size
    if spec.resize == "stretch":
        return FrameMeta((height, width), (in_h, in_w), (in_h / height, in_w / width), (0.0, 0.0))
    if spec.resize == "letterbox":
        top, left, new_h, new_w = letterbox_box((height, width), (in_h, in_w))
        return FrameMeta((height, width), (in_h, in_w), (new_h / height, new_w / width), (float(top), float(left)))
    top, left, crop_h, crop_w = center_crop_box((height, width), (in_h, in_w))
    scale_y, scale_x = in_h / crop_h, in_w / crop_w
    return FrameMeta((height, width), (in_h, in_w), (scale_y, scale_x), (-top * scale_y, -left * scale_x))


def boxes_to_original(boxes: np.ndarray, meta: FrameMeta) -> np.ndarray:
    """float32 [N, 4] x1, y1, x2, y2 in model-input pixels -> original-image pixels, clipped to the
    image (undoes the stretch, letterbox or crop)."""
    if len(boxes) == 0:
        return np.zeros((0, 4), np.float32)
    sy, sx = meta.scale
    oy, ox = meta.offset
    height, width = meta.original_size
    out = (boxes - np.array([ox, oy, ox, oy], np.float32)) / np.array([sx, sy, sx, sy], np.float32)
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, width)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, height)
    return out


def mask_to_original(mask: np.ndarray, meta: FrameMeta) -> np.ndarray:
    """int [h, w] class ids on the output grid -> int [H, W] at the original size. Each original
    pixel's centre goes through the resize onto the grid and takes the nearest id; pixels outside
    the model's view (what a centre crop cut away) get class 0."""
    height, width = meta.original_size
    in_h, in_w = meta.input_size
    out_h, out_w = mask.shape
    rows = np.floor(((np.arange(height) + 0.5) * meta.scale[0] + meta.offset[0]) * out_h / in_h).astype(int)
    cols = np.floor(((np.arange(width) + 0.5) * meta.scale[1] + meta.offset[1]) * out_w / in_w).astype(int)
    inside = (rows >= 0) & (rows < out_h), (cols >= 0) & (cols < out_w)
    result = mask[np.clip(rows, 0, out_h - 1)[:, None], np.clip(cols, 0, out_w - 1)[None, :]]
    result[~(inside[0][:, None] & inside[1][None, :])] = 0
    return result


# ---------------------------------------------------------------- pixels

def check_image(image: np.ndarray, channels: int = 3, origin: str = "image") -> np.ndarray:
    """uint8 [H, W, 3] (or, for a 1-channel model, also [H, W] / [H, W, 1]); other channel counts
    are refused with FrameError, not guessed at. Other dtypes are clipped to 0..255."""
    image = np.asarray(image)
    if channels == 1 and image.ndim == 2:
        image = image[:, :, None]
    got = image.shape[2] if image.ndim == 3 else 1
    if 0 in image.shape:
        raise FrameError("%s is empty (shape %s)" % (origin, tuple(image.shape)), "give a picture with pixels")
    if image.ndim != 3 or got not in ((1, 3) if channels == 1 else (3,)):
        raise FrameError("%s has %d channel(s) (shape %s); the model takes %d-channel images"
                         % (origin, got, tuple(image.shape), channels),
                         "convert the images to RGB (drop alpha, expand grayscale)")
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    return image


_TAPS = {}  # type: Dict[Tuple[int, int], Tuple[np.ndarray, np.ndarray]]


def _taps(n_in: int, n_out: int) -> Tuple[np.ndarray, np.ndarray]:
    """1-D resampling as taps: output i = sum_k weight[i, k] * input[index[i, k]]. Shrinking
    averages the input pixels each output pixel covers (area, like OpenCV's INTER_AREA);
    enlarging interpolates between the two nearest pixel centres (like INTER_LINEAR)."""
    key = (n_in, n_out)
    if key in _TAPS:
        return _TAPS[key]
    if n_out == n_in:
        index, weight = np.arange(n_out)[:, None], np.ones((n_out, 1))
    elif n_out < n_in:
        scale = n_in / n_out
        start = np.arange(n_out) * scale
        index = np.floor(start).astype(np.intp)[:, None] + np.arange(int(math.ceil(scale)) + 1)
        overlap = np.minimum(index + 1, start[:, None] + scale) - np.maximum(index, start[:, None])
        weight = np.clip(overlap, 0, None) / scale
        used = weight.max(axis=0) > 1e-9
        index, weight = np.minimum(index[:, used], n_in - 1), weight[:, used]
    else:
        source = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
        first = np.floor(source).astype(np.intp)
        frac = source - first
        index = np.stack([first, np.minimum(first + 1, n_in - 1)], axis=1)
        weight = np.stack([1 - frac, frac], axis=1)
    taps = (index, weight.astype(np.float32))
    if len(_TAPS) < 256:  # a camera repeats a few sizes; a folder of odd sizes must not grow this
        _TAPS[key] = taps
    return taps


def resample(image: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """uint8 [H, W, C] -> uint8 [height, width, C]: separable area averaging on an axis that
    shrinks, bilinear on one that grows; float32 sums in a fixed order, rounded half up. The same
    numpy on the same machine gives the same bytes on the host and the board."""
    height, width = int(size[0]), int(size[1])
    h, w, channels = image.shape
    if (h, w) == (height, width):
        return image.copy()  # a new array either way: the caller may reuse its frame buffer
    # both passes gather whole rows, which is cheap: gathering columns (pixel by pixel) cost as much
    # as the rest of a frame's preparation. So the column pass runs on the rows transposed to
    # [w, C, height], a copy that moves runs of `height` floats (3.5x faster than to [w, height, C])
    rows = _rows(image.reshape(h, w * channels), _taps(h, height))
    columns = np.ascontiguousarray(rows.reshape(height, w, channels).transpose(1, 2, 0)).reshape(w, -1)
    out = _rows(columns, _taps(w, width)).reshape(width, channels, height).transpose(2, 0, 1)
    np.clip(out, 0, 255, out=out)
    out += 0.5
    return out.astype(np.uint8, order="C")


def _rows(image: np.ndarray, taps: Tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """[n_in, K] -> float32 [n_out, K]: output row i = sum over k of weight[i, k] * row index[i, k],
    added in k order by separate numpy multiplies and adds: each rounds on its own on every CPU (a
    fused multiply-add, which einsum compiles to on ARM, would round once and differ in a bit)."""
    index, weight = taps
    if index.shape[1] == 1 and index.shape[0] == image.shape[0] and (weight == 1).all():
        return image.astype(np.float32)
    out = None
    for k in range(index.shape[1]):
        term = image[index[:, k]] * weight[:, k:k + 1]
        if out is None:
            out = term
        else:
            out += term
    return out


def resize(image: np.ndarray, size: Sequence[int], mode: str) -> np.ndarray:
    """uint8 [H, W, C] -> uint8 [height, width, C] by `mode`: stretch (aspect ratio not kept),
    letterbox (whole image, bars of LETTERBOX_PAD; see letterbox_box) or center-crop (the centred
    part with the input's aspect ratio; see center_crop_box)."""
    height, width = int(size[0]), int(size[1])
    if mode == "stretch":
        return resample(image, (height, width))
    if mode == "center-crop":  # crop first: resampling the margins that are thrown away costs time
        top, left, crop_h, crop_w = center_crop_box(image.shape[:2], (height, width))
        return resample(image[top:top + crop_h, left:left + crop_w], (height, width))
    if mode == "letterbox":
        top, left, new_h, new_w = letterbox_box(image.shape[:2], (height, width))
        canvas = np.full((height, width, image.shape[2]), LETTERBOX_PAD, dtype=np.uint8)
        canvas[top:top + new_h, left:left + new_w] = resample(image, (new_h, new_w))
        return canvas
    raise FrameError("unknown resize mode %r" % (mode,), "use one of: %s" % ", ".join(RESIZE_MODES))


def luminance(image: np.ndarray, order: str = "RGB") -> np.ndarray:
    """uint8 [H, W, 3] in `order` -> uint8 [H, W, 1] luma Y' = 0.299 R + 0.587 G + 0.114 B
    (ITU-R BT.601 weights, applied to the pixel values as they are), rounded half up."""
    weights = np.asarray(LUMA_BT601 if order == "RGB" else LUMA_BT601[::-1], np.float32)
    luma = image[:, :, 0].astype(np.float32) * weights[0]
    luma += image[:, :, 1].astype(np.float32) * weights[1]
    luma += image[:, :, 2].astype(np.float32) * weights[2]
    np.minimum(luma, 255, out=luma)
    luma += 0.5
    return luma.astype(np.uint8)[:, :, None]


def model_pixels(image: np.ndarray, spec: FrameSpec, order: str = "RGB") -> np.ndarray:
    """uint8 [H, W, 3] image in `order` (RGB or BGR) -> uint8 [h, w, C] at the model input size,
    in the model's colour order and channel count: what normalization works on."""
    if order not in COLOR_ORDERS:
        raise FrameError("unknown colour order %r" % (order,), "use RGB or BGR")
    image = resize(check_image(image, spec.channels), spec.input_size, spec.resize)
    if spec.channels == 1:
        return image if image.shape[2] == 1 else luminance(image, order)
    return image[:, :, ::-1] if order != spec.color_order else image


def normalize(pixels: np.ndarray, spec: FrameSpec) -> np.ndarray:
    """uint8 [h, w, C] -> float32 [1, h, w, C]: (pixel - mean) / std per channel."""
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    return ((pixels.astype(np.float32) - mean) / std)[None]


def to_layout(batch_nhwc: np.ndarray, layout: str) -> np.ndarray:
    """[N, H, W, C] -> the model's layout: unchanged for NHWC, [N, C, H, W] (contiguous) for NCHW,
    [N, H, W] for a channel-less HW input (C is 1)."""
    if layout == "NCHW":
        return np.ascontiguousarray(batch_nhwc.transpose(0, 3, 1, 2))
    if layout == "HW":
        return np.ascontiguousarray(batch_nhwc[..., 0])
    return batch_nhwc


def preprocess_image(image: np.ndarray, pre: Any) -> np.ndarray:
    """uint8 RGB [H, W, 3] -> float32 [1, h, w, C] NHWC, resized and normalized as `pre` (a
    FrameSpec, a manifest Preprocess or a dict) says. Layout is applied by `to_layout`; a model
    with a quantized input gets the same numbers from `prepare` without the float pass."""
    spec = pre if isinstance(pre, FrameSpec) else FrameSpec.of(pre)
    return normalize(model_pixels(image, spec), spec)


def quantize(values: np.ndarray, scale: Any, zero_point: Any, dtype: Any) -> np.ndarray:
    """float -> integer `dtype`: round(values / scale + zero_point) (half to even), clipped to the
    dtype's range. `scale` and `zero_point` are per tensor, or per channel along the last axis."""
    dtype = np.dtype(dtype)
    limits = np.iinfo(dtype)
    scale = np.asarray(scale, np.float32)
    zero = np.asarray(zero_point, np.float32)
    return np.clip(np.round(values / scale + zero), limits.min, limits.max).astype(dtype)


def dequantize(values: np.ndarray, scale: Any, zero_point: Any) -> np.ndarray:
    """integer -> float32 (values - zero_point) * scale; float input is returned as float32."""
    if scale is None or len(np.atleast_1d(scale)) == 0 or not np.issubdtype(values.dtype, np.integer):
        return values.astype(np.float32, copy=False)
    return (values.astype(np.float32) - np.asarray(zero_point, np.float32)) * np.asarray(scale, np.float32)


_TABLES = {}  # type: Dict[tuple, Tuple[str, Any]]


def pixel_table(spec: FrameSpec, dtype: Any, scale: Any, zero_point: Any) -> Optional[Tuple[str, Any]]:
    """For an 8-bit quantized input: ("shift", c) when quantized = pixel + c, else ("table", T) with
    T a [256, C] array: quantized = T[pixel, channel]. None for any other input.

    Normalizing then quantizing is, per channel, a function of the pixel value alone, so the table
    is made with the very same float code and is bit-identical to the float path. EfficientNet-Lite
    (mean 127, std 128 against scale 1/128, zero point 127) is the identity: pixels go in as they are."""
    name = _dtype_name(dtype)
    if name not in ("uint8", "int8") or scale is None or len(np.atleast_1d(scale)) == 0:
        return None
    key = (spec.mean, spec.std, spec.channels, name, tuple(np.atleast_1d(scale).tolist()),
           tuple(np.atleast_1d(zero_point).tolist()))
    if key not in _TABLES:
        levels = np.repeat(np.arange(256, dtype=np.uint8)[:, None], spec.channels, axis=1)  # 256 x C "pixels"
        table = quantize(normalize(levels, spec)[0], scale, zero_point, name)
        shift = table.astype(np.int16) - levels.astype(np.int16)
        _TABLES[key] = ("shift", int(shift[0, 0])) if (shift == shift[0, 0]).all() else ("table", table)
    return _TABLES[key]


def _dtype_name(dtype: Any) -> Optional[str]:
    try:
        return np.dtype(dtype).name
    except TypeError:  # e.g. Core ML's "image" inputs
        return None


def prepare(image: np.ndarray, spec: FrameSpec, dtype: Any = "float32", scale: Any = None,
            zero_point: Any = None, order: str = "RGB") -> Tuple[np.ndarray, FrameMeta]:
    """uint8 [H, W, 3] image in `order` -> (model input tensor, FrameMeta).

    The tensor is [1, h, w, C], [1, C, h, w] or [1, h, w] as `spec.layout` says. For an 8-bit quantized input
    (`dtype` uint8/int8 with its `scale` and `zero_point`) it is already in that dtype, made from the
    pixels through `pixel_table`; otherwise it is float32 (a runtime casts or quantizes it)."""
    pixels = model_pixels(image, spec, order)
    meta = frame_meta(np.shape(image)[:2], spec)
    table = pixel_table(spec, dtype, scale, zero_point)
    if table is None:
        return to_layout(normalize(pixels, spec), spec.layout), meta
    kind, value = table
    name = _dtype_name(dtype)
    if kind == "shift":  # q = pixel + constant, no rounding involved
        batch = pixels[None] if value == 0 else (pixels[None].astype(np.int16) + value).astype(name)
    else:
        flat = pixels.reshape(-1, spec.channels).astype(np.intp)
        batch = np.take_along_axis(value, flat, axis=0).reshape((1,) + pixels.shape)
    return to_layout(np.ascontiguousarray(batch, dtype=name), spec.layout), meta


# ---------------------------------------------------------------- outputs -> results

def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """float32 probabilities along `axis` (max-shifted, so large logits do not overflow)."""
    logits = np.asarray(logits, np.float32)
    exp = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return exp / exp.sum(axis=axis, keepdims=True)


def class_scores(output: np.ndarray) -> np.ndarray:
    """A classifier output, any shape with one class axis -> float32 [classes] probabilities.
    Softmax is applied when the output is logits (a negative value, or not summing to 1)."""
    scores = np.asarray(output, np.float32).reshape(-1)
    if scores.min() < 0 or scores.sum() > 1.01 or scores.sum() < 0.99:
        scores = softmax(scores)
    return scores


def _label(labels: Sequence[str], index: int) -> str:
    return labels[index] if 0 <= index < len(labels) else str(index)


def decode_classes(outputs: List[np.ndarray], meta: FrameMeta, spec: DecodeSpec) -> Prediction:
    """Top-k of the first output: indices, labels and probabilities, best first."""
    scores = class_scores(outputs[0])
    top = np.argsort(-scores, kind="stable")[:spec.top_k]
    return Prediction("classification", classes=[
        Classification(int(i), _label(spec.labels, int(i)), float(scores[i])) for i in top])


def detection_format(shapes: Sequence[Sequence[int]]) -> Optional[str]:
    """The detection output convention read off the output shapes, or None when none fits:
    tflite-postprocess (boxes [1,N,4], classes [1,N], scores [1,N], count [1]), ssd (boxes
    [1,N,4] and scores [1,N,C]) or yolo (one head [1,N,4+C] or [1,4+C,N])."""
    shapes = [[int(d) for d in s] for s in shapes]
    ranks = sorted(len(s) for s in shapes)
    if len(shapes) == 4 and ranks == [1, 2, 2, 3] and any(len(s) == 3 and s[-1] == 4 for s in shapes):
        return "tflite-postprocess"
    if len(shapes) == 2 and ranks == [3, 3]:
        a, b = shapes
        if a[1] == b[1] and 4 in (a[2], b[2]):
            return "ssd"
    if len(shapes) == 1 and len(shapes[0]) == 3 and min(shapes[0][1:]) > 4 and max(shapes[0][1:]) > min(shapes[0][1:]):
        return "yolo"
    return None


def decode_detections(outputs: List[np.ndarray], meta: FrameMeta, spec: DecodeSpec) -> Prediction:
    """Boxes in original-image pixels, best first, from one of three output conventions:

    - tflite-postprocess: the TFLite_Detection_PostProcess op (TF Object Detection API SSD exports,
      Coral's detectors): boxes [1,N,4] ymin,xmin,ymax,xmax normalized to the input, classes [1,N],
      scores [1,N], count [1]. The op has applied NMS already.
    - ssd: decoded SSD heads: boxes [1,N,4] (ymin,xmin,ymax,xmax normalized) and class scores
      [1,N,C] (a first background column when C is one more than the labels); NMS here.
    - yolo: one raw head [1,N,4+C] or [1,4+C,N]: cx,cy,w,h (input pixels, or normalized to the input
      when no coordinate exceeds 2, as some TFLite exports write them), then C class scores; NMS
      here. With labels, 5+C columns mean a YOLOv5-style objectness column after the box.

    `spec.detection_format` when set, else read from the output shapes. Raises FrameError when the
    outputs fit none."""
    fmt = spec.detection_format or detection_format([o.shape for o in outputs])
    if fmt not in DETECTION_FORMATS:
        raise FrameError("cannot read detections from outputs %s%s"
                         % ([list(o.shape) for o in outputs], " (detection_format '%s')" % fmt if fmt else ""),
                         "supported: %s (see edgekit/frames.py)" % ", ".join(DETECTION_FORMATS))
    names = [n.lower() for n in spec.output_names] + [""] * (len(outputs) - len(spec.output_names))
    boxes, scores, classes = _READERS[fmt](outputs, names, meta, spec)
    if fmt != "tflite-postprocess":
        keep = nms(boxes, scores, classes, spec.iou_threshold, spec.max_detections)
        boxes, scores, classes = boxes[keep], scores[keep], classes[keep]
    boxes = boxes_to_original(boxes, meta)
    detections = [Detection([round(float(v), 2) for v in box], int(c), _label(spec.labels, int(c)), float(s))
                  for box, s, c in zip(boxes, scores, classes)]
    return Prediction("detection", detections=detections[:spec.max_detections])


def _postprocessed(outputs, names, meta, spec):
    """TFLite_Detection_PostProcess: boxes, classes, scores, count (names say which, if any)."""
    by_rank = {}  # type: Dict[int, list]
    for out, name in zip(outputs, names):
        by_rank.setdefault(len(out.shape), []).append((out, name))
    boxes = by_rank[3][0][0].reshape(-1, 4)
    count = int(np.asarray(by_rank[1][0][0]).reshape(-1)[0])
    (first, first_name), (second, second_name) = by_rank[2]
    if "score" in first_name or "class" in second_name:
        first, second = second, first
    elif not ("class" in first_name or "score" in second_name):
        # no telling names: the op writes classes before scores; class ids are whole numbers
        if np.allclose(second, np.round(second)) and not np.allclose(first, np.round(first)):
            first, second = second, first
    classes, scores = first.reshape(-1), second.reshape(-1)
    count = max(0, min(count, len(scores)))
    in_h, in_w = meta.input_size
    boxes = boxes[:count] * np.array([in_h, in_w, in_h, in_w], np.float32)
    keep = scores[:count] >= spec.score_threshold
    return boxes[:, [1, 0, 3, 2]][keep], scores[:count][keep], np.round(classes[:count][keep]).astype(int)


def _ssd(outputs, names, meta, spec):
    a, b = (o.reshape(o.shape[1], o.shape[2]) for o in outputs)
    boxes, scores = (a, b) if a.shape[1] == 4 and not (b.shape[1] == 4 and "box" in names[1]) else (b, a)
    offset = 1 if spec.labels and scores.shape[1] == len(spec.labels) + 1 else 0  # background column
    scores = scores[:, offset:]
    classes = scores.argmax(axis=1)
    best = scores[np.arange(len(scores)), classes]
    keep = best >= spec.score_threshold
    in_h, in_w = meta.input_size
    boxes = boxes[keep] * np.array([in_h, in_w, in_h, in_w], np.float32)
    return boxes[:, [1, 0, 3, 2]], best[keep], classes[keep]


def _yolo(outputs, names, meta, spec):
    head = outputs[0][0]
    if head.shape[0] < head.shape[1]:   # [4+C, N]: anchors along the last axis
        head = head.T
    if spec.labels and head.shape[1] == len(spec.labels) + 5:   # YOLOv5: objectness after the box
        scores = head[:, 5:] * head[:, 4:5]
    else:
        scores = head[:, 4:]
    classes = scores.argmax(axis=1)
    best = scores[np.arange(len(scores)), classes]
    keep = best >= spec.score_threshold
    xywh = head[keep, :4].astype(np.float32)
    if len(head) and np.abs(head[:, :4]).max() <= 2.0:   # normalized to the input
        in_h, in_w = meta.input_size
        xywh = xywh * np.array([in_w, in_h, in_w, in_h], np.float32)
    half = xywh[:, 2:] / 2
    return np.concatenate([xywh[:, :2] - half, xywh[:, :2] + half], axis=1), best[keep], classes[keep]


_READERS = {"tflite-postprocess": _postprocessed, "ssd": _ssd, "yolo": _yolo}


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one x1,y1,x2,y2 box [4] with many [N, 4] -> [N]."""
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_threshold: float,
        max_detections: int, max_candidates: int = 3000) -> np.ndarray:
    """Greedy per-class non-maximum suppression over [N, 4] x1,y1,x2,y2 boxes: int indices of the
    kept boxes, best first; a box overlapping a better one of its class above `iou_threshold` goes."""
    if len(boxes) == 0:
        return np.zeros(0, int)
    order = np.argsort(-scores, kind="stable")[:max_candidates]
    # boxes of different classes never overlap once shifted apart by class
    shifted = boxes + (classes.astype(np.float32) * (np.abs(boxes).max() + 1))[:, None]
    keep = []
    while order.size and len(keep) < max_detections:
        best = order[0]
        keep.append(best)
        rest = order[1:]
        order = rest[iou(shifted[best], shifted[rest]) <= iou_threshold]
    return np.asarray(keep, int)


def class_map(output: np.ndarray, spec: DecodeSpec) -> np.ndarray:
    """Segmentation output -> int32 [h, w] class ids: scores [1,h,w,C] / [1,C,h,w] (argmax over C)
    or ids [1,h,w] / [1,1,h,w] / [1,h,w,1]. The class axis is the one as long as the labels, else
    the input layout's channel axis, else the shorter one."""
    out = np.asarray(output)[0]
    if out.ndim == 2:
        return np.rint(out).astype(np.int32)
    if out.shape[0] == 1 or out.shape[2] == 1:
        return np.rint(out[0] if out.shape[0] == 1 else out[..., 0]).astype(np.int32)
    labels = len(spec.labels)
    if labels and (out.shape[0] == labels) != (out.shape[2] == labels):
        channels_first = out.shape[0] == labels
    elif spec.layout is not None:
        channels_first = spec.layout == "NCHW"
    else:
        channels_first = out.shape[0] < out.shape[2]
    return np.argmax(out, axis=0 if channels_first else 2).astype(np.int32)


def decode_mask(outputs: List[np.ndarray], meta: FrameMeta, spec: DecodeSpec) -> Prediction:
    """A class id per pixel of the ORIGINAL image (see class_map and mask_to_original)."""
    return Prediction("segmentation", mask=mask_to_original(class_map(outputs[0], spec), meta))


DECODERS = {"classification": decode_classes, "detection": decode_detections, "segmentation": decode_mask,
            "other": decode_classes}   # an unlabelled single-output model still gets its top-k


def decode(outputs: List[np.ndarray], meta: FrameMeta, spec: DecodeSpec) -> Prediction:
    """float32 model outputs (dequantized, in the model's output order) -> Prediction for the
    frame `meta` describes, by `spec.task`. Raises FrameError for an unknown task or outputs the
    task's decoder cannot read."""
    decoder = DECODERS.get(spec.task)
    if decoder is None:
        raise FrameError("unknown task %r" % spec.task, "use one of: %s" % ", ".join(TASKS))
    return decoder(outputs, meta, spec)
