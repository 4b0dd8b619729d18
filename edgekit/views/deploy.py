"""`edgekit deploy`, `rollback`, `remote status|bench|run`: per-host results on boards."""
from __future__ import annotations

from ..ui import human_size, table


def _status(result) -> str:
    return "[green]ok[/]" if result.status == "ok" else "[red]failed[/]"


def _note(host: str, error: str | None) -> str:
    """The error without the host prefix, which the table's host column already shows."""
    return (error or "").removeprefix(f"{host}: ")


def render_deploy(bundle, results, console) -> None:
    """The fleet summary: one row per host (DeployResult)."""
    rows = [[r.host, r.version or "—", _status(r), "yes" if r.verified else "no", f"{r.seconds:.1f} s",
             _note(r.host, r.error) or ("unchanged: this content is already current" if r.unchanged else
                                        f"was {r.previous}" if r.previous else "")]
            for r in results]
    console.print(table(f"deploy {bundle.name} ({human_size(bundle.size)}, {len(bundle.files)} files)",
                        ["host", "version", "status", "sha256 verified", "time", "notes"], rows,
                        optional=("time", "sha256 verified", "version")))


def render_rollback(results, console) -> None:
    console.print(table("rollback", ["host", "model", "now current", "was", "status", "notes"],
                        [[r.host, r.name, r.version or "—", r.previous or "—", _status(r), _note(r.host, r.error)]
                         for r in results], optional=("was",)))


def render_status(host: str, root: str, rows: list[dict], console) -> None:
    """`remote status`: every kept version of every deployed model on HOST."""
    if not rows:
        console.print(f"{host}: no model is deployed under {root}", markup=False)
        return
    console.print(table(f"{host}: deployed models under {root}",
                        ["name", "version", "state", "created", "model file", "model sha256", "size"],
                        [[r["name"], r["version"], r["state"], r["created"] or "—", r["model"] or "—",
                          (r["model_sha256"] or "—")[:16], human_size(r["size_bytes"]) if r["size_bytes"] else "—"]
                         for r in rows], wrap=("model file",), optional=("model sha256", "created", "size")))


def render_remote_bench(report: dict, host: str, console) -> None:
    """The board's `bench` record, in the table `edgekit bench` prints (the same columns: the
    record is the same BenchRecord schema), with the board's facts under it."""
    from ..bench.harness import BenchRecord, BenchReport
    from .bench import LEGEND, bench_table, failure_notes

    bench = BenchReport(host=report.get("host") or {}, options=report.get("options") or {},
                        results=[BenchRecord(**r) for r in report["results"]])
    version = (report.get("bundle") or {}).get("version")
    console.print(bench_table(bench, title=f"remote bench on {host}" + (f" (version {version})" if version else "")))
    for note in failure_notes(bench):
        console.print(f"  {note}", highlight=False)
    console.print(f"[dim]{LEGEND}[/]")
    board = bench.host
    runtime = " ".join(str(v) for v in (board.get("runtime"), board.get("runtime_version")) if v)
    console.print(f"[dim]board: {board.get('board') or board.get('cpu')} ({board.get('machine')}, "
                  f"{board.get('cores')} cores), Python {board.get('python')}, {runtime or 'no TFLite runtime'}[/]")


def frame_text(line: dict) -> str:
    """One frame the board's runner reported, on one line."""
    # frames.FrameRecord's keys, as `edgekit run --jsonl` writes them
    name = line.get("file") or (f"{line['stream_ms'] / 1e3:.2f} s" if line.get("stream_ms") is not None
                                else f"frame {line.get('frame_id')}")
    head = f"{name}: {line.get('infer_ms') or 0:.1f} ms"
    results = line.get("results") or {}   # Prediction.to_dict(), as `edgekit predict --json` writes it
    found = results.get("classes") or results.get("detections") or []
    text = ", ".join(f"{item['label']} {item['score']:.3f}" for item in found[:3])
    if "mask" in results:
        text = "mask " + "x".join(map(str, results["mask"]["shape"]))
    return head + "  " + (text or "(nothing found)")
