"""Keras -> SavedModel via Keras' own export (a serving signature, no training graph)."""
from __future__ import annotations

from pathlib import Path

from ..sources.base import SourceModel
from ..sources.savedmodel import SavedModelSource
from .base import Bridge, ConvertContext, register


@register
class KerasToSavedModel(Bridge):
    name = "keras-to-savedmodel"
    src, dst = "keras", "savedmodel"
    tool = "keras"
    requires = ("tensorflow",)

    def convert(self, source: SourceModel, workdir: Path, ctx: ConvertContext) -> SourceModel:
        import tensorflow as tf

        path = workdir / "saved_model"
        model = source.model
        specs = [tf.TensorSpec(t.shape, tf.float32, name=f"input_{i}") for i, t in enumerate(source.inputs())]
        module = tf.Module()
        module.variables_ = model.variables  # track weights so the SavedModel carries them
        module.serve = tf.function(lambda *x: _as_dict(model(list(x) if len(x) > 1 else x[0], training=False)),
                                   input_signature=specs, autograph=False)
        tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
        return SavedModelSource.from_path(path, probe=False)


def _as_dict(result):
    result = result if isinstance(result, (list, tuple)) else [result]
    width = len(str(len(result) - 1))
    return {f"output_{i:0{width}d}": r for i, r in enumerate(result)}
