"""Real photographs that ship inside scikit-image, used when no verify data is given and by
the demo. Crops and mirror images multiply them into enough samples for int8 statistics."""
from __future__ import annotations

from pathlib import Path

import numpy as np

# scikit-image's bundled photos (no download): colour first, then greyscale
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "hubble_deep_field", "immunohistochemistry",
          "retina", "stereo_motorcycle", "camera", "coins", "brick", "grass", "gravel", "moon")


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("skimage") is not None


def photo(name: str) -> np.ndarray:
    from skimage import data

    image = getattr(data, name)()
    image = image[0] if isinstance(image, tuple) else image
    return np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image


def photo_set(count: int | None = None) -> list[tuple[str, np.ndarray]]:
    """(name, RGB uint8) views: each photo whole, centre-cropped, two corner crops and mirrored."""
    views = []
    for name in PHOTOS:
        image = photo(name)
        h, w = image.shape[:2]
        views += [(name, image),
                  (f"{name}-center", image[h // 6: h - h // 6, w // 6: w - w // 6]),
                  (f"{name}-topleft", image[: h * 2 // 3, : w * 2 // 3]),
                  (f"{name}-bottomright", image[h // 3:, w // 3:]),
                  (f"{name}-mirror", image[:, ::-1])]
    # interleave so that a short prefix still covers every photo
    ordered = [views[i * 5 + k] for k in range(5) for i in range(len(PHOTOS))]
    return ordered[:count] if count else ordered


def write_photo_folder(folder: Path | str, count: int | None = None) -> Path:
    import cv2

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for index, (name, image) in enumerate(photo_set(count)):
        cv2.imwrite(str(folder / f"{index:03d}_{name}.png"), np.ascontiguousarray(image[:, :, ::-1]))
    return folder
