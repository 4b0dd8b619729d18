"""Class folders for the `edgekit train` tests, built from real labelled photos that ship with
scikit-image (LFW faces vs non-faces, see edgekit/train/sample_data.py), with planted problems."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

FAST = ["--backbones", "efficientnet_lite0", "--input-sizes", "64"]   # the smallest real backbone and size


def build_photos(root: Path, train_per_class: int = 30, test_per_class: int = 10) -> dict[str, Path]:
    """root/train/{face,non_face}, root/test/{face,non_face}, and the planted files by name."""
    from PIL import Image

    from edgekit.train.sample_data import faces

    pixels, labels = faces()
    by_class = {"face": [p for p, y in zip(pixels, labels) if y == 1],
                "non_face": [p for p, y in zip(pixels, labels) if y == 0]}

    def save(image: np.ndarray, path: Path, mode: str = "RGB", fmt: str = "JPEG") -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        picture = Image.fromarray(image).resize((100, 100), Image.BICUBIC)
        if mode == "I;16":
            picture = Image.fromarray(np.asarray(picture.convert("L")).astype(np.uint16) * 257)
        else:
            picture = picture.convert(mode)
        picture.save(path, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
        return path

    planted: dict[str, Path] = {}
    for label, images in by_class.items():
        for i, image in enumerate(images[:train_per_class]):
            save(image, root / "train" / label / f"{label}_{i:03d}.jpg")
        for i, image in enumerate(images[train_per_class:train_per_class + test_per_class]):
            save(image, root / "test" / label / f"{label}_test_{i:03d}.jpg")
    spare_faces = by_class["face"][train_per_class + test_per_class:]
    spare_other = by_class["non_face"][train_per_class + test_per_class:]
    planted["mislabelled"] = save(spare_faces[0], root / "train" / "non_face" / "mislabelled_face.jpg")
    planted["greyscale"] = save(spare_faces[1], root / "train" / "face" / "grey_face.png", "L", "PNG")
    planted["cmyk"] = save(spare_other[0], root / "train" / "non_face" / "cmyk.jpg", "CMYK", "JPEG")
    planted["sixteen_bit"] = save(spare_other[1], root / "train" / "non_face" / "sixteen_bit.png", "I;16", "PNG")
    planted["alpha"] = save(spare_faces[2], root / "train" / "face" / "alpha.png", "RGBA", "PNG")
    planted["png_named_jpg"] = save(spare_faces[3], root / "train" / "face" / "really_a_png.jpg", "RGB", "PNG")
    planted["duplicate_source"] = root / "train" / "non_face" / "non_face_004.jpg"
    planted["duplicate"] = root / "train" / "face" / "copy_of_non_face_004.jpg"
    shutil.copy(planted["duplicate_source"], planted["duplicate"])
    planted["leak_source"] = root / "test" / "face" / "face_test_003.jpg"
    planted["leak"] = root / "train" / "face" / "leaked_test_image.jpg"
    shutil.copy(planted["leak_source"], planted["leak"])
    planted["near_source"] = root / "test" / "non_face" / "non_face_test_002.jpg"
    planted["near_duplicate"] = root / "train" / "non_face" / "recompressed.jpg"
    Image.open(planted["near_source"]).resize((96, 96), Image.BILINEAR).save(planted["near_duplicate"], quality=70)
    data = (root / "train" / "face" / "face_000.jpg").read_bytes()
    planted["truncated"] = root / "train" / "face" / "truncated.jpg"
    planted["truncated"].write_bytes(data[: len(data) // 3])
    planted["not_an_image"] = root / "train" / "non_face" / "notes.jpg"
    planted["not_an_image"].write_text("shopping list: milk, bread\n")
    return planted


def run_cli(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgekit", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
