"""LiteRT (TFLite) on the CPU, with XNNPACK threads settable."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..manifest import TensorInfo
from ..tflite_model import read_tflite
from .base import BACKENDS, Runner


@BACKENDS.register("litert")
class LiteRTRunner(Runner):
    backend = "litert"
    formats = ("tflite",)
    requires = ("ai_edge_litert",)
    options = ("threads",)

    def __init__(self, path: Path, device: str | None = None, threads: int | None = None):
        super().__init__(path, device)
        read_tflite(self.path)  # bounds-checked before the native interpreter sees the bytes
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(self.path), num_threads=threads)
        self.interpreter.allocate_tensors()
        self._in = self.interpreter.get_input_details()
        self._out = self.interpreter.get_output_details()
        self.inputs = [_info(d) for d in self._in]
        self.outputs = [_info(d) for d in self._out]

    def _infer(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        for detail, array in zip(self._in, arrays):
            self.interpreter.set_tensor(detail["index"], array)
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(d["index"]).copy() for d in self._out]


def _info(detail) -> TensorInfo:
    params = detail.get("quantization_parameters", {})
    scales = [float(s) for s in params.get("scales", [])]
    quant = {"scale": scales, "zero_point": [int(z) for z in params.get("zero_points", [])]} if scales else None
    return TensorInfo(detail["name"], [int(d) for d in detail["shape"]], np.dtype(detail["dtype"]).name, quant)
