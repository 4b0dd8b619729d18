"""Open any image file as RGB uint8, whatever its format or mode.

The format is read from the content by Pillow (its magic-byte sniffers), never from the suffix.
Modes: 1, L, LA, P (with or without transparency), RGB, RGBA, CMYK, YCbCr, LAB, HSV, I;16*,
I and F. Alpha is composited over mid-grey (128), so a transparent background does not turn
black or white; 16-bit and float images are scaled by their own range (so a 12-bit camera
frame in a 16-bit PNG stays visible).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

ALPHA_BACKGROUND = 128


@dataclass
class ImageInfo:
    """What the file is, before conversion."""
    format: str | None      # Pillow's format name (JPEG, PNG, TIFF, ...), from the content
    mode: str               # Pillow mode (L, RGB, RGBA, CMYK, I;16, ...)
    width: int
    height: int


class UnreadableImage(Exception):
    """The file is not an image Pillow can decode, or it is truncated."""


def probe(path: Path) -> ImageInfo:
    """Format, mode and size from the header; raises UnreadableImage."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return ImageInfo(image.format, image.mode, image.width, image.height)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise UnreadableImage(_reason(exc)) from None


def read_rgb(path: Path) -> tuple[np.ndarray, ImageInfo]:
    """uint8 [H, W, 3] RGB pixels and the file's ImageInfo; raises UnreadableImage for a
    corrupt or truncated file (the whole image is decoded, not only the header)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            info = ImageInfo(image.format, image.mode, image.width, image.height)
            image.load()  # decodes everything: a truncated file fails here
            image = ImageOps.exif_transpose(image) if image.format in ("JPEG", "TIFF", "WEBP") else image
            return to_rgb(image), info
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise UnreadableImage(_reason(exc)) from None


def to_rgb(image) -> np.ndarray:
    """A loaded PIL image in any mode -> uint8 [H, W, 3] RGB."""
    from PIL import Image

    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        low, high = float(array.min()), float(array.max())
        scaled = np.zeros_like(array) if high <= low else (array - low) / (high - low) * 255.0
        grey = np.clip(np.round(scaled), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode in ("LA", "La", "PA", "RGBA", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (ALPHA_BACKGROUND,) * 3 + (255,))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"), dtype=np.uint8).copy()
    if mode != "RGB":
        image = image.convert("RGB")  # 1, L, CMYK, YCbCr, LAB, HSV
    return np.asarray(image, dtype=np.uint8).copy()


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "truncated" in text.lower():
        return f"truncated ({text})"
    if "cannot identify" in text.lower():
        return "not an image Pillow can decode"
    return text[:160]
