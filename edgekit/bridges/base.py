"""The Bridge contract and its registry."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from .. import deps
from ..manifest import Preprocess
from ..registry import Registry
from ..sources.base import SourceModel


@dataclass
class ConvertContext:
    """What every conversion step may need; filled once by convert()."""

    preprocess: Preprocess
    calibration: np.ndarray | None = None       # NHWC float32, preprocessed
    sample_images: np.ndarray | None = None     # NHWC float32, preprocessed: for bridges' own checks
    options: dict = field(default_factory=dict)     # target options from the CLI (int8_io, ...)
    task: str = "other"
    labels: list[str] = field(default_factory=list)


class Bridge:
    name: ClassVar[str]
    src: ClassVar[str]
    dst: ClassVar[str]
    tool: ClassVar[str]                  # distribution whose version is recorded in the manifest
    requires: ClassVar[tuple[str, ...]]  # importable modules it needs

    def unavailable_reason(self) -> str | None:
        return deps.missing(*self.requires)

    def convert(self, source: SourceModel, workdir: Path, ctx: ConvertContext) -> SourceModel:
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.src} → {self.dst} ({self.tool})"


BRIDGES: Registry[Bridge] = Registry("bridge", __package__)


def register(cls: type[Bridge]) -> type[Bridge]:
    BRIDGES.register(cls.name)(cls())
    return cls
