"""Keras source (.keras v3 archives and legacy .h5)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..deps import require
from ..errors import REMEDY_REEXPORT, ModelFormatError, summary
from ..manifest import TensorInfo
from .base import SOURCES, SourceModel, static_shape


@SOURCES.register("keras-h5")
@SOURCES.register("keras")
class KerasSource(SourceModel):
    kind = "keras"
    layout = "NHWC"

    def __init__(self, path: Path, model):
        super().__init__(path)
        self.model = model
        shape = list(model.inputs[0].shape)
        if len(shape) == 4 and all(isinstance(d, int) for d in shape[1:3]):
            self.facts.preprocess["input_size"] = [int(shape[1]), int(shape[2])]

    @classmethod
    def from_path(cls, path: Path, input_shape=None) -> KerasSource:
        require("tensorflow", "reading Keras models")
        import keras

        from ..formats import sniff

        sniff(path).load_in_child(path)
        try:
            model = keras.models.load_model(str(path), compile=False, safe_mode=True)
        except Exception as exc:
            raise ModelFormatError(f"{path} could not be loaded as a Keras model "
                                   f"({type(exc).__name__}: {summary(exc, limit=160)})",
                                   REMEDY_REEXPORT) from None
        return cls(path, model)

    def inputs(self) -> list[TensorInfo]:
        size = self.spatial_size()
        return [TensorInfo(t.name, static_shape(list(t.shape), "NHWC", size), str(t.dtype).replace("tf.", ""))
                for t in self.model.inputs]

    def outputs(self) -> list[TensorInfo]:
        # named by their layers (what model.summary() shows): Keras' tensor names change on every load
        names = list(getattr(self.model, "output_names", None) or [t.name for t in self.model.outputs])
        return [TensorInfo(name, [d if isinstance(d, int) else -1 for d in t.shape], str(t.dtype))
                for name, t in zip(names, self.model.outputs)]

    def infer(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        result = self.model(feeds if len(feeds) > 1 else feeds[0], training=False)
        result = result if isinstance(result, (list, tuple)) else [result]
        return [np.asarray(r) for r in result]
