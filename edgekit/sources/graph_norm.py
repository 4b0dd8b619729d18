"""Normalization a model applies to its own input, read from its graph.

Exporters often put the preprocessing into the model: a leading Keras `Rescaling(1/127.5,
offset=-1)` or `Normalization(mean, variance)` layer, constant Sub/Div or Mul/Add nodes at an ONNX
graph's entry, MUL/ADD ops at a TFLite subgraph's entry. Such a model takes raw pixels, and
normalizing its input again (the usual [0, 1] or mean/std assumption) feeds it wrong values that
verify cannot notice, since the artifact and the source then get the same wrong input. Each
source kind walks its entry (sources/keras.py, onnx.py, tflite.py) into an `EntryAffine` here,
which says what the graph computes and what it therefore takes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..manifest import GraphNormalization

PIXEL_UNITS = 2.0   # a std or |mean| above this is in 0-255 pixel units (ImageNet in 0-1 units: 0.485, 0.229)


@dataclass
class EntryAffine:
    """y = x * scale + bias, per channel (arrays of 1 or C values), composed op by op from the
    graph input x; `steps` names the ops."""

    scale: np.ndarray
    bias: np.ndarray
    steps: list[str]

    @classmethod
    def identity(cls) -> EntryAffine:
        return cls(np.ones(1), np.zeros(1), [])

    def apply(self, op: str, constant: np.ndarray, name: str) -> bool:
        """Compose `y op constant` (Add, Sub, Mul, Div with a per-channel constant); False for
        an op or constant it cannot take (the walk stops there)."""
        op = op.capitalize()
        if op == "Add":
            self.bias = self.bias + constant
        elif op == "Sub":
            self.bias = self.bias - constant
        elif op == "Mul":
            self.scale, self.bias = self.scale * constant, self.bias * constant
        elif op == "Div":
            if np.any(constant == 0):
                return False
            self.scale, self.bias = self.scale / constant, self.bias / constant
        else:
            return False
        self.steps.append(name)
        return True

    def normalization(self, channels: int, where: str) -> GraphNormalization | None:
        """The walk as `(x - mean) / std`: mean = -bias / scale, std = 1 / scale per channel; None
        for no step, an identity or a scale of 0 or below. Units: pixels when any std or |mean|
        exceeds PIXEL_UNITS (the model takes raw 0-255 pixels), else unit (it takes pixels / 255)."""
        if not self.steps or np.any(self.scale <= 0):
            return None
        if np.allclose(self.scale, 1.0) and np.allclose(self.bias, 0.0):
            return None
        std = np.broadcast_to(1.0 / self.scale, (channels,)) if self.scale.size in (1, channels) else None
        mean = np.broadcast_to(-self.bias / self.scale, (channels,)) if self.bias.size in (1, channels) else None
        if std is None or mean is None:
            return None
        units = "pixels" if max(float(np.abs(mean).max()), float(std.max())) > PIXEL_UNITS else "unit"
        return GraphNormalization(mean=[round(float(v), 6) for v in mean], std=[round(float(v), 6) for v in std],
                                  units=units, found=f"{where} ({', '.join(self.steps)})")


def per_channel(constant, rank: int, channel_axis: int, channels: int) -> np.ndarray | None:
    """A constant operand as 1 or CHANNELS values, when it broadcasts over an input of RANK
    along CHANNEL_AXIS only (scalar, [C], [1, C, 1, 1], [1, 1, 1, C]); None otherwise."""
    array = np.asarray(constant, np.float64)
    if array.size == 1:
        return array.reshape(1)
    if array.ndim > rank:
        return None
    shape = [1] * (rank - array.ndim) + list(array.shape)
    axis = channel_axis % rank
    if shape[axis] == channels and all(d == 1 for i, d in enumerate(shape) if i != axis):
        return array.reshape(-1)
    return None


def facts_of(normalization: GraphNormalization, channels: int) -> dict:
    """The Preprocess facts a graph normalization implies: raw pixels (mean 0, std 1) or pixels
    / 255 (std 255), per channel; `normalization` "graph"."""
    std = 1.0 if normalization.units == "pixels" else 255.0
    return {"mean": [0.0] * channels, "std": [std] * channels, "normalization": "graph",
            "graph_normalization": normalization}
