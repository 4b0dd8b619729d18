"""Parity between an artifact and its source on the same real inputs.

Gates (documented in README): cosine similarity per output, at least
  fp32 0.9999 | fp16 0.999 | dynamic 0.99 | int8 0.98
and for classification int8 top-1 agreement >= 95 %. A failed gate fails the command.
"""
from __future__ import annotations

import numpy as np

from .manifest import OutputParity, VerifyReport

GATES = {
    "fp32": {"cosine": 0.9999},
    "fp16": {"cosine": 0.999},
    "dynamic": {"cosine": 0.99},
    "int8": {"cosine": 0.98, "top1_agreement": 0.95},
}


def align(reference: np.ndarray, candidate: np.ndarray) -> np.ndarray | None:
    """Bring candidate into the reference's shape (converters move channels last)."""
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
    ref = reference.reshape(len(reference), -1).astype(np.float64)
    cand = candidate.reshape(len(candidate), -1).astype(np.float64)
    dots = (ref * cand).sum(axis=1)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1)
    cosine = np.where(norms > 0, dots / np.maximum(norms, 1e-30), np.where(np.abs(ref - cand).max(axis=1) == 0, 1.0, 0.0))
    top1 = float((ref.argmax(axis=1) == cand.argmax(axis=1)).mean()) if classification else None
    error = np.abs(ref - cand)
    return OutputParity(name=name, cosine=float(cosine.mean()), max_abs_error=float(error.max()),
                        mean_abs_error=float(error.mean()), top1_agreement=top1)


def gate(report: VerifyReport, precision: str, classification: bool) -> VerifyReport:
    limits = dict(GATES.get(precision, GATES["int8"]))
    if not classification:
        limits.pop("top1_agreement", None)
    report.gate = limits
    failed = []
    for out in report.outputs:
        if out.cosine < limits["cosine"]:
            failed.append(f"{out.name}: cosine {out.cosine:.5f} < {limits['cosine']}")
        if "top1_agreement" in limits and out.top1_agreement is not None and out.top1_agreement < limits["top1_agreement"]:
            failed.append(f"{out.name}: top-1 agreement {out.top1_agreement:.1%} < {limits['top1_agreement']:.0%}")
    report.status = "fail" if failed else "pass"
    report.notes.extend(failed)
    return report
