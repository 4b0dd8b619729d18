"""TensorFlow SavedModel directories (`saved_model.pb` or `.pbtxt` and `variables/`)."""
from __future__ import annotations

from .base import Evidence, Format, register


def _sniff(evidence: Evidence) -> bool:
    path = evidence.path
    return evidence.directory and ((path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file())


SAVEDMODEL = register(Format(
    name="savedmodel", title="SavedModel directory", suffixes=(), sniff=_sniff, rank=10, source="savedmodel",
    probe="import tensorflow as tf; tf.saved_model.load(p)"))
