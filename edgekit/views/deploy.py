"""`edgekit deploy`, `rollback`, `remote status|bench|run`: per-host results on boards."""
from __future__ import annotations

from ..ui import fmt, human_size, table


def _status(result) -> str:
    return "[green]ok[/]" if result.status == "ok" else "[red]failed[/]"


def _note(host: str, error: str | None) -> str:
    """The error without the host prefix, which the table's host column already shows."""
    return (error or "").removeprefix(f"{host}: ")


def _parity(result) -> str:
    """--verify-on-device: the board's verdict on the reference pack, with its worst cosine."""
    if result.verify is None:
        return "—"
    cosine = min((o["cosine"] for o in result.verify.get("outputs") or []), default=None)
    style = "[green]pass[/]" if result.verify.get("status") == "pass" else "[red]FAIL[/]"
    return f"{style} {fmt(cosine, '.4f')}" if cosine is not None else style


def render_deploy(bundle, results, console) -> None:
    """The fleet summary: one row per host (DeployResult); with --verify-on-device, the pack's
    verdict on each board."""
    checked = any(r.verify is not None for r in results)
    rows = [[r.host, r.version or "—", _status(r), "yes" if r.verified else "no",
             *([_parity(r)] if checked else []), f"{r.seconds:.1f} s",
             _note(r.host, r.error) or ("unchanged: this content is already current" if r.unchanged else
                                        f"was {r.previous}" if r.previous else "")]
            for r in results]
    console.print(table(f"deploy {bundle.name} ({human_size(bundle.size)}, {len(bundle.files)} files)",
                        ["host", "version", "status", "sha256 verified", *(["parity on board"] if checked else []),
                         "time", "notes"], rows,
                        optional=("time", "sha256 verified", "version")))


def render_rollback(results, console) -> None:
    console.print(table("rollback", ["host", "model", "now current", "was", "status", "notes"],
                        [[r.host, r.name, r.version or "—", r.previous or "—", _status(r), _note(r.host, r.error)]
                         for r in results], optional=("was",)))


HISTORY_ROWS = 10   # the latest events `remote status` shows (--json has every one the board sent)


def _event(event: dict) -> str:
    """One deploy-history event's outcome in a few words."""
    verify = event.get("verify") or {}
    parity = (f"pack {verify.get('status')} on {verify.get('runtime') or '?'}"
              + (f", cosine {verify['cosine']:.4f}" if verify.get("cosine") is not None else "")) if verify else ""
    if event.get("event") == "deploy":
        moved = ("unchanged" if event.get("unchanged") else "now current" if event.get("switched", True)
                 else f"not switched; {event.get('current') or 'nothing'} stays current")
        return "; ".join(p for p in (moved, parity) if p)
    if event.get("event") == "rollback":
        return f"was {event.get('previous')}"
    return parity


def render_status(host: str, root: str, rows: list[dict], console, events: list[dict] | None = None) -> None:
    """`remote status`: every kept version of every deployed model on HOST, then the latest
    events of their deploy history (deploy, rollback, verify)."""
    if not rows:
        console.print(f"{host}: no model is deployed under {root}", markup=False)
        return
    console.print(table(f"{host}: deployed models under {root}",
                        ["name", "version", "state", "created", "model file", "model sha256", "size"],
                        [[r["name"], r["version"], r["state"], r["created"] or "—", r["model"] or "—",
                          (r["model_sha256"] or "—")[:16], human_size(r["size_bytes"]) if r["size_bytes"] else "—"]
                         for r in rows], wrap=("model file",), optional=("model sha256", "created", "size")))
    recent = sorted(events or [], key=lambda e: e.get("time") or "")[-HISTORY_ROWS:]
    if recent:
        console.print(table(f"deploy history (latest {len(recent)})", ["time", "name", "event", "version", "notes"],
                            [[e.get("time") or "—", e.get("name"), e.get("event"), e.get("version") or "—", _event(e)]
                             for e in recent], optional=("time",)))


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
