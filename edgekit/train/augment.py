"""Create ML's image augmentations: crop, rotate, blur, exposure, noise, flip.

Each can be switched off (`--no-flip` for left/right classes, `--no-rotate` for text, ...). An
augmentation pass applies, per image, each enabled transform with probability 0.5 at a
magnitude scaled by `strength` (0 < strength <= 1, searched), from a generator seeded by
(pass, image), so a pass is the same every time and its features can be cached.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

KINDS = ("crop", "rotate", "blur", "exposure", "noise", "flip")

# magnitudes at strength 1 (Create ML documents the kinds, not the numbers; these are moderate)
MAX_CROP = 0.35          # fraction of each side that may be cut away
MAX_ROTATE_DEG = 25.0
MAX_BLUR_SIGMA = 1.6     # pixels, at the image's stored size
MAX_EXPOSURE_STOPS = 0.8  # brightness x 2**(+-stops)
MAX_NOISE_STD = 14.0     # pixel levels (0-255)


@dataclass(frozen=True)
class Augmentations:
    """Which of Create ML's augmentations are on (all by default; each `--no-*` flag turns one off)."""
    crop: bool = True
    rotate: bool = True
    blur: bool = True
    exposure: bool = True
    noise: bool = True
    flip: bool = True

    @property
    def enabled(self) -> list[str]:
        return [k for k in KINDS if getattr(self, k)]

    def key(self) -> str:
        """Short cache key, e.g. 'crop+rotate+blur+exposure+noise' without flip."""
        return "+".join(self.enabled) or "none"

    def to_dict(self) -> dict[str, bool]:
        return asdict(self)


def augment(rgb: np.ndarray, kinds: Augmentations, strength: float, rng: np.random.Generator) -> np.ndarray:
    """uint8 [H, W, 3] -> uint8 [h, w, 3] (a crop changes the size; the model resize follows)."""
    from PIL import Image, ImageFilter

    image = rgb
    if kinds.crop and rng.random() < 0.5:
        h, w = image.shape[:2]
        keep = 1.0 - MAX_CROP * strength * rng.random()
        ch, cw = max(1, round(h * keep)), max(1, round(w * keep))
        top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        image = image[top:top + ch, left:left + cw]
    if kinds.flip and rng.random() < 0.5:
        image = image[:, ::-1]
    if kinds.rotate and rng.random() < 0.5:
        angle = float(rng.uniform(-1, 1) * MAX_ROTATE_DEG * strength)
        pil = Image.fromarray(np.ascontiguousarray(image))
        # rotate about the centre, fill corners with the border colour by rotating a padded reflection
        image = np.asarray(pil.rotate(angle, resample=Image.BILINEAR, expand=False, fillcolor=_edge_colour(image)))
    if kinds.blur and rng.random() < 0.5:
        sigma = float(rng.uniform(0.3, 1.0) * MAX_BLUR_SIGMA * strength)
        image = np.asarray(Image.fromarray(np.ascontiguousarray(image)).filter(ImageFilter.GaussianBlur(sigma)))
    image = image.astype(np.float32)
    if kinds.exposure and rng.random() < 0.5:
        image = image * float(2.0 ** (rng.uniform(-1, 1) * MAX_EXPOSURE_STOPS * strength))
    if kinds.noise and rng.random() < 0.5:
        image = image + rng.normal(0.0, MAX_NOISE_STD * strength * rng.uniform(0.3, 1.0), image.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def _edge_colour(image: np.ndarray) -> tuple[int, int, int]:
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    return tuple(int(v) for v in np.median(border, axis=0))


def pass_rng(pass_index: int, sample_index: int, seed: int = 0) -> np.random.Generator:
    """The generator of augmentation pass PASS_INDEX for one image: the same numbers on every run, so a
    pass can be cached."""
    return np.random.default_rng([seed, pass_index, sample_index])
