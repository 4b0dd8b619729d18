"""Calibration and verify data: an image folder, a video, a .npy array, or `synthetic`.

Every sample goes through frames.preprocess_image with the manifest's Preprocess (the code the
runtime and the board use), so int8 ranges are measured on exactly what the deployed model will see.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import frames
from .errors import CalibrationError
from .manifest import Preprocess

DEFAULT_SAMPLES = 128    # enough for stable int8 ranges on CNNs; more adds time, not accuracy
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


@dataclass
class SampleSet:
    """Preprocessed model inputs for calibration or verify, and where they came from."""

    samples: np.ndarray          # N x H x W x 3 float32, preprocessed, NHWC
    kind: str                    # images | video | npy | synthetic | photos
    origin: str
    real: bool                   # False for synthetic data: accuracy is then unmeasured

    def describe(self) -> dict:
        """{kind, origin, samples (count), real}: what the manifest and ConvertResult record."""
        return {"kind": self.kind, "origin": self.origin, "samples": int(len(self.samples)), "real": self.real}


def load_samples(spec: str | Path, pre: Preprocess, limit: int = DEFAULT_SAMPLES, progress=None) -> SampleSet:
    """Up to LIMIT samples from SPEC, each preprocessed with PRE (the manifest's resize, colour
    order and (pixel - mean) / std): float32 [N, H, W, 3], NHWC, H x W = PRE.input_size.

    SPEC: an image folder (searched recursively; LIMIT files spread over the sorted list), a
    video (LIMIT frames spread over its length), one image, a .npy array (uint8 N x H x W x 3
    pixels are preprocessed; float32 is taken as model-ready), or "synthetic" (seeded random
    pixels; `real` is then False). PROGRESS: a rich Progress, or None.

    Raises CalibrationError (BadInput) for a missing, empty, unreadable or misshapen SPEC.
    """
    if limit < 1:
        raise CalibrationError(f"--calib-samples must be at least 1, got {limit}")
    if str(spec) == "synthetic":
        rng = np.random.default_rng(0)
        height, width = pre.input_size
        pixels = rng.integers(0, 256, size=(limit, height, width, 3), dtype=np.uint8)
        return SampleSet(np.concatenate([_preprocess(p, pre) for p in pixels]), "synthetic", "synthetic", False)
    path = Path(spec)
    if not path.exists():
        raise CalibrationError(f"calibration data {path} does not exist",
                               "pass an image folder, a video file, a .npy array or 'synthetic'")
    if path.is_dir():
        return _from_folder(path, pre, limit, progress)
    if path.suffix.lower() == ".npy":
        return _from_npy(path, pre, limit)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return _from_video(path, pre, limit, progress)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return _stack([_read_image(path)], pre, "images", str(path), progress)
    raise CalibrationError(f"calibration data {path} is not a folder, video or .npy file",
                           f"videos: {', '.join(sorted(VIDEO_SUFFIXES))}; images go in a folder")


def _from_folder(folder: Path, pre: Preprocess, limit: int, progress) -> SampleSet:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise CalibrationError(f"calibration folder {folder} has no images",
                               f"add {', '.join(sorted(IMAGE_SUFFIXES))} files")
    if len(files) > limit:  # spread picks over the whole folder, not the first N names
        files = [files[i] for i in np.linspace(0, len(files) - 1, limit).astype(int)]
    return _stack(files, pre, "images", str(folder), progress)


def _read_image(path: Path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise CalibrationError(f"calibration image {path} cannot be decoded", "remove or re-save it")
    if image.ndim == 3 and image.shape[2] == 3:
        image = image[:, :, ::-1]  # OpenCV decodes BGR; samples are RGB until preprocess
    channels = image.shape[2] if image.ndim == 3 else 1
    if channels != 3:
        raise CalibrationError(f"calibration image {path} has {channels} channel(s); the model takes 3",
                               "convert the images to 3-channel RGB (drop alpha, expand grayscale)")
    if image.dtype != np.uint8:
        image = (image / (65535.0 if image.dtype == np.uint16 else image.max() or 1) * 255).astype(np.uint8)
    return image


def _stack(items, pre: Preprocess, kind: str, origin: str, progress) -> SampleSet:
    task = progress.add_task(f"calibration {kind}", total=len(items)) if progress else None
    batches = []
    for item in items:
        image = _read_image(item) if isinstance(item, Path) else item
        batches.append(_preprocess(image, pre))
        if progress:
            progress.advance(task)
    return SampleSet(np.concatenate(batches), kind, origin, True)


def _from_video(path: Path, pre: Preprocess, limit: int, progress) -> SampleSet:
    import cv2

    capture = cv2.VideoCapture(str(path))
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    if not capture.isOpened() or total <= 0:
        raise CalibrationError(f"video {path} cannot be read (no frames)", "check the file with ffprobe")
    pictures = []
    for index in np.unique(np.linspace(0, total - 1, min(limit, total)).astype(int)):
        capture.set(cv2.CAP_PROP_POS_FRAMES, int(index))
        ok, frame = capture.read()
        if ok:
            pictures.append(frame[:, :, ::-1])
    capture.release()
    if not pictures:
        raise CalibrationError(f"video {path} yielded no decodable frames", "re-encode it (H.264 MP4)")
    return _stack(pictures, pre, "video", str(path), progress)


def _from_npy(path: Path, pre: Preprocess, limit: int) -> SampleSet:
    """uint8 N x H x W x 3 pixels are preprocessed; float32 arrays are taken as model-ready
    (already preprocessed, NHWC or NCHW)."""
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise CalibrationError(f"{path} is not a readable .npy array ({exc})") from None
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or 3 not in (array.shape[1], array.shape[3]):
        raise CalibrationError(f"{path} has shape {array.shape}; expected N x H x W x 3 (or N x 3 x H x W)")
    array = array[:limit]
    if array.dtype == np.uint8:
        if array.shape[3] != 3:
            array = array.transpose(0, 2, 3, 1)
        return SampleSet(np.concatenate([_preprocess(a, pre) for a in array]), "npy", str(path), True)
    if array.shape[1] == 3 and array.shape[3] != 3:
        array = array.transpose(0, 2, 3, 1)
    expected = tuple(pre.input_size)
    if array.shape[1:3] != expected:
        raise CalibrationError(f"{path} holds float samples of size {array.shape[1:3]}, the model takes {expected}",
                               "save uint8 pixels instead (they are resized) or resize the floats")
    return SampleSet(array.astype(np.float32), "npy", str(path), True)


def _preprocess(image: np.ndarray, pre: Preprocess) -> np.ndarray:
    """uint8 RGB [H, W, 3] -> float32 [1, h, w, C] NHWC (frames.preprocess_image), or one
    CalibrationError line."""
    try:
        return frames.preprocess_image(image, pre)
    except frames.FrameError as exc:
        raise CalibrationError(str(exc), exc.remedy) from None
