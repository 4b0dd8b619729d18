"""Drawing a Prediction onto its frame: class labels and scores, detection boxes, segmentation
masks, and a HUD line (FPS, inference ms, end-to-end latency, backend/device, model)."""
from __future__ import annotations

import numpy as np

from ..frames import LUMA_BT601
from .cv import cv2

FONT_SCALE = 0.5


def palette(count: int = 256) -> np.ndarray:
    """Distinct BGR colours per class id (golden-ratio hues), stable across frames."""
    cv = cv2()
    hues = ((np.arange(count) * 0.618033988749895) % 1.0 * 179).astype(np.uint8)
    hsv = np.stack([hues, np.full(count, 200, np.uint8), np.full(count, 255, np.uint8)], axis=1)
    return cv.cvtColor(hsv[None], cv.COLOR_HSV2BGR)[0]


_PALETTE: np.ndarray | None = None


def _colour(index: int) -> tuple[int, int, int]:
    global _PALETTE
    if _PALETTE is None:
        _PALETTE = palette()
    return tuple(int(c) for c in _PALETTE[index % len(_PALETTE)])


def _label(image: np.ndarray, text: str, origin: tuple[int, int], colour, scale: float = FONT_SCALE) -> int:
    """Text on a filled box (readable on any background); returns the box height."""
    cv = cv2()
    (width, height), base = cv.getTextSize(text, cv.FONT_HERSHEY_SIMPLEX, scale, 1)
    x, y = origin
    cv.rectangle(image, (x, y), (x + width + 6, y + height + base + 6), colour, -1)
    luminance = sum(w * c for w, c in zip(LUMA_BT601[::-1], colour))   # colour is BGR
    ink = (0, 0, 0) if luminance > 140 else (255, 255, 255)
    cv.putText(image, text, (x + 3, y + height + 3), cv.FONT_HERSHEY_SIMPLEX, scale, ink, 1, cv.LINE_AA)
    return height + base + 6


def draw_mask(image: np.ndarray, mask: np.ndarray, alpha: float = 0.45) -> None:
    """Blend class colours over every non-background (id != 0) pixel, in place."""
    if mask.shape[:2] != image.shape[:2]:
        cv = cv2()
        mask = cv.resize(mask.astype(np.int32), (image.shape[1], image.shape[0]), interpolation=cv.INTER_NEAREST)
    global _PALETTE
    if _PALETTE is None:
        _PALETTE = palette()
    ids = mask.astype(np.int64) % len(_PALETTE)
    fg = ids != 0
    if fg.any():
        coloured = _PALETTE[ids[fg]].astype(np.float32)
        image[fg] = (image[fg] * (1 - alpha) + coloured * alpha).astype(np.uint8)


def draw_detections(image: np.ndarray, detections) -> None:
    cv = cv2()
    height, width = image.shape[:2]
    for det in detections:
        x1, y1, x2, y2 = (int(round(v)) for v in det.box)
        x1, x2 = max(0, min(x1, width - 1)), max(0, min(x2, width - 1))
        y1, y2 = max(0, min(y1, height - 1)), max(0, min(y2, height - 1))
        colour = _colour(det.index)
        cv.rectangle(image, (x1, y1), (x2, y2), colour, 2)
        _label(image, f"{det.label} {det.score:.2f}", (x1, max(0, y1 - 20)), colour)


def draw_classes(image: np.ndarray, classes, top: int = 3) -> None:
    y = 8
    for cls in classes[:top]:
        y += _label(image, f"{cls.label} {cls.score:.2f}", (8, y), _colour(cls.index)) + 2


def draw_hud(image: np.ndarray, hud: dict) -> None:
    parts = [f"{hud['fps']:.1f} FPS" if hud.get("fps") else None,
             f"infer {hud['infer_ms']:.1f} ms" if hud.get("infer_ms") is not None else None,
             f"e2e {hud['latency_ms']:.0f} ms" if hud.get("latency_ms") else None,
             hud.get("backend"), hud.get("model")]
    text = " | ".join(p for p in parts if p)
    if text:
        scale = min(FONT_SCALE, max(0.35, image.shape[1] / 1400))   # keep the line inside small frames
        _label(image, text, (0, max(0, image.shape[0] - round(48 * scale))), (32, 32, 32), scale)


def annotate(image: np.ndarray, prediction, hud: dict) -> np.ndarray:
    """A copy of IMAGE (BGR) with everything PREDICTION carries drawn on it, and the HUD."""
    out = np.ascontiguousarray(image).copy()
    if prediction.mask is not None:
        draw_mask(out, prediction.mask)
    if prediction.detections:
        draw_detections(out, prediction.detections)
    if prediction.classes:
        draw_classes(out, prediction.classes)
    draw_hud(out, hud)
    return out
