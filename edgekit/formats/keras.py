"""Keras models: `.keras` v3 archives (a zip) and legacy HDF5 `.h5` files."""
from __future__ import annotations

from .base import Evidence, Format, register

# loaded in a child first: a crafted file must not crash or hang the caller
_PROBE = "import keras; keras.models.load_model(p, compile=False, safe_mode=True)"


def _sniff_archive(evidence: Evidence) -> bool:
    names = evidence.members()
    return "config.json" in names and ("model.weights.h5" in names or "metadata.json" in names)


def _sniff_h5(evidence: Evidence) -> bool:
    return evidence.head.startswith(b"\x89HDF\r\n\x1a\n")


KERAS = register(Format(name="keras", title="Keras", suffixes=(".keras",), sniff=_sniff_archive, rank=10,
                        source="keras", probe=_PROBE))
KERAS_H5 = register(Format(name="keras-h5", title="Keras HDF5", suffixes=(".h5",), sniff=_sniff_h5, rank=10,
                           source="keras", probe=_PROBE))
