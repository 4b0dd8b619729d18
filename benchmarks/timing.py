"""Shared by the scripts in benchmarks/: the clock, the one percentile definition, sample
summaries, ratios of medians, and interleaved timing of several callables.

The percentile is `edgekit.bench.stats.percentile` (linear interpolation between closest ranks,
numpy's default): the definition `edgekit bench` and the board runner use, so a p10 or median
here means what it means in their records. Medians are its 50th percentile.

    from timing import clock, median, percentile_of, stats_ms   # benchmarks/ is on sys.path
"""
from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Iterable
from typing import Any

import hostinfo
from edgekit.bench.stats import percentile

clock = time.perf_counter_ns   # every timed call: integer nanoseconds, monotonic


def percentile_of(values: Iterable[float], q: float) -> float:
    """The Q-th percentile (0-100) of VALUES, in any order."""
    return percentile(sorted(values), q)


def median(values: Iterable[float]) -> float:
    return percentile_of(values, 50)


def stats_ms(samples_ns: list[int]) -> dict[str, Any]:
    """Summary of nanosecond samples in milliseconds: n, median, mean, stdev (sample), min, p10, p90, max."""
    ms = sorted(t / 1e6 for t in samples_ns)
    return {"n": len(ms), "median_ms": percentile(ms, 50), "mean_ms": statistics.fmean(ms),
            "stdev_ms": statistics.stdev(ms) if len(ms) > 1 else 0.0, "min_ms": ms[0],
            "p10_ms": percentile(ms, 10), "p90_ms": percentile(ms, 90), "max_ms": ms[-1]}


def ratio_summary(numerator: list[list[int]], denominator: list[list[int]], paired: bool = False) -> dict[str, Any]:
    """numerator/denominator, from per-round blocks of samples: the ratio of the medians over all
    samples (the headline), the ratio of the 10th percentiles (less sensitive to other processes
    stealing the CPU), the ratio within each round, and for paired samples (alternating calls)
    the median of the per-call ratios."""
    flat_n = [t for block in numerator for t in block]
    flat_d = [t for block in denominator for t in block]
    per_round = [median(a) / median(b) for a, b in zip(numerator, denominator)]
    summary = {"ratio": median(flat_n) / median(flat_d),
               "ratio_p10": percentile_of(flat_n, 10) / percentile_of(flat_d, 10),
               "per_round": per_round, "per_round_median": median(per_round),
               "per_round_min": min(per_round), "per_round_max": max(per_round)}
    if paired:
        summary["paired_median"] = median(a / b for a, b in zip(flat_n, flat_d))
    return summary


def interleaved_blocks(calls: dict[tuple[str, str], Callable[[], Any]], rounds: int, runs: int,
                       warmup: int) -> tuple[dict[tuple[str, str], list[list[int]]], dict | None]:
    """Time CALLS, keyed (precision, kind), in interleaved blocks; returns per-round ns samples and
    the CPU contention seen meanwhile (hostinfo.contention).

    Each round runs one fp32 block and one int8 block (which comes first flips every round); inside
    a block the kinds alternate call by call (their order flips every other round: ABAB, then BABA),
    so kinds are paired call by call and precisions block by block, cancelling the machine's drift.
    """
    for call in calls.values():
        for _ in range(warmup):
            call()
    samples: dict[tuple[str, str], list[list[int]]] = {v: [] for v in calls}
    gc.collect()
    gc.disable()
    before = hostinfo.cpu_snapshot()
    try:
        for index in range(rounds):
            for precision in (("fp32", "int8") if index % 2 == 0 else ("int8", "fp32")):
                kinds = [k for (p, k) in calls if p == precision]
                kinds = kinds if (index // 2) % 2 == 0 else kinds[::-1]
                block: dict[str, list[int]] = {k: [] for k in kinds}
                for _ in range(runs):
                    for kind in kinds:
                        call = calls[(precision, kind)]
                        started = clock()
                        call()
                        block[kind].append(clock() - started)
                for kind in kinds:
                    samples[(precision, kind)].append(block[kind])
    finally:
        after = hostinfo.cpu_snapshot()
        gc.enable()
    return samples, hostinfo.contention(before, after)
