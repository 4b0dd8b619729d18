"""Latency statistics and the per-artifact benchmark record schema.

This file imports nothing from edgekit and needs only the standard library, so the deploy
bundle can copy it verbatim onto a board: `edgekit bench` locally and `edgekit remote bench`
through the bundled runner then produce the same JSON.

Record schema (one per artifact; `edgekit bench --json` prints {"host": {...}, "results": [...]}):
    artifact, format, precision, backend, device, size_bytes, parity (from the manifest or None),
    status ("ok" | "failed"), error (reason when failed),
    load_ms, first_inference_ms, latency_ms {runs, mean, std, min, p50, p90, p99, max}, fps,
    preprocess_ms, postprocess_ms (medians, None when not measured), peak_rss_mb,
    runs, warmup, threads, samples_ms (the raw warm latencies, for plots and baselines)
"""
from __future__ import annotations

import math

RECORD_SCHEMA_VERSION = 1


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
