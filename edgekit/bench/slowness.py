"""Flags for a board that runs a model far slower than it should (`edgekit remote bench`).

Two rules, each naming the likely cause:
  - the median is more than SLOW_FACTOR times a device profile's published reference for the
    same model (devices/*.yaml: the publisher's own board and setup);
  - an int8 model is slower than the fp32 model of the same name on the same board. int8 is
    faster than fp32 wherever the TFLite runtime has optimized integer kernels (XNNPACK, or
    ruy on Arm); a slower int8 means the runtime runs reference kernels.
Records are `BenchRecord` dicts (edgekit/bench/harness.py), the board's `host` facts as the
bundled runner reports them (runtime, runtime_version, libedgetpu).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

SLOW_FACTOR = 10.0
_PRECISION = re.compile(r"_(int8|fp32|fp16|dynamic)(?=[_.])")


def flag_slowness(report: dict[str, Any], profile=None) -> list[str]:
    """One line per slow result in REPORT (`remote bench --json`'s document), or []."""
    host = report.get("host") or {}
    records = [r for r in report.get("results", []) if r.get("status") == "ok" and r.get("latency_ms", {}).get("p50")]
    flags = []
    for record in records:
        p50 = record["latency_ms"]["p50"]
        name = Path(record["artifact"]).name
        for ref in profile.references_for(name) if profile else []:
            if p50 > SLOW_FACTOR * ref.latency_ms:
                flags.append(f"{name}: p50 {p50:.2f} ms is {p50 / ref.latency_ms:.0f}x the {profile.name} reference "
                             f"({ref.latency_ms:g} ms, {ref.model}); likely cause: {likely_cause(host, record, profile)}")
                break
    by_model: dict[str, dict[str, dict]] = {}
    for record in records:
        key = _PRECISION.sub("", Path(record["artifact"]).name)
        by_model.setdefault(key, {})[record.get("precision")] = record
    for pair in by_model.values():
        int8, fp32 = pair.get("int8"), pair.get("fp32")
        if int8 and fp32 and int8["latency_ms"]["p50"] > fp32["latency_ms"]["p50"]:
            flags.append(f"{Path(int8['artifact']).name}: int8 p50 {int8['latency_ms']['p50']:.2f} ms is slower than "
                         f"fp32 ({fp32['latency_ms']['p50']:.2f} ms, {Path(fp32['artifact']).name}); likely cause: "
                         f"{likely_cause(host, int8, profile)}")
    return flags


def likely_cause(host: dict[str, Any], record: dict[str, Any], profile=None) -> str:
    """The most likely reason, from what the board reported about itself."""
    if profile is not None and profile.backend == "edgetpu" and record.get("device") != "edgetpu":
        return ("the model ran on the board's CPU, not the Edge TPU: deploy the compiled *_edgetpu.tflite "
                "(edgekit edgetpu compile) and install libedgetpu there")
    runtime = " ".join(str(v) for v in (host.get("runtime"), host.get("runtime_version")) if v) or "unknown"
    if host.get("runtime") == "tflite_runtime":
        return (f"the board's TFLite runtime ({runtime}): old tflite_runtime builds lack the XNNPACK delegate's "
                "integer kernels; pip install ai-edge-litert on the board and bench again")
    return (f"the XNNPACK delegate missing from the board's TFLite runtime ({runtime}), or a throttled CPU "
            "(governor, temperature, other load); compare `--threads` settings")
