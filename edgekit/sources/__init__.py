"""Source kinds: one module each, registered by the formats they read."""
from .base import SOURCES, SourceFacts, SourceModel, load_source

__all__ = ["SOURCES", "SourceFacts", "SourceModel", "load_source"]
