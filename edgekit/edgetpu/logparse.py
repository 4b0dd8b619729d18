"""Parse edgetpu_compiler output (its stdout and its `<model>_edgetpu.log` operation log) into the
same EdgeTPUReport the analyzer predicts.

Handles compilers 2.x (which print "On-chip memory available ...") through 16 (timeout timer,
"Compilation succeeded!"), co-compiled models and segments (one "Input model:" section each),
truncated tables ("... All other operators were mapped successfully") and refusals such as
"Invalid model: x.tflite / Model not quantized".
"""
from __future__ import annotations

import re
from pathlib import Path

from . import ops as tpu
from .report import EdgeTPUReport, OpRow

_VERSION = re.compile(r"Edge TPU Compiler version (\S+)")
_ROW = re.compile(r"^(\S+)\s+(\d+)\s+(\S.*?)\s*$")
_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3}
_SIZE = r"([\d.]+)\s*(B|KiB|MiB|GiB)"
_FIELDS = {  # report attribute -> pattern of a "key: value" line
    "input_size_bytes": rf"^Input size:\s*{_SIZE}",
    "output_size_bytes": rf"^Output size:\s*{_SIZE}",
    "on_chip_bytes": rf"^On-chip memory used for caching model parameters:\s*{_SIZE}",
    "on_chip_remaining_bytes": rf"^On-chip memory remaining for caching model parameters:\s*{_SIZE}",
    "off_chip_bytes": rf"^Off-chip memory used for streaming uncached model parameters:\s*{_SIZE}",
}
_AVAILABLE = re.compile(rf"^On-chip memory available for caching model parameters:\s*{_SIZE}", re.M)
_COUNTS = {
    "partitions": r"^Number of Edge TPU subgraphs:\s*(\d+)",
    "ops_total": r"^Total number of operations:\s*(\d+)",
    "ops_on_tpu": r"^Number of operations that will run on Edge TPU:\s*(\d+)",
    "ops_on_cpu": r"^Number of operations that will run on CPU:\s*(\d+)",
}
_KNOWN_ERRORS = ("Model not quantized", "Internal compiler error", "Compilation failed", "Invalid model")


def size_bytes(value: str, unit: str) -> int:
    """'3.45', 'MiB' -> bytes, as the compiler rounds them (two decimals)."""
    return round(float(value) * _UNITS[unit])


def parse_rows(text: str) -> list[OpRow]:
    """The 'Operator  Count  Status' table, wherever it appears in TEXT."""
    rows: list[OpRow] = []
    in_table = False
    for line in text.splitlines():
        stripped = line.strip()
        if re.match(r"^Operator\s+Count\s+Status$", stripped):
            in_table = True
            continue
        if not in_table:
            continue
        match = _ROW.match(stripped)
        if match and match.group(1) != "Operator":
            rows.append(OpRow(match.group(1), int(match.group(2)), match.group(3)))
        elif stripped and not stripped.startswith("..."):
            in_table = False   # the table ended (next section, prose, closing fence)
    return rows


def parse_output(text: str) -> list[EdgeTPUReport]:
    """Compiler stdout -> one report per compiled model (co-compilation and segments give several)."""
    version_match = _VERSION.search(text)
    version = version_match.group(1) if version_match else None
    invalid = re.search(r"^Invalid model:\s*(\S+)\s*\n\s*(\S.*)$", text, re.M)
    if invalid:
        return [EdgeTPUReport(kind="compiler", model=Path(invalid.group(1)).name, compiler_version=version,
                              error=invalid.group(2).strip())]
    sections = re.split(r"^(?=Input model:)", text, flags=re.M)
    reports = []
    for section in sections[1:]:
        model = re.match(r"Input model:\s*(\S+)", section).group(1)
        report = EdgeTPUReport(kind="compiler", model=Path(model).name, compiler_version=version)
        output = re.search(r"^Output model:\s*(\S+)", section, re.M)
        report.output_model = output.group(1) if output else None
        for attribute, pattern in _FIELDS.items():
            match = re.search(pattern, section, re.M)
            if match:
                setattr(report, attribute, size_bytes(match.group(1), match.group(2)))
        available = _AVAILABLE.search(section)   # compiler 2.x: "available" instead of "remaining"
        if available and report.on_chip_remaining_bytes is None and report.on_chip_bytes is not None:
            report.on_chip_remaining_bytes = size_bytes(*available.groups()) - report.on_chip_bytes
        for attribute, pattern in _COUNTS.items():
            match = re.search(pattern, section, re.M)
            if match:
                setattr(report, attribute, int(match.group(1)))
        report.rows = parse_rows(section)
        _complete_counts(report, section)
        reports.append(report)
    if not reports:
        error = next((line.strip() for line in text.splitlines()
                      if any(line.strip().startswith(e) for e in _KNOWN_ERRORS)), None)
        reports.append(EdgeTPUReport(kind="compiler", model="?", compiler_version=version,
                                     error=error or "the compiler printed no model summary"))
    return reports


def parse_log(text: str) -> EdgeTPUReport:
    """A `<model>_edgetpu.log` operation log: version, input, and the full operation table."""
    version = _VERSION.search(text)
    model = re.search(r"^Input:\s*(\S+)", text, re.M)
    output = re.search(r"^Output:\s*(\S+)", text, re.M)
    report = EdgeTPUReport(kind="compiler", model=Path(model.group(1)).name if model else "?",
                           compiler_version=version.group(1) if version else None,
                           output_model=output.group(1) if output else None, rows=parse_rows(text))
    report.ops_total = sum(r.count for r in report.rows)
    report.ops_on_tpu = sum(r.count for r in report.rows if r.mapped)
    report.ops_on_cpu = report.ops_total - report.ops_on_tpu
    report.partitions = 1 if report.ops_on_tpu else 0
    return report


def merge(stdout_report: EdgeTPUReport, log_report: EdgeTPUReport | None) -> EdgeTPUReport:
    """Stdout carries memory and counts; the log carries every op row (stdout may truncate it)."""
    if log_report is not None and log_report.rows:
        stdout_report.rows = log_report.rows
        _complete_counts(stdout_report, "")
    return stdout_report


def _complete_counts(report: EdgeTPUReport, section: str) -> None:
    """Compilers print the TPU/CPU split only when something stays on the CPU."""
    if report.ops_total and not re.search(_COUNTS["ops_on_tpu"], section, re.M) and report.ops_on_cpu == 0:
        if report.rows:
            report.ops_on_tpu = sum(r.count for r in report.rows if r.status == tpu.MAPPED)
            report.ops_on_cpu = report.ops_total - report.ops_on_tpu
        else:
            report.ops_on_tpu = report.ops_total
    if not report.ops_total and report.rows:
        report.ops_total = sum(r.count for r in report.rows)
        report.ops_on_tpu = sum(r.count for r in report.rows if r.mapped)
        report.ops_on_cpu = report.ops_total - report.ops_on_tpu
