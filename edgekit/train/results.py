"""What `edgekit train` returns and the outcomes it ends with (a leaf: pipeline and finish both
use them)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..errors import EdgekitError, RuntimeFailure


class TrainPaused(EdgekitError):
    """A stop signal (Ctrl-C, SIGTERM, SIGHUP) after the study opened: the study is kept and
    `--resume` continues. Exit 128 + the signal's number (130, 143, 129), the shell convention."""

    def __init__(self, message: str, remedy: str | None = None):
        from .. import interrupt

        super().__init__(message, remedy)
        self.exit_code = interrupt.exit_code()


class NotPromoted(RuntimeFailure):
    """--compare found the new model no better: everything is written, exit 1."""


class ExportGateFailed(RuntimeFailure):
    """An artifact lost more than --max-accuracy-drop: everything is written, exit 1."""


@dataclass
class TrainResult:
    """What a run produced: data summary, report, search summary, picks, artifacts, comparison and
    files (`--json` prints it)."""
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


def utc_now() -> str:
    """This moment in UTC, ISO 8601 to the second (state.json and train.json timestamps)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
