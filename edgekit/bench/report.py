"""Write a BenchReport to files: CSV, Markdown, PNG plot, each atomically. The terminal table
is edgekit/views/bench.py."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from ..fsutil import write_atomic
from ..ui import fmt, human_size
from . import stats
from .harness import BenchReport

COLUMNS = ["artifact", "format", "precision", "backend/device", "threads", "size", "parity", "load ms",
           "first ms", "p50 ms", "p90 ms", "p99 ms", "mean ms", "std ms", "min ms", "max ms", "FPS",
           "pre ms", "io ms", "post ms", "peak RSS MB", "status"]
# CSV keeps machine-friendly names and raw numbers
CSV_FIELDS = ["artifact", "format", "precision", "backend", "device", "threads", "hint", "size_bytes",
              "parity_status", "parity_cosine", "status", "error", "load_ms", "first_inference_ms", "runs", "warmup",
              "p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "min_ms", "max_ms", "fps", "preprocess_ms",
              "io_ms", "postprocess_ms", "peak_rss_mb", "rss_growth_mb"]


def parity_text(parity: dict[str, Any] | None) -> str:
    if not parity:
        return "—"
    cosine = parity.get("cosine")
    return f"{parity['status']} cos {cosine:.4f}" if cosine is not None else parity["status"]


def rows(report: BenchReport) -> list[list[str]]:
    result = []
    for r in report.results:
        lat = r.latency_ms
        name = Path(r.artifact).name
        if r.status != "ok":
            result.append([name, r.format or "—", r.precision or "—", where(r), _threads(r.threads),
                           human_size(r.size_bytes) if r.size_bytes else "—", parity_text(r.parity)]
                          + ["—"] * 14 + [f"{r.status}: {r.error}"])
            continue
        result.append([name, r.format, r.precision or "—", where(r), _threads(r.threads), human_size(r.size_bytes),
                       parity_text(r.parity), fmt(r.load_ms, ".1f"), fmt(r.first_inference_ms, ".2f"),
                       *(fmt(lat.get(k), ".3f") for k in ("p50", "p90", "p99", "mean", "std", "min", "max")),
                       fmt(r.fps, ".1f"), fmt(r.preprocess_ms, ".3f"), fmt(r.io_ms, ".3f"),
                       fmt(r.postprocess_ms, ".3f"),
                       fmt(r.peak_rss_mb, ".0f"), "ok"])
    return result


def where(record) -> str:
    return f"{record.backend or '—'}/{record.device or '—'}"


def _threads(threads: int | None) -> str:
    return "default" if threads is None else str(threads)


def host_line(report: BenchReport) -> str:
    from .sysinfo import describe

    return describe(report.host)


def to_csv(report: BenchReport) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in report.results:
        lat = r.latency_ms
        writer.writerow({
            "artifact": r.artifact, "format": r.format, "precision": r.precision, "backend": r.backend,
            "device": r.device, "threads": r.threads, "hint": r.hint, "size_bytes": r.size_bytes,
            "parity_status": (r.parity or {}).get("status"), "parity_cosine": (r.parity or {}).get("cosine"),
            "status": r.status, "error": r.error, "load_ms": r.load_ms, "first_inference_ms": r.first_inference_ms,
            "runs": r.runs, "warmup": r.warmup, **{f"{k}_ms": lat.get(k) for k in ("p50", "p90", "p99", "mean", "std",
                                                                                 "min", "max")},
            "fps": r.fps, "preprocess_ms": r.preprocess_ms, "io_ms": r.io_ms, "postprocess_ms": r.postprocess_ms,
            "peak_rss_mb": r.peak_rss_mb, "rss_growth_mb": r.rss_growth_mb})
    return buffer.getvalue()


def to_markdown(report: BenchReport, profile_rows: list[list[str]] | None = None) -> str:
    lines = ["# edgekit bench", "", f"**Host:** {host_line(report)}", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows(report):
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    if profile_rows:
        lines += ["", "| " + " | ".join(PROFILE_COLUMNS) + " |", "|" + "---|" * len(PROFILE_COLUMNS)]
        lines += ["| " + " | ".join(row) + " |" for row in profile_rows]
    lines += ["", "Latencies in milliseconds, batch 1, after warm-up; first = the first inference after load; "
              "pre/post = Predictor.prepare/decode medians, timed apart from inference; peak RSS = the high-water "
              "mark of the row's own process (every row runs in a fresh one).", ""]
    return "\n".join(lines)


PROFILE_COLUMNS = ["reference model", "published ms", "measured p50 ms", "artifact", "setup", "source"]


def profile_rows(report: BenchReport, profile) -> list[list[str]]:
    """Each published reference, beside the measured median of any artifact it matches."""
    result = []
    for ref in profile.references:
        matches = [r for r in report.results if r.status == "ok" and ref in profile.references_for(r.artifact)]
        for record in matches or [None]:
            result.append([ref.model, f"{ref.latency_ms:g}",
                           fmt(record.latency_ms.get("p50") if record else None, ".3f"),
                           Path(record.artifact).name if record else "— (no artifact of this model)",
                           ref.setup, ref.source])
    return result


def write_csv(report: BenchReport, path: Path) -> None:
    write_atomic(Path(path), to_csv(report))


def write_markdown(report: BenchReport, path: Path, profile=None) -> None:
    write_atomic(Path(path), to_markdown(report, profile_rows(report, profile) if profile else None))


PLOT_ROW_INCHES = 0.36   # per result row: 16 rows and more stay legible, the figure grows instead
LOG_SCALE_SPREAD = 20.0  # slowest p99 over fastest p1 beyond which the latency axis is logarithmic


def plot_stats(samples_ms: list[float]) -> dict[str, float]:
    """The box of one row, from stats.percentile (the percentile definition of every edgekit
    number): box p25-p75, line the median, whiskers the true p1 and p99 (matplotlib's own
    whiskers stop at the last sample inside them)."""
    values = sorted(samples_ms)
    q = {k: stats.percentile(values, k) for k in (1, 25, 50, 75, 99)}
    return {"whislo": q[1], "q1": q[25], "med": q[50], "q3": q[75], "whishi": q[99], "fliers": []}


def plot_caption(report: BenchReport) -> str:
    """The plot's second title line: host, runs per row and date, so a PNG shown alone says
    where and when its numbers come from."""
    host = report.host or {}
    runs = sorted({r.runs for r in report.results if r.status == "ok"})
    cores = f", {host['cores']} cores" if host.get("cores") else ""
    load = host.get("loadavg")
    load_text = f", load {load[0]:.1f}" if isinstance(load, (list, tuple)) and load else ""
    when = str(host.get("timestamp_utc") or "")[:16].replace("T", " ")
    return (f"{host.get('cpu') or 'unknown host'}{cores}{load_text}; "
            f"{'/'.join(map(str, runs)) or 0} runs per row; {when + ' UTC' if when else 'date unknown'}")


def write_plot(report: BenchReport, path: Path) -> None:
    """Warm-latency distributions as horizontal boxes, one row per result (every sample as a
    dot), readable at 16 rows and more: the figure grows with the rows, labels sit on the left
    in full, and the latency axis turns logarithmic when rows differ by more than 20x. The
    title carries the host, the run count and the date; rows that did not run are named."""
    from .. import deps

    deps.require("matplotlib", "--plot")
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, no GUI toolkit imported
    import matplotlib.pyplot as plt

    ok = [r for r in report.results if r.status == "ok" and r.samples_ms]
    labels = [f"{Path(r.artifact).name}  {where(r)}" + (f" t={r.threads}" if r.threads else "") for r in ok]
    boxes = [dict(plot_stats(r.samples_ms), label=label) for r, label in zip(ok, labels)]
    figure, axes = plt.subplots(figsize=(10.0, 1.9 + PLOT_ROW_INCHES * max(len(ok), 2)), dpi=110)
    try:
        if ok:
            axes.bxp(boxes, orientation="horizontal", showfliers=False, widths=0.6,
                     medianprops={"color": "black", "linewidth": 1.5})
            for index, record in enumerate(ok, start=1):
                jitter = [index + 0.5 * ((i * 7919) % 101 / 101 - 0.5) for i in range(len(record.samples_ms))]
                axes.scatter(record.samples_ms, jitter, s=3, alpha=0.3, zorder=0)
            axes.set_yticks(range(1, len(ok) + 1), labels, fontsize=8)
            axes.set_ylim(len(ok) + 0.6, 0.4)   # the first row on top, as in the table
            low = min(b["whislo"] for b in boxes)
            high = max(max(r.samples_ms) for r in ok)
            if low > 0 and high / low > LOG_SCALE_SPREAD:
                axes.set_xscale("log")
        else:
            axes.text(0.5, 0.5, "no artifact ran", ha="center", va="center", transform=axes.transAxes)
            axes.set_yticks([])
        not_run = list(dict.fromkeys(f"{Path(r.artifact).name} ({r.status})" for r in report.results
                                     if r.status != "ok"))
        title = "warm latency per inference: box p25-p75, line median, whiskers p1-p99, dots every run"
        axes.set_title(f"{title}\n{plot_caption(report)}", fontsize=9, loc="left")
        axes.set_xlabel("ms" + (" (log scale)" if axes.get_xscale() == "log" else ""))
        if not_run:
            figure.text(0.01, 0.005, "not run: " + ", ".join(not_run), fontsize=7, va="bottom")
        axes.grid(axis="x", which="both", alpha=0.3)
        figure.tight_layout(rect=(0, 0.03 if not_run else 0, 1, 1))
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
    finally:
        plt.close(figure)
    write_atomic(Path(path), buffer.getvalue())
