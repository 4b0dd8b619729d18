"""`edgekit run`: the summary of a live run."""
from __future__ import annotations


def render_run(result, console) -> None:
    """A RunResult (edgekit.stream.pipeline): frames, rate, latency, drops and what was written."""
    rate = f"{result.fps:.1f} FPS" if result.fps else "-"
    # end-to-end latency exists for live sources only (a file is read as fast as it is processed)
    timing = (f", latency {result.latency_ms:.1f} ms" if result.latency_ms is not None else "") + \
        (f", inference {result.infer_ms:.1f} ms" if result.infer_ms is not None else "")
    console.print(f"{result.frames} frames from {result.source} ({result.stopped}): {rate}{timing}", markup=False)
    details = [f"dropped {result.dropped} to stay live" if result.dropped else "",
               f"reconnected {result.reconnects}x" if result.reconnects else "",
               f"skipped {len(result.skipped)} unreadable file(s)" if result.skipped else ""]
    if any(details):
        console.print("  " + ", ".join(d for d in details if d), markup=False)
    if result.workers_auto:
        console.print(f"  --workers auto: {result.workers_auto}", markup=False)
    for line in result.outputs:
        console.print(f"  {line}", markup=False)
