"""What `edgekit train` returns and the outcomes it ends with (a leaf: pipeline and finish both
use them)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import EdgekitError


class TrainPaused(EdgekitError):
    """Ctrl-C during the search: the study is kept, `--resume` continues."""

    exit_code = 130


class NotPromoted(EdgekitError):
    """--compare found the new model no better: everything is written, exit 1."""

    exit_code = 1


class ExportGateFailed(EdgekitError):
    """An artifact lost more than --max-accuracy-drop: everything is written, exit 1."""

    exit_code = 1


@dataclass
class TrainResult:
    out_dir: str
    data: dict[str, Any]
    report: dict[str, Any]
    search: dict[str, Any]
    picks: dict[str, dict[str, Any]]
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    comparison: dict[str, Any] | None = None
    files: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def failed_artifacts(self) -> list[dict[str, Any]]:
        return [a for a in self.artifacts if a["status"] == "fail"]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
