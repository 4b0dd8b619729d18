"""The Bridge contract and its registry."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .. import deps
from ..manifest import ModelCard, Preprocess, StepParity, TensorInfo
from ..registry import Registry
from ..sources.base import SourceModel


@dataclass
class ConvertContext:
    """What every conversion step may need; filled once by convert()."""

    preprocess: Preprocess
    calibration: np.ndarray | None = None       # NHWC float32, preprocessed
    sample_images: np.ndarray | None = None     # NHWC float32, preprocessed: for bridges' own checks
    int8_io: str = "uint8"                        # I/O dtype of full-integer TFLite (--int8-io)
    task: str = "other"
    labels: list[str] = field(default_factory=list)
    card: ModelCard = field(default_factory=ModelCard)   # written into each format's own metadata
    source_inputs: list[TensorInfo] = field(default_factory=list)    # the source's tensors, in order:
    source_outputs: list[TensorInfo] = field(default_factory=list)   # the card's descriptions use their names
    reference: Any = None        # convert's source reference (verify inputs + source outputs); None: --no-verify
    # set per route by convert(): the float TFLite source's post-processing op, cut off before the
    # bridges, for the target to put back after its converted body (tflite_postprocess.PostprocessTail)
    postprocess: Any = None

    def check(self, step: str, runtime: str, run, layout: str = "NHWC") -> StepParity | None:
        """Verify an intermediate model against the source on the verify inputs (None without
        them). run: one float32 sample in `layout` -> list of outputs."""
        if self.reference is None:
            return None
        from ..frames import to_layout
        from ..verify import check_step

        return check_step(step, runtime, lambda x: run(to_layout(x, layout)), self.reference.samples.samples,
                          self.reference.outputs(), self.task == "classification")


class Bridge:
    """A conversion from one model form to another (e.g. onnx -> savedmodel with onnx2tf): one
    module in bridges/ registered in BRIDGES with `@register`. routes.py chains bridges into the
    shortest route from a source kind to a form a target accepts."""

    name: ClassVar[str]
    src: ClassVar[str]
    dst: ClassVar[str]
    tool: ClassVar[str]                  # distribution whose version is recorded in the manifest
    requires: ClassVar[tuple[str, ...]]  # importable modules it needs

    def unavailable_reason(self) -> str | None:
        """Why this bridge cannot run here (a missing module, never imported), or None."""
        return deps.missing(*self.requires)

    def convert(self, source: SourceModel, workdir: Path, ctx: ConvertContext) -> SourceModel:
        """SOURCE (of kind `src`) converted to a SourceModel of kind `dst`, with its files in
        WORKDIR (an empty staging folder it owns). CTX gives the resolved preprocessing (input
        size [height, width] in pixels) and sample images (float32 [N, H, W, C], NHWC) for the
        bridge's own checks. Raises ConversionError when the upstream tool fails, and
        UnsupportedRouteError for a model this bridge must not take."""
        raise NotImplementedError

    def describe(self) -> str:
        """'src → dst (tool)', as convert() and its timings name this bridge."""
        return f"{self.src} → {self.dst} ({self.tool})"


BRIDGES: Registry[Bridge] = Registry("bridge", __package__)


def register(cls: type[Bridge]) -> type[Bridge]:
    """Class decorator: register one instance of CLS in BRIDGES under `cls.name`."""
    BRIDGES.register(cls.name)(cls())
    return cls
