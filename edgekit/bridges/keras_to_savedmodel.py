"""Keras -> SavedModel with Keras' own inference export (variables frozen correctly for TFLite)."""
from __future__ import annotations

import contextlib
import sys
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
        # static batch 1: what edge compilers need
        specs = [tf.TensorSpec(t.shape, tf.as_dtype(t.dtype), name=f"input_{i}") for i, t in enumerate(source.inputs())]
        # a functional model with several inputs is called with one list of them
        signature = specs if len(specs) == 1 else [specs]
        with contextlib.redirect_stdout(sys.stderr):  # export() prints a signature summary
            source.model.export(str(path), format="tf_saved_model",
                                input_signature=signature, verbose=False)
        return SavedModelSource.from_path(path, probe=False)
