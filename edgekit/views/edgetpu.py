"""`edgekit edgetpu check|compile`: the Edge TPU report per op, and predicted vs compiler."""
from __future__ import annotations

from ..edgetpu import ops as tpu
from ..edgetpu.report import EdgeTPUReport
from ..ui import human_size, table

_STYLE = {tpu.MAPPED: "green", tpu.MAY_NOT_MAP: "green", tpu.MULTIPLE_SUBGRAPHS: "yellow"}


def _size(value: int | None) -> str:
    return "—" if value is None else human_size(value)


def render_edgetpu(report: EdgeTPUReport, console) -> None:
    """An EdgeTPUReport: predicted offline or parsed from the compiler's output."""
    title = "predicted (offline, no compiler)" if report.kind == "predicted" else \
        f"edgetpu_compiler {report.compiler_version or ''}".strip()
    if report.error:
        console.print(f"[bold]{report.model}[/] — {title}: [red]{report.error}[/]")
        return
    rows = [[row.op, row.count, f"[{_STYLE.get(row.status, 'red')}]{row.status}[/]", row.reason, row.suggestion]
            for row in report.rows]
    console.print(table(f"{report.model} — {title}", ["op", "count", "status", "reason", "suggestion"], rows,
                        wrap=("status", "reason", "suggestion")))
    console.print(f"ops on Edge TPU: {report.ops_on_tpu}  on CPU: {report.ops_on_cpu}  "
                  f"Edge TPU subgraphs: {report.partitions}  parameters on-chip: {_size(report.on_chip_bytes)}  "
                  f"off-chip: {_size(report.off_chip_bytes)}")
    if report.split:
        split = report.split
        cause = f" (because of {split['cause']} at op {split['cause_index']})" if split["cause_index"] != split["index"] else ""
        console.print(f"[yellow]the Edge TPU segment ends at op {split['index']} {split['op']}{cause}: "
                      f"every later op runs on the CPU[/]")
    for note in report.notes:
        console.print(f"note: {note}")


def render_side_by_side(rows: list[dict], console) -> None:
    """Per op: what the offline analysis predicted beside what the compiler reported."""
    def cell(statuses: dict[str, int]) -> str:
        return "; ".join(f"{count} {status}" for status, count in statuses.items()) or "—"

    console.print(table("predicted vs compiler", ["op", "predicted", "compiler", "agree"],
                        [[r["op"], cell(r["predicted"]), cell(r["compiler"]), "yes" if r["agree"] else "[red]no[/]"]
                         for r in rows], wrap=("predicted", "compiler")))
