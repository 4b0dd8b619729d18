"""The Target contract and registry. Adding a target = one module here + its tests."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from .. import deps
from ..bridges.base import ConvertContext
from ..errors import BadInput
from ..formats import FORMATS
from ..manifest import EdgeTPUInfo, StepParity, TensorInfo, VerifyReport
from ..registry import Registry
from ..sources.base import SourceModel


@dataclass
class TargetOutput:
    """What a target wrote into the staging directory, and the facts convert() puts in the manifest."""

    files: list[Path]                    # in publish order; the artifact's main file last
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    converters: dict[str, str] = field(default_factory=dict)   # library -> version
    options: dict = field(default_factory=dict)     # descriptive facts for Manifest.options (nothing reads them)
    layout: str = "NHWC"                 # image layout of the artifact's input
    checked: list[StepParity] = field(default_factory=list)   # intermediates the target verified itself
    notes: list[str] = field(default_factory=list)  # one-line advice convert() shows as warnings
    int8_io: str | None = None           # full-integer TFLite: its I/O dtype (Manifest.int8_io)
    edgetpu: EdgeTPUInfo | None = None   # Edge TPU prediction and compiled model (Manifest.edgetpu)


class Target:
    """One output format (tflite, edgetpu, openvino, coreml, onnx): a module in targets/ whose
    instance registers in TARGETS with `@register`. convert() plans a route of bridges to a form
    in `accepts`, calls `convert`, then verifies the artifact on `runtime`."""

    name: ClassVar[str]
    format: ClassVar[str]                      # the Format it writes (edgekit/formats/): suffix, default backend
    precisions: ClassVar[tuple[str, ...]]
    accepts: ClassVar[tuple[str, ...]]         # model forms it converts from
    requires: ClassVar[tuple[str, ...]]        # importable modules
    refusals: ClassVar[dict[str, str]] = {}    # source form -> why no sound route exists
    # True: a float TFLite source's trailing TFLite_Detection_PostProcess is cut off before the
    # route and `ctx.postprocess` asks convert() to put it back after the converted body
    keeps_postprocess_op: ClassVar[bool] = False
    # precisions whose quantization measures activation ranges, so needs calibration data (--calib);
    # weights-only int8 (Core ML's linear weight quantization) needs none
    calibrated: ClassVar[tuple[str, ...]] = ("int8",)

    @property
    def suffix(self) -> str:
        """The suffix of the artifacts it writes: its format's."""
        return FORMATS.get(self.format).suffix

    @property
    def runtime(self) -> str | None:
        """The runtime backend that verifies its numerics: its format's default backend."""
        return FORMATS.get(self.format).backend

    def unavailable_reason(self) -> str | None:
        """Why this target cannot run here (a missing module, found with find_spec, never
        imported), or None when it can."""
        return deps.missing(*self.requires)

    def limits_here(self) -> str | None:
        """What this target cannot do here although it converts (a missing tool for one step),
        for `edgekit doctor`; None when it does everything it offers."""
        return None

    @property
    def default_precision(self) -> str:
        """What `--to NAME` builds without --precision: the first (most faithful) it offers."""
        return self.precisions[0]

    def artifact_name(self, stem: str, precision: str) -> str:
        """The artifact's file name, e.g. model_int8.tflite."""
        return f"{stem}_{precision}{self.suffix}"

    def check_precision(self, precision: str) -> None:
        """Raises BadInput when this target does not offer PRECISION (naming the ones it does)."""
        if precision not in self.precisions:
            raise BadInput(f"target '{self.name}' does not offer precision '{precision}'",
                           f"it offers: {', '.join(self.precisions)}")

    def convert(self, model: SourceModel, precision: str, artifact: Path, ctx: ConvertContext) -> TargetOutput:
        """Write MODEL (a SourceModel of a kind in `accepts`) at PRECISION to ARTIFACT, a path in
        a staging directory (extra files, like an IR's .bin, go beside it).

        CTX carries the manifest's preprocessing, the calibration samples (float32 [N, H, W, C],
        preprocessed, NHWC; required for int8), sample images for the target's own checks, the
        task, labels and `int8_io`. Returns the files to publish (main file last), the tensors
        as the artifact declares them (shapes, dtypes, quantization), converter versions, the
        artifact's input layout, and side facts for the manifest (`int8_io`, `edgetpu`,
        `notes` to show as warnings).

        Raises CalibrationError without calibration data for int8, UnsupportedRouteError for a
        model this target cannot take, ConversionError when the upstream converter fails.
        """
        raise NotImplementedError

    def structure_check(self, artifact: Path, output: TargetOutput) -> VerifyReport | None:
        """For targets whose numerics cannot run on this host: a structural check instead (a
        VerifyReport with status "structure-only" or "fail"); None: verify runs the numbers."""
        return None


TARGETS: Registry[Target] = Registry("target", __package__)


def register(cls: type[Target]) -> type[Target]:
    """Class decorator: register one instance of CLS in TARGETS under `cls.name`."""
    TARGETS.register(cls.name)(cls())
    return cls
