"""Keras source (.keras v3 archives and legacy .h5)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..deps import require
from ..errors import REMEDY_REEXPORT, ModelFormatError, summary
from ..manifest import TensorInfo
from .base import SOURCES, SourceModel
from .graph_norm import EntryAffine, facts_of, per_channel


@SOURCES.register("keras-h5")
@SOURCES.register("keras")
class KerasSource(SourceModel):
    kind = "keras"
    layout = "NHWC"

    def __init__(self, path: Path, model):
        super().__init__(path)
        self.model = model
        self._note_input_facts()
        images = [i for i, role in enumerate(self.described_inputs()) if role.kind == "image"]
        if images:
            role = self.described_inputs()[images[0]]
            found = leading_normalization(model, model.inputs[images[0]], role.channels, len(role.shape))
            if found is not None:
                self.facts.preprocess.update(facts_of(found, role.channels))

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

    def declared_inputs(self) -> list[TensorInfo]:
        return [TensorInfo(t.name, [d if isinstance(d, int) else -1 for d in t.shape], str(t.dtype).replace("tf.", ""))
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


def leading_normalization(model, tensor, channels: int, rank: int):
    """The GraphNormalization of the Rescaling/Normalization layers that alone consume TENSOR
    (an image input of MODEL, channels last), followed into nested models; None without any."""
    import keras

    affine = EntryAffine.identity()
    current, graph = tensor, model
    while True:
        consumers = [(layer, node) for layer in graph.layers for node in getattr(layer, "_inbound_nodes", [])
                     if any(t is current for t in node.input_tensors)]
        if len(consumers) != 1 or len(consumers[0][1].output_tensors) != 1:
            break
        layer, node = consumers[0]
        if isinstance(layer, keras.Model) and len(getattr(layer, "inputs", None) or []) == 1:
            current, graph = layer.inputs[0], layer   # preprocessing inside a nested model (keras.applications)
            continue
        if not _compose(affine, layer, keras, rank, channels):
            break
        current = node.output_tensors[0]
    return affine.normalization(channels, "the Keras model's leading layers")


def _compose(affine: EntryAffine, layer, keras, rank: int, channels: int) -> bool:
    """Add one Rescaling (x * scale + offset) or Normalization ((x - mean) / sqrt(variance)) layer."""
    name = f"{type(layer).__name__} '{layer.name}'"
    if isinstance(layer, keras.layers.Rescaling):
        scale, offset = (per_channel(v, rank, -1, channels) for v in (layer.scale, layer.offset))
        return scale is not None and offset is not None and affine.apply("Mul", scale, name) \
            and affine.apply("Add", offset, name) and _once(affine)
    if isinstance(layer, keras.layers.Normalization) and not layer.invert and tuple(layer.axis) in ((-1,), (rank - 1,)):
        mean, variance = (per_channel(np.asarray(v), rank, -1, channels) for v in (layer.mean, layer.variance))
        if mean is None or variance is None:
            return False
        std = np.maximum(np.sqrt(variance), keras.config.epsilon())
        return affine.apply("Sub", mean, name) and affine.apply("Div", std, name) and _once(affine)
    return False


def _once(affine: EntryAffine) -> bool:
    """A layer adds two arithmetic steps; name it once."""
    affine.steps.pop()
    return True
