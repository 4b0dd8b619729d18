"""Latency statistics and the per-artifact benchmark record schema.

This file imports nothing from edgekit and needs only the standard library, so the deploy
bundle can copy it verbatim onto a board: `edgekit bench` locally and `edgekit remote bench`
through the bundled runner then produce the same JSON.

Record schema (one per artifact; `edgekit bench --json` prints {"host": {...}, "results": [...]}):
    artifact, format, precision, backend, device, size_bytes, parity (from the manifest or None),
    status ("ok" | "failed" | "skipped": a host that can never run it), error (why not ok),
    check_ms (model-file safety checks, kept out of load_ms), load_ms, first_inference_ms,
    latency_ms {runs, mean, std, min, p50, p90, p99, max} (the runtime call alone, inputs loaded), fps,
    io_ms (loading inputs + reading outputs per call), preprocess_ms, postprocess_ms (medians,
    None when not measured), peak_rss_mb (the high-water mark of the row's own process: each row
    runs in a fresh one), rss_growth_mb (resident memory this artifact added),
    runs, warmup, threads, hint, input, samples_ms (the raw warm latencies, for plots and baselines)
"""
from __future__ import annotations

import math

# 2: latency_ms is the runtime call alone and io_ms the rest of each call; version 1 records (no
# io_ms field) timed the whole Runner.infer, so their medians are not comparable
RECORD_SCHEMA_VERSION = 2


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), on pre-sorted values."""
    if not sorted_values:
        return float("nan")
    position = (len(sorted_values) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def summarize(samples_ms: list[float]) -> dict[str, float]:
    values = sorted(float(v) for v in samples_ms)
    count = len(values)
    if count == 0:
        return {"runs": 0}
    mean = sum(values) / count
    variance = sum((v - mean) ** 2 for v in values) / count
    return {"runs": count, "mean": mean, "std": math.sqrt(variance), "min": values[0],
            "p50": percentile(values, 50), "p90": percentile(values, 90), "p99": percentile(values, 99),
            "max": values[-1]}


def fps(latency: dict[str, float]) -> float | None:
    """Frames per second of a sequential loop, from the median latency."""
    median = latency.get("p50")
    return 1000.0 / median if median else None


def record_key(record: dict) -> tuple:
    """What makes two records comparable across runs: the artifact's file name (not its folder,
    so a baseline from another checkout matches), backend, device and thread count."""
    artifact = str(record.get("artifact", "")).replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return artifact, record.get("backend"), record.get("device"), record.get("threads")


def compare_medians(baseline: list[dict], current: list[dict], max_regression_pct: float) -> list[dict]:
    """One comparison per current record that has an ok baseline record with the same key:
    {key, baseline_ms, current_ms, change_pct, regressed}. Medians only: they resist outliers."""
    base = {record_key(r): r for r in baseline if r.get("status") == "ok"}
    comparisons = []
    for record in current:
        old = base.get(record_key(record))
        if record.get("status") != "ok" or old is None:
            continue
        old_p50, new_p50 = old["latency_ms"]["p50"], record["latency_ms"]["p50"]
        change = (new_p50 - old_p50) / old_p50 * 100.0 if old_p50 else float("inf")
        comparisons.append({"key": list(record_key(record)), "baseline_ms": old_p50, "current_ms": new_p50,
                            "change_pct": change, "regressed": change > max_regression_pct})
    return comparisons


def peak_rss_mb():
    """This process's peak resident memory in MiB, or None. On Linux the high-water mark of its
    own address space (VmHWM): getrusage's ru_maxrss survives exec, so a child started from a
    large process would report its parent's peak. Elsewhere ru_maxrss (bytes on macOS)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
        import sys
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0
