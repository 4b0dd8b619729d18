"""Core ML runtime: prediction exists only on macOS (compute units all, cpuOnly, cpuAndNE),
so on other hosts this backend reports itself unavailable and is never exercised here.

Artifacts from edgekit take an ImageType with normalization inside the model, so `infer`
turns the normalized float input back into the picture, using the manifest's mean/std.
Classifier outputs (label -> score dictionaries) come back as arrays in label order.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ..errors import REMEDY_REEXPORT, ModelFormatError, UnknownNameError, summary
from ..formats.coreml import class_labels
from ..manifest import TensorInfo, read_manifest
from .base import BACKENDS, Runner

COMPUTE_UNITS = {"all": "ALL", "cpuOnly": "CPU_ONLY", "cpuAndNE": "CPU_AND_NE", "cpuAndGPU": "CPU_AND_GPU"}


@BACKENDS.register("coreml")
class CoreMLRunner(Runner):
    backend = "coreml"
    formats = ("coreml",)
    requires = ("coremltools",)
    device_kinds = tuple(COMPUTE_UNITS)  # the "device" is the Core ML compute-unit choice
    probe_in_child = True  # Core ML compiles the package natively; a damaged one must not crash us

    @classmethod
    def host_cannot(cls) -> str | None:
        return None if sys.platform == "darwin" else "Core ML prediction needs macOS"

    def __init__(self, path: Path, device: str | None = None):
        super().__init__(path, device or "all")
        if self.device not in COMPUTE_UNITS:
            raise UnknownNameError("Core ML compute unit", self.device, COMPUTE_UNITS)
        import coremltools as ct

        try:
            self.model = ct.models.MLModel(str(self.path),
                                           compute_units=getattr(ct.ComputeUnit, COMPUTE_UNITS[self.device]))
        except Exception as exc:  # coremltools raises plain Exception/RuntimeError for bad packages
            raise ModelFormatError(f"Core ML cannot load {self.path}: {summary(exc)}", REMEDY_REEXPORT) from None
        self.manifest = read_manifest(self.path)
        spec = self.model.get_spec()
        self._image_inputs = {f.name for f in spec.description.input if f.type.WhichOneof("Type") == "imageType"}
        self.inputs = self.manifest.inputs if self.manifest else [TensorInfo(f.name, [], "float32")
                                                                  for f in spec.description.input]
        self._probabilities = spec.description.predictedProbabilitiesName
        self.outputs = [TensorInfo(f.name, [], "float32") for f in spec.description.output
                        if f.name != spec.description.predictedFeatureName]

    def _infer(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        named = {t.name: self._image(a) if t.name in self._image_inputs else a for t, a in zip(self.inputs, arrays)}
        result = self.model.predict(named)
        return [self._array(result[t.name]) for t in self.outputs]

    def _image(self, batch: np.ndarray):
        """Normalized float [1, C, H, W] (C 3 or 1) -> the RGB or greyscale ("L") picture the
        ImageType expects."""
        from PIL import Image

        pre = self.manifest.preprocess
        channels = batch.shape[1]
        pixels = batch[0].transpose(1, 2, 0) * np.asarray(pre.std, np.float32)[:channels] \
            + np.asarray(pre.mean, np.float32)[:channels]
        picture = np.clip(np.round(pixels), 0, 255).astype(np.uint8)
        if channels == 1:
            return Image.fromarray(picture[..., 0], "L")
        return Image.fromarray(picture[..., ::-1] if pre.color_order == "BGR" else picture, "RGB")

    def _array(self, value) -> np.ndarray:
        if isinstance(value, dict):  # classifier scores keyed by label
            labels = class_labels(list(self.manifest.labels)) if self.manifest else []
            order = labels if len(labels) == len(value) else sorted(value)
            return np.asarray([[value[key] for key in order]], np.float32)
        return np.asarray(value, np.float32)
