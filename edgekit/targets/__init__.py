"""Conversion targets: one module each, registered in targets.base.TARGETS."""
from .base import TARGETS, Target, TargetOutput

__all__ = ["TARGETS", "Target", "TargetOutput"]
