"""Backbone features, computed once per (backbone, input size, augmentation pass) and cached.

A head trains on these in seconds, so a trial never runs the backbone. The cache lives in
`<out>/cache/features/` (one .npy per key, written atomically), so `--resume` and a rerun on the
same data reuse it; the key includes the dataset fingerprint (files, labels, splits), the
backbone, the input size, the augmentation kinds, strength and pass, and the split point for
fine-tuning (the activation entering the last k blocks, stored as float16).

The model input is made by edgekit's own resize (the runtime's, so the float model sees what
every exported artifact will see) from the in-memory copy of each image.
"""
from __future__ import annotations

import hashlib
import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..fsutil import write_atomic
from .augment import Augmentations, augment, pass_rng
from .backbones import Backbone, build_trunk
from .data import Dataset

BATCH = 32
AUG_PASSES = 2                      # augmented copies of the training set per strength
STRENGTHS = {"none": 0.0, "light": 0.5, "strong": 1.0}


def model_input(rgb: np.ndarray, size: int, backbone: Backbone) -> np.ndarray:
    """uint8 [H, W, 3] RGB -> float32 [3, size, size], normalized as the backbone's weights expect."""
    return prepare(rgb, size, backbone.mean, backbone.std)


def prepare(rgb: np.ndarray, size: int, mean, std) -> np.ndarray:
    """uint8 [H, W, 3] RGB -> float32 [3, size, size], (pixel - mean) / std in 0-255 units, resized
    'stretch'. Made by edgekit.frames, the runtime's own preprocessing (and the manifest of every
    exported artifact says stretch, RGB and this mean and std), so training sees what deployment sees."""
    from ..frames import FrameSpec, preprocess_image, to_layout

    spec = FrameSpec.of({"input_size": [size, size], "resize": "stretch", "color_order": "RGB", "layout": "NCHW",
                         "mean": list(mean), "std": list(std)})
    return to_layout(preprocess_image(np.ascontiguousarray(rgb), spec), spec.layout)[0]


def run_model(model, images: list[np.ndarray], size: int, mean, std, batch: int = BATCH) -> np.ndarray:
    """float32 [N, classes] softmax probabilities of a float classifier (nn.Module or TorchScript)
    on uint8 RGB IMAGES."""
    import torch

    from .threads import backbone_threads, torch_threads

    outputs = []
    with torch.inference_mode(), torch_threads(backbone_threads()):
        for start in range(0, len(images), batch):
            x = torch.from_numpy(np.stack([prepare(i, size, mean, std) for i in images[start:start + batch]]))
            outputs.append(torch.softmax(model(x), dim=1).numpy())
    return np.concatenate(outputs) if outputs else np.zeros((0, 0), np.float32)


class BudgetSpent(Exception):
    """The wall-clock deadline passed while features were being extracted (nothing is cached)."""


@dataclass
class ExtractionStats:
    images: int = 0
    seconds: float = 0.0
    cost_units: float = 0.0         # images x relative_cost (Lite0 at 224px = 1 per image)
    by_key: dict[str, float] = field(default_factory=dict)

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0

    @property
    def seconds_per_unit(self) -> float | None:
        """Seconds per image of EfficientNet-Lite0 at 224px, as measured so far on this host."""
        return self.seconds / self.cost_units if self.cost_units else None


class FeatureCache:
    """Cached backbone outputs for one dataset. Arrays are float32 [N, 1280] (pooled) or
    float16 [N, C, h, w] (the activation entering the last `tap` blocks), N in `indices` order."""

    def __init__(self, dataset: Dataset, folder: Path, augmentations: Augmentations,
                 progress: Callable[[str, int, int], None] | None = None):
        self.dataset = dataset
        self.folder = Path(folder)
        self.augmentations = augmentations
        self.progress = progress
        self.stats = ExtractionStats()
        self._memory: dict[str, np.ndarray] = {}
        self._trunks: dict[str, object] = {}
        self._fingerprint = dataset.fingerprint()
        self.deadline: float | None = None   # time.monotonic(); past it, extraction raises BudgetSpent

    def clean(self, backbone: Backbone, size: int, indices: list[int], tap: int = 0) -> np.ndarray:
        """Features of the un-augmented images at INDICES (any split)."""
        everything = self.dataset.indices("train", True) + self.dataset.indices("val", True) + \
            self.dataset.indices("test", True)
        array = self._get(backbone, size, everything, "clean", 0.0, 0, tap)
        position = {index: row for row, index in enumerate(everything)}
        return array[[position[i] for i in indices]]

    def augmented(self, backbone: Backbone, size: int, level: str, pass_index: int, tap: int = 0) -> np.ndarray:
        """Features of augmentation pass PASS_INDEX (1-based) of every training image, at LEVEL."""
        return self._get(backbone, size, self.dataset.indices("train"), level, STRENGTHS[level], pass_index, tap)

    def training_set(self, backbone: Backbone, size: int, level: str, tap: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Features and int64 targets the head trains on: the clean training images plus
        AUG_PASSES augmented copies of them (none at level 'none')."""
        train = self.dataset.indices("train")
        targets = self.dataset.targets(train)
        parts = [self.clean(backbone, size, train, tap)]
        if STRENGTHS[level] > 0 and self.augmentations.enabled:
            parts += [self.augmented(backbone, size, level, p, tap) for p in range(1, AUG_PASSES + 1)]
        return np.concatenate(parts), np.tile(targets, len(parts))

    def cached(self, backbone: Backbone, size: int, level: str) -> bool:
        """Are the arrays a trial at this architecture needs already on disk?"""
        keys = [self._key(backbone, size, "clean", 0.0, 0, 0)]
        if STRENGTHS[level] > 0 and self.augmentations.enabled:
            keys += [self._key(backbone, size, level, STRENGTHS[level], p, 0) for p in range(1, AUG_PASSES + 1)]
        return all(k in self._memory or (self.folder / f"{k}.npy").exists() for k in keys)

    def missing_images(self, backbone: Backbone, size: int, level: str, tap: int = 0) -> int:
        """How many images a trial at this architecture would still have to run through the backbone."""
        everything = len(self.dataset.indices("train", True) + self.dataset.indices("val", True) +
                         self.dataset.indices("test", True))
        missing = 0 if self._have(self._key(backbone, size, "clean", 0.0, 0, tap)) else everything
        if STRENGTHS[level] > 0 and self.augmentations.enabled:
            train = len(self.dataset.indices("train"))
            missing += sum(train for p in range(1, AUG_PASSES + 1)
                           if not self._have(self._key(backbone, size, level, STRENGTHS[level], p, tap)))
        return missing

    def _have(self, key: str) -> bool:
        return key in self._memory or (self.folder / f"{key}.npy").exists()

    def _key(self, backbone: Backbone, size: int, level: str, strength: float, pass_index: int, tap: int) -> str:
        augment_key = self.augmentations.key() if strength > 0 else "none"
        text = f"{self._fingerprint}|{backbone.name}|{size}|{augment_key}|{strength}|{pass_index}|{tap}"
        return f"{backbone.name}-{size}-{level}{pass_index}-t{tap}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"

    def _get(self, backbone, size, indices, level, strength, pass_index, tap) -> np.ndarray:
        key = self._key(backbone, size, level, strength, pass_index, tap)
        if key in self._memory:
            return self._memory[key]
        path = self.folder / f"{key}.npy"
        if path.exists():
            try:
                array = np.load(path, allow_pickle=False)
                if len(array) == len(indices):
                    self._memory[key] = array
                    return array
            except (OSError, ValueError):
                pass  # a damaged cache file is recomputed
        array = self._extract(backbone, size, indices, strength, pass_index, tap, key)
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        write_atomic(path, buffer.getvalue())
        self._memory[key] = array
        return array

    def trunk(self, backbone: Backbone):
        if backbone.name not in self._trunks:
            self._trunks[backbone.name] = build_trunk(backbone.name)
        return self._trunks[backbone.name]

    def _extract(self, backbone, size, indices, strength, pass_index, tap, key) -> np.ndarray:
        import torch

        from .backbones import relative_cost
        from .threads import backbone_threads, torch_threads

        trunk = self.trunk(backbone)
        thumbnails = self.dataset.thumbnails
        outputs = []
        started = time.perf_counter()
        label = f"features {backbone.name} {size}px" + (f" augmented pass {pass_index}" if pass_index else "")
        with torch.inference_mode(), torch_threads(backbone_threads()):
            for start in range(0, len(indices), BATCH):
                if self.deadline is not None and time.monotonic() > self.deadline:
                    raise BudgetSpent(f"the budget ran out while extracting {label}")
                images = []
                for index in indices[start:start + BATCH]:
                    rgb = thumbnails[index]
                    if strength > 0:
                        rgb = augment(rgb, self.augmentations, strength, pass_rng(pass_index, index))
                    images.append(model_input(rgb, size, backbone))
                batch = torch.from_numpy(np.stack(images))
                out = trunk.until(batch, tap) if tap else trunk(batch)
                outputs.append(out.numpy().astype(np.float16 if tap else np.float32))
                if self.progress:
                    self.progress(label, min(start + BATCH, len(indices)), len(indices))
        seconds = time.perf_counter() - started
        self.stats.images += len(indices)
        self.stats.seconds += seconds
        self.stats.cost_units += len(indices) * relative_cost(backbone, size)
        self.stats.by_key[key] = seconds
        return np.concatenate(outputs) if outputs else np.zeros((0, backbone.feature_dim), np.float32)
