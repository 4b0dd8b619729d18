"""Core ML runtime: prediction exists only on macOS (compute units all, cpuOnly, cpuAndNE)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .. import deps
from ..errors import EdgekitError
from ..manifest import TensorInfo
from .base import BACKENDS, Runner

COMPUTE_UNITS = {"all": "ALL", "cpuOnly": "CPU_ONLY", "cpuAndNE": "CPU_AND_NE", "cpuAndGPU": "CPU_AND_GPU"}


@BACKENDS.register("coreml")
class CoreMLRunner(Runner):
    backend = "coreml"
    formats = ("coreml",)
    requires = ("coremltools",)

    @classmethod
    def unavailable_reason(cls) -> str | None:
        if sys.platform != "darwin":
            return "Core ML prediction needs macOS"
        return deps.missing("coremltools")

    def __init__(self, path: Path, device: str | None = None):
        super().__init__(path, device or "all")
        if self.device not in COMPUTE_UNITS:
            raise EdgekitError(f"unknown Core ML compute unit '{self.device}'",
                               f"choose one of {', '.join(COMPUTE_UNITS)}")
        import coremltools as ct

        self.model = ct.models.MLModel(str(self.path), compute_units=getattr(ct.ComputeUnit, COMPUTE_UNITS[self.device]))
        spec = self.model.get_spec()
        self.inputs = [TensorInfo(f.name, [], "float32") for f in spec.description.input]
        self.outputs = [TensorInfo(f.name, [], "float32") for f in spec.description.output]

    def infer(self, feeds) -> list[np.ndarray]:
        result = self.model.predict(feeds if isinstance(feeds, dict) else {self.inputs[0].name: feeds})
        return [np.asarray(result[t.name]) for t in self.outputs]
