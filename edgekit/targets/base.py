"""The Target contract and registry. Adding a target = one module here + its tests."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from .. import deps
from ..bridges.base import ConvertContext
from ..errors import BadInput
from ..manifest import TensorInfo, VerifyReport
from ..registry import Registry
from ..sources.base import SourceModel


@dataclass
class TargetOutput:
    """What a target wrote into the staging directory."""

    files: list[Path]                    # in publish order; the artifact's main file last
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    converters: dict[str, str] = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    layout: str = "NHWC"                 # image layout of the artifact's input


class Target:
    name: ClassVar[str]
    suffix: ClassVar[str]
    precisions: ClassVar[tuple[str, ...]]
    accepts: ClassVar[tuple[str, ...]]         # model forms it converts from
    requires: ClassVar[tuple[str, ...]]        # importable modules
    refusals: ClassVar[dict[str, str]] = {}    # source form -> why no sound route exists
    runtime: ClassVar[str | None] = None       # runtime backend used to verify numerics

    def unavailable_reason(self) -> str | None:
        return deps.missing(*self.requires)

    @property
    def default_precision(self) -> str:
        """What `--to NAME` builds without --precision: the first (most faithful) it offers."""
        return self.precisions[0]

    def artifact_name(self, stem: str, precision: str) -> str:
        return f"{stem}_{precision}{self.suffix}"

    def check_precision(self, precision: str) -> None:
        if precision not in self.precisions:
            raise BadInput(f"target '{self.name}' does not offer precision '{precision}'",
                           f"it offers: {', '.join(self.precisions)}")

    def convert(self, model: SourceModel, precision: str, artifact: Path, ctx: ConvertContext) -> TargetOutput:
        raise NotImplementedError

    def structure_check(self, artifact: Path, output: TargetOutput) -> VerifyReport | None:
        """For targets whose numerics cannot run on this host: a structural check instead."""
        return None


TARGETS: Registry[Target] = Registry("target", __package__)


def register(cls: type[Target]) -> type[Target]:
    TARGETS.register(cls.name)(cls())
    return cls
