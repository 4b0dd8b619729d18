"""Parity between an artifact and its source on the same real inputs: typed reports and gates.

The arithmetic (cosine, top-1 on decisive samples, output pairing, the GATES per precision and
why top-1 is gated only where the source is decisive) lives in edgekit/parity.py, numpy-only,
which the deploy bundle carries to boards. This module turns it into manifest records
(OutputParity, VerifyReport, StepParity). A failed gate fails the command.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Callable

import numpy as np

from . import parity
from .manifest import OutputParity, StepParity, VerifyReport
from .parity import DECISIVE_MARGIN, GATES, align  # noqa: F401  (their home: parity.py, vendored onto boards)

# Below these counts one sample moves a figure by more than 6 % (1/16) or a top-1 rate by 12.5 %
# (1/8): the gate still runs, but the user is told how little it rests on.
MIN_SAMPLES = 16
MIN_DECISIVE = 8


def compare(name: str, reference: np.ndarray, candidate: np.ndarray, classification: bool) -> OutputParity:
    """Parity of one output over N samples: REFERENCE (the source's) and CANDIDATE (the
    artifact's, already `align`ed), both float [N, ...] in the model's own units.

    cosine: per-sample cosine similarity of the flattened outputs, averaged (two all-zero rows
    count 1.0); max/mean absolute error over every element. With CLASSIFICATION ([N, classes]
    scores or logits): top-1 agreement over all samples, and over the decisive ones, where the
    source's top class leads the runner-up by DECISIVE_MARGIN in probability (softmax of logits).
    The arithmetic is parity.output_parity's.
    """
    return OutputParity(**parity.output_parity(name, reference, candidate, classification))


def gate(report: VerifyReport, precision: str, classification: bool) -> VerifyReport:
    """Apply PRECISION's GATES to REPORT's outputs (top-1 only for CLASSIFICATION): sets
    `gate`, `status` ("pass" or "fail") and a note per failed output; returns REPORT."""
    report.gate = parity.gate_limits(precision, classification)
    failed, notes = parity.gate_failures([asdict(o) for o in report.outputs], report.gate)
    report.status = "fail" if failed else "pass"
    report.notes.extend(failed + notes)
    return report


def few_samples(report: VerifyReport, classification: bool) -> list[str]:
    """Warnings for a verdict resting on fewer than MIN_SAMPLES samples, or (classification) a
    top-1 agreement resting on fewer than MIN_DECISIVE decisive ones; each says the count used."""
    warnings = []
    if report.samples < MIN_SAMPLES:
        warnings.append(f"verified on only {report.samples} samples (fewer than {MIN_SAMPLES}): the parity figures "
                        "are rough; give --verify-data (or --calib) more images")
    decisive = report.decisive_samples
    if classification and report.top1_agreement is not None and decisive is not None and decisive < MIN_DECISIVE:
        warnings.append(f"top-1 agreement rests on only {decisive} decisive samples (fewer than {MIN_DECISIVE}; the "
                        f"source leads by {DECISIVE_MARGIN:.2f} on those): give more or clearer images")
    return warnings


def match_outputs(expected: list[np.ndarray], got: list[np.ndarray], names: list[str],
                  classification: bool) -> tuple[list[OutputParity], str | None]:
    """Pair each source output with the artifact output that agrees with it best.

    Converters may reorder outputs (TFLite does for multi-output detectors): each source output
    takes the remaining output of a compatible shape (see `align`) with the highest cosine.
    Returns the parities in source order, or ([], why) when the outputs cannot be paired.
    """
    pairs, problem = parity.match(expected, got, names, classification)
    return [OutputParity(**p) for p in pairs], problem


def check_step(step: str, runtime: str, run: Callable[[np.ndarray], list[np.ndarray]], inputs: np.ndarray,
               expected: list[np.ndarray], classification: bool, names: list[str] | None = None) -> StepParity:
    """Run an intermediate model (a bridge's output, or the program handed to a converter) on the
    verify inputs and compare it with the source's outputs, gated like fp32.

    run: float32 [1, H, W, C] normalized NHWC sample -> outputs (the caller converts layout);
    inputs: float32 [N, H, W, C]; expected: the source's outputs on them, each [N, ...].
    An intermediate that raises is a failed step, with the error as its note.
    """
    parity = StepParity(step=step, runtime=runtime, status="pass", samples=len(inputs))
    try:
        batches = [[np.asarray(o) for o in run(sample[None])] for sample in inputs]
    except Exception as exc:  # an upstream runtime: its own message says what broke
        parity.status = "fail"
        parity.notes.append(f"{runtime} could not run it: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                            if str(exc) else f"{runtime} could not run it: {type(exc).__name__}")
        return parity
    got = [np.concatenate([b[i] for b in batches]) for i in range(len(batches[0]))]
    names = names or [f"output_{i}" for i in range(len(got))]
    parity.outputs, problem = match_outputs(expected, got, names, classification)
    limit = GATES["fp32"]["cosine"]
    if problem:
        parity.status, parity.notes = "fail", [problem]
    elif parity.cosine < limit:
        parity.status = "fail"
        parity.notes.append(f"cosine {parity.cosine:.6f} < {limit} against the source")
    return parity
