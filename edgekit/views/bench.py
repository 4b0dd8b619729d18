"""`edgekit bench`: the side-by-side table, failures, host, published references, baseline."""
from __future__ import annotations

from pathlib import Path

from ..ui import fmt, human_size, table

COLUMNS = ["artifact", "prec", "backend/device", "thr", "size", "parity", "load", "first", "p50", "p99", "FPS",
           "pre/io/post", "RSS MB"]
# dropped in this order when the terminal is narrow; the Markdown/CSV/JSON files keep all of them
OPTIONAL = ("RSS MB", "first", "pre/io/post", "load", "size", "thr", "p99", "parity")
LEGEND = ("RSS MB: peak resident memory of the row's own process (each row runs in a fresh one: "
          "interpreter, runtime and model); pre/post: Predictor.prepare/decode medians; io: loading the input and reading the "
          "outputs around each inference; all three timed apart from it; --md/--csv/--json add p90, mean, "
          "std, min, max")


def bench_table(report, title: str = "edgekit bench"):
    """The terminal table: compact columns; a failed row says "failed" (`failure_notes` says why)."""
    from ..bench.report import where

    runs = {r.runs for r in report.results if r.status == "ok"}
    caption = (f"{title}: times in ms, batch 1; p50/p99 of warm inference (the runtime call) over "
               f"{', '.join(map(str, sorted(runs))) or 0} runs; io = loading inputs + reading outputs")
    rows = []
    for r in report.results:
        parity = r.parity or {}
        head = [Path(r.artifact).name, r.precision or "—", where(r), "—" if r.threads is None else str(r.threads),
                human_size(r.size_bytes) if r.size_bytes else "—",
                (f"{parity['status']} {parity['cosine']:.3f}" if parity.get("cosine") is not None
                 else parity["status"]) if parity else "—"]
        if r.status != "ok":
            rows.append(head + ["[yellow]skipped[/]" if r.status == "skipped" else "[red]failed[/]"] + [""] * 6)
            continue
        lat = r.latency_ms
        rows.append(head + [fmt(r.load_ms, ".0f"), fmt(r.first_inference_ms, ".1f"),
                            *(fmt(lat.get(k), ".2f") for k in ("p50", "p99")), fmt(r.fps, ".1f"),
                            f"{fmt(r.preprocess_ms, '.2f')}/{fmt(r.io_ms, '.2f')}/{fmt(r.postprocess_ms, '.2f')}",
                            fmt(r.peak_rss_mb, ".0f")])
    return table(caption, COLUMNS, rows, wrap=(), optional=OPTIONAL)


def failure_notes(report) -> list[str]:
    """One line per row that did not run: "[red]failed[/] NAME: reason" or "[yellow]skipped[/] ..."."""
    return [("[yellow]skipped[/] " if r.status == "skipped" else "[red]failed[/] ") + Path(r.artifact).name
            + (f" (threads {r.threads})" if r.threads else "") + f": {r.error}"
            for r in report.results if r.status != "ok"]


def render_bench(report, console, sidecars=(), profile=None, comparison=None) -> None:
    """A BenchReport, with the files a glob brought along that were not benchmarked (SIDECARS),
    a device profile's published references and a baseline Comparison, when given."""
    from ..bench.report import PROFILE_COLUMNS, host_line, profile_rows

    if sidecars:
        console.print(f"[dim]not benchmarked (manifests and companion files of listed models): "
                      f"{', '.join(Path(p).name for p in sidecars)}[/]")
    console.print(bench_table(report))
    for note in failure_notes(report):
        console.print(f"  {note}", highlight=False)
    console.print(f"[dim]{LEGEND}[/]")
    console.print(f"[dim]host: {host_line(report)}[/]")
    if profile:
        console.print(table(f"{profile.title}: published references", PROFILE_COLUMNS,
                            profile_rows(report, profile), wrap=("artifact", "setup", "source"),
                            optional=("measured p50 ms",)))
    if comparison is not None:
        render_comparison(comparison, console)


def render_comparison(comparison, console) -> None:
    """A Comparison: each matched row's baseline and current median."""
    console.print(table(f"baseline {comparison.baseline} (max regression {comparison.max_regression_pct:g}%)",
                        ["artifact", "backend/device", "threads", "baseline p50 ms", "p50 ms", "change"],
                        [[r.key[0], f"{r.key[1]}/{r.key[2]}", r.key[3] or "default", f"{r.baseline_ms:.3f}",
                          f"{r.current_ms:.3f}", f"{r.change_pct:+.1f}%" + (" REGRESSED" if r.regressed else "")]
                         for r in comparison.rows], wrap=(), optional=("threads",)))
    if not comparison.rows:
        console.print("[yellow]no result matched the baseline (same artifact name, backend, device, threads)[/]")
