"""One report shape for both the offline prediction (analyze.py) and the compiler's own verdict
(logparse.py), so they can be shown side by side."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from . import ops as tpu_ops


@dataclass
class OpRow:
    """One line of the compiler's operation table: an op, how many, and their common status."""

    op: str
    count: int
    status: str
    reason: str = ""
    suggestion: str = ""
    first_index: int | None = None    # operator index of the first such op (predicted reports)

    @property
    def mapped(self) -> bool:
        return self.status in (tpu_ops.MAPPED, tpu_ops.MAY_NOT_MAP)


@dataclass
class EdgeTPUReport:
    kind: str                                   # "predicted" (analyzer) or "compiler" (parsed log)
    model: str
    ops_total: int = 0
    ops_on_tpu: int = 0
    ops_on_cpu: int = 0
    partitions: int = 0                         # Edge TPU subgraphs
    on_chip_bytes: int | None = None            # parameters cached in on-chip memory
    on_chip_remaining_bytes: int | None = None
    off_chip_bytes: int | None = None           # parameters streamed from host memory per inference
    parameter_bytes: int | None = None          # predicted: all parameters of the mapped ops
    rows: list[OpRow] = field(default_factory=list)
    split: dict[str, Any] | None = None         # the op that ended the Edge TPU segment
    placement: list[str] = field(default_factory=list)   # predicted: "tpu"/"cpu" per operator index
    compiler_version: str | None = None
    min_runtime_version: int | None = None
    output_model: str | None = None
    input_size_bytes: int | None = None
    output_size_bytes: int | None = None
    error: str | None = None                    # the compiler refused the model
    notes: list[str] = field(default_factory=list)

    @property
    def fully_mapped(self) -> bool:
        return self.error is None and self.ops_on_cpu == 0 and self.partitions == 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EdgeTPUReport:
        data = dict(data)
        data["rows"] = [OpRow(**row) for row in data.get("rows", [])]
        return cls(**data)


def group_rows(entries: list[tuple[int, str, str, str, str]]) -> list[OpRow]:
    """(index, op, status, reason, suggestion) per operator -> rows per (op, status), in order."""
    rows: dict[tuple[str, str], OpRow] = {}
    for index, op, status, reason, suggestion in entries:
        row = rows.get((op, status))
        if row is None:
            rows[(op, status)] = OpRow(op, 1, status, reason, suggestion, index)
        else:
            row.count += 1
    return list(rows.values())


def side_by_side(predicted: EdgeTPUReport, actual: EdgeTPUReport) -> list[dict[str, Any]]:
    """Per op: predicted vs compiler status and counts, ops of both reports in one list."""
    def by_op(report: EdgeTPUReport) -> dict[str, dict[str, int]]:
        table: dict[str, dict[str, int]] = {}
        for row in report.rows:
            table.setdefault(row.op, {})[row.status] = table.get(row.op, {}).get(row.status, 0) + row.count
        return table

    ours, theirs = by_op(predicted), by_op(actual)
    names = list(dict.fromkeys([*ours, *theirs]))
    return [{"op": name, "predicted": ours.get(name, {}), "compiler": theirs.get(name, {}),
             "agree": ours.get(name) == theirs.get(name)} for name in names]
