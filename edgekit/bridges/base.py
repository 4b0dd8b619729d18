"""The Bridge contract and its registry."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from .. import deps
from ..manifest import ModelCard, Preprocess, StepParity, TensorInfo
from ..registry import Registry
from ..sources.base import SourceInput, SourceModel

if TYPE_CHECKING:
    from ..calibration import SampleSet


@dataclass
class ConvertContext:
    """What every conversion step may need; filled once by convert()."""

    preprocess: Preprocess
    calibration: SampleSet | None = None        # int8 calibration samples, one array per source input
    sample_images: np.ndarray | None = None     # the first image input's samples, NHWC float32: bridges' own checks
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
    source_roles: list[SourceInput] = field(default_factory=list)    # the source's inputs: image or tensor, static

    def calibration_feeds(self, form_inputs: list[TensorInfo], layout: str = "NHWC") -> list[list[np.ndarray]]:
        """Every calibration sample as the inputs of a form whose tensors are FORM_INPUTS (images
        in LAYOUT, its convention), in that form's input order, batch 1. Raises CalibrationError
        without calibration data."""
        from ..calibration import feed_plan
        from ..errors import CalibrationError

        if self.calibration is None:
            raise CalibrationError("int8 needs calibration data", "pass --calib")
        plan = feed_plan(self.source_roles, form_inputs, layout)
        return [self.calibration.feeds(i, plan) for i in range(len(self.calibration))]

    def check(self, step: str, runtime: str, run, form: SourceModel | None = None,
              layout: str = "NHWC") -> StepParity | None:
        """Verify an intermediate model against the source on the verify inputs (None without
        them). run: the sample's inputs (a list, batch 1, in FORM's input order and layouts;
        without FORM every image input in LAYOUT) -> list of outputs."""
        if self.reference is None:
            return None
        from ..calibration import feed_plan
        from ..verify import check_step

        samples = self.reference.samples
        plan = (feed_plan(self.source_roles, form.inputs(), form.layout) if form is not None
                else [(r.name, layout if r.kind == "image" else None) for r in self.source_roles])
        # check_step hands `run` one row of its inputs at a time: rows are sample indices here,
        # so that several inputs (an image and a sensor vector) travel together
        return check_step(step, runtime, lambda row: run(samples.feeds(int(np.asarray(row).reshape(-1)[0]), plan)),
                          np.arange(len(samples)), self.reference.outputs(), self.task == "classification")


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
