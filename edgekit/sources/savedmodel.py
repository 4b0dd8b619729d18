"""TensorFlow SavedModel directory source (serving signature)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..deps import require
from ..errors import REMEDY_REEXPORT, ModelFormatError
from ..manifest import TensorInfo
from .base import SOURCES, SourceModel


@SOURCES.register("savedmodel")
class SavedModelSource(SourceModel):
    kind = "savedmodel"
    layout = "NHWC"

    def __init__(self, path: Path, signature, signature_key: str):
        super().__init__(path)
        self.signature = signature
        self.signature_key = signature_key
        _, self._input_specs = signature.structured_input_signature
        self._input_names = sorted(self._input_specs)
        self._note_input_facts()

    @classmethod
    def from_path(cls, path: Path, input_shape=None, probe: bool = True) -> SavedModelSource:
        tf = require("tensorflow", "reading SavedModels")
        from ..formats import FORMATS

        if probe:  # our own intermediate SavedModels are trusted
            FORMATS.get("savedmodel").load_in_child(path)
        try:
            loaded = tf.saved_model.load(str(path))
        except Exception as exc:
            raise ModelFormatError(f"{path} could not be loaded as a SavedModel ({type(exc).__name__})",
                                   REMEDY_REEXPORT) from None
        signatures = dict(loaded.signatures)
        if not signatures:
            raise ModelFormatError(f"SavedModel {path} has no signatures", "export it with a serving signature")
        key = "serving_default" if "serving_default" in signatures else sorted(signatures)[0]
        source = cls(path, signatures[key], key)
        source.trackable = loaded  # keeps variables alive while the signature is used
        return source

    def declared_inputs(self) -> list[TensorInfo]:
        return [TensorInfo(name, [d if d is not None else -1 for d in self._input_specs[name].shape.as_list()],
                           self._input_specs[name].dtype.name) for name in self._input_names]

    def output_names(self) -> list[str]:
        return sorted(self.signature.structured_outputs)

    def outputs(self) -> list[TensorInfo]:
        outs = self.signature.structured_outputs
        return [TensorInfo(name, [d if d is not None else -1 for d in outs[name].shape.as_list()],
                           outs[name].dtype.name) for name in self.output_names()]

    def infer(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        result = self.signature(**{name: feed for name, feed in zip(self._input_names, feeds)})
        return [np.asarray(result[name]) for name in self.output_names()]
