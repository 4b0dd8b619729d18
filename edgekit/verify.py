"""Parity between an artifact and its source on the same real inputs.

Gates (documented in README): cosine similarity per output, at least
  fp32 0.9999 | fp16 0.999 | dynamic 0.99 | int8 0.98
and for classification int8 top-1 agreement >= 95 % on the samples where the source itself is
decisive: its top class leads the runner-up by at least DECISIVE_MARGIN in probability. Where
the source hesitates between two classes (textures, microscopy, a busy scene) its top-1 flips
under any perturbation: fp16, numerically near-exact, agrees on only 98.6 % of the bundled photo
views, and every healthy int8 EfficientNet-Lite0 on 83-86 %, while on the decisive views healthy
int8 artifacts agree on 100 % and broken ones (int16 saturation on non-VNNI CPUs) on 80-90 %.
Agreement over all samples is reported beside it. A failed gate fails the command.
"""
from __future__ import annotations

import numpy as np

from typing import Callable

from .manifest import OutputParity, StepParity, VerifyReport

GATES = {
    "fp32": {"cosine": 0.9999},
    "fp16": {"cosine": 0.999},
    "dynamic": {"cosine": 0.99},
    "int8": {"cosine": 0.98, "top1_agreement_decisive": 0.95},
}
DECISIVE_MARGIN = 0.10   # probability by which the source's top class must lead for top-1 to count
# Below these counts one sample moves a figure by more than 6 % (1/16) or a top-1 rate by 12.5 %
# (1/8): the gate still runs, but the user is told how little it rests on.
MIN_SAMPLES = 16
MIN_DECISIVE = 8


def align(reference: np.ndarray, candidate: np.ndarray) -> np.ndarray | None:
    """CANDIDATE (an artifact output, [N, ...]) in REFERENCE's shape: as is, NHWC <-> NCHW
    (converters move channels last) or squeezed; None when no such view exists."""
    if candidate.shape == reference.shape:
        return candidate
    if candidate.size != reference.size:
        return None
    if candidate.ndim == 4 and candidate.transpose(0, 3, 1, 2).shape == reference.shape:
        return candidate.transpose(0, 3, 1, 2)
    if candidate.ndim == 4 and candidate.transpose(0, 2, 3, 1).shape == reference.shape:
        return candidate.transpose(0, 2, 3, 1)
    if candidate.squeeze().shape == reference.squeeze().shape:
        return candidate.reshape(reference.shape)
    return None


def compare(name: str, reference: np.ndarray, candidate: np.ndarray, classification: bool) -> OutputParity:
    """Parity of one output over N samples: REFERENCE (the source's) and CANDIDATE (the
    artifact's, already `align`ed), both float [N, ...] in the model's own units.

    cosine: per-sample cosine similarity of the flattened outputs, averaged (two all-zero rows
    count 1.0); max/mean absolute error over every element. With CLASSIFICATION ([N, classes]
    scores or logits): top-1 agreement over all samples, and over the decisive ones, where the
    source's top class leads the runner-up by DECISIVE_MARGIN in probability (softmax of logits).
    """
    ref = reference.reshape(len(reference), -1).astype(np.float64)
    cand = candidate.reshape(len(candidate), -1).astype(np.float64)
    dots = (ref * cand).sum(axis=1)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1)
    cosine = np.where(norms > 0, dots / np.maximum(norms, 1e-30), np.where(np.abs(ref - cand).max(axis=1) == 0, 1.0, 0.0))
    error = np.abs(ref - cand)
    parity = OutputParity(name=name, cosine=float(cosine.mean()), max_abs_error=float(error.max()),
                          mean_abs_error=float(error.mean()))
    if classification:
        agree = ref.argmax(axis=1) == cand.argmax(axis=1)
        decisive = np.ones(len(ref), bool)   # a single score has no runner-up to hesitate with
        if ref.shape[1] > 1:
            runner_up, top = np.sort(_probabilities(ref), axis=1)[:, -2:].T
            decisive = top - runner_up >= DECISIVE_MARGIN
        parity.top1_agreement = float(agree.mean())
        parity.decisive_samples = int(decisive.sum())
        parity.top1_agreement_decisive = float(agree[decisive].mean()) if decisive.any() else None
    return parity


def _probabilities(scores: np.ndarray) -> np.ndarray:
    """Rows that already are probabilities stay; logits go through a softmax."""
    if (scores >= 0).all() and np.allclose(scores.sum(axis=1), 1.0, atol=1e-3):
        return scores
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def gate(report: VerifyReport, precision: str, classification: bool) -> VerifyReport:
    """Apply PRECISION's GATES to REPORT's outputs (top-1 only for CLASSIFICATION): sets
    `gate`, `status` ("pass" or "fail") and a note per failed output; returns REPORT."""
    limits = dict(GATES.get(precision, GATES["int8"]))
    if not classification:
        limits.pop("top1_agreement_decisive", None)
    report.gate = limits
    failed, notes = [], []
    for out in report.outputs:
        if out.cosine < limits["cosine"]:
            failed.append(f"{out.name}: cosine {out.cosine:.5f} < {limits['cosine']}")
        if "top1_agreement_decisive" not in limits or out.top1_agreement is None:
            continue
        limit = limits["top1_agreement_decisive"]
        if out.top1_agreement_decisive is None:
            notes.append(f"{out.name}: top-1 not gated: the source leads by {DECISIVE_MARGIN:.2f} on no sample")
        elif out.top1_agreement_decisive < limit:
            failed.append(f"{out.name}: top-1 agreement {out.top1_agreement_decisive:.1%} < {limit:.0%} on the "
                          f"{out.decisive_samples} samples where the source is decisive")
    report.status = "fail" if failed else "pass"
    report.notes.extend(failed + notes + few_samples(report, classification))
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
    if len(got) != len(expected):
        return [], f"{len(got)} outputs, the source has {len(expected)}"
    results = []
    unmatched = list(range(len(got)))
    for position, ref in enumerate(expected):
        options = [(j, aligned) for j in unmatched if (aligned := align(ref, got[j])) is not None]
        if not options:
            return [], f"output {position} of the source (shape {ref.shape}) matches no artifact output shape"
        parities = [(compare(names[j], ref, aligned, classification), j) for j, aligned in options]
        best, j = max(parities, key=lambda pair: (pair[0].cosine, pair[1] == position))
        unmatched.remove(j)
        results.append(best)
    return results, None


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
