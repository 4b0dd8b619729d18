"""Runtime backends behind one Runner API."""
from .base import BACKENDS, Runner, open_runner

__all__ = ["BACKENDS", "Runner", "open_runner"]
