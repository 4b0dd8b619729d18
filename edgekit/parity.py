"""Parity arithmetic: how close an artifact's outputs are to its source's, and the gates.

numpy only, no edgekit imports, Python 3.7+: the deploy bundle carries this very file
(sha256-checked) so that `edgekit remote verify` on a board computes parity and applies the
gates exactly as `edgekit convert` and `edgekit verify` do on the host. edgekit.verify builds
its typed reports (manifest.OutputParity, VerifyReport) on these functions; this is their one
home. Results here are plain dicts whose keys are OutputParity's fields. The reference pack's
layout (`write_pack`, `read_pack`) is here too, so host and board read it with the same code.

Gates (documented in README): cosine similarity per output, at least
  fp32 0.9999 | fp16 0.999 | dynamic 0.99 | int8 0.98
and for classification int8 top-1 agreement >= 95 % on the samples where the source itself is
decisive: its top class leads the runner-up by at least DECISIVE_MARGIN in probability. Where
the source hesitates between two classes (textures, microscopy, a busy scene) its top-1 flips
under any perturbation: fp16, numerically near-exact, agrees on only 98.6 % of the bundled photo
views, and every healthy int8 EfficientNet-Lite0 on 83-86 %, while on the decisive views healthy
int8 artifacts agree on 100 % and broken ones (int16 saturation on non-VNNI CPUs) on 80-90 %.
"""
from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

GATES = {
    "fp32": {"cosine": 0.9999},
    "fp16": {"cosine": 0.999},
    "dynamic": {"cosine": 0.99},
    "int8": {"cosine": 0.98, "top1_agreement_decisive": 0.95},
}
DECISIVE_MARGIN = 0.10   # probability by which the source's top class must lead for top-1 to count


def align(reference: np.ndarray, candidate: np.ndarray) -> Optional[np.ndarray]:
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


def probabilities(scores: np.ndarray) -> np.ndarray:
    """Rows ([N, classes]) that already are probabilities stay; logits go through a softmax."""
    if (scores >= 0).all() and np.allclose(scores.sum(axis=1), 1.0, atol=1e-3):
        return scores
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def decisive(scores: np.ndarray) -> np.ndarray:
    """bool [N]: the samples whose top class leads the runner-up by DECISIVE_MARGIN in
    probability (SCORES: the source's [N, classes] scores or logits; a single score is decisive)."""
    rows = scores.reshape(len(scores), -1).astype(np.float64)
    if rows.shape[1] < 2:
        return np.ones(len(rows), bool)
    runner_up, top = np.sort(probabilities(rows), axis=1)[:, -2:].T
    return top - runner_up >= DECISIVE_MARGIN


def output_parity(name: str, reference: np.ndarray, candidate: np.ndarray, classification: bool) -> Dict[str, Any]:
    """Parity of one output over N samples: REFERENCE (the source's) and CANDIDATE (the
    artifact's, already `align`ed), both float [N, ...] in the model's own units.

    cosine: per-sample cosine similarity of the flattened outputs, averaged (two all-zero rows
    count 1.0); max/mean absolute error over every element. With CLASSIFICATION ([N, classes]
    scores or logits): top-1 agreement over all samples, and over the decisive ones (`decisive`).
    """
    ref = reference.reshape(len(reference), -1).astype(np.float64)
    cand = candidate.reshape(len(candidate), -1).astype(np.float64)
    dots = (ref * cand).sum(axis=1)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1)
    exact = np.where(np.abs(ref - cand).max(axis=1) == 0, 1.0, 0.0)
    cosine = np.where(norms > 0, dots / np.maximum(norms, 1e-30), exact)
    error = np.abs(ref - cand)
    result = {"name": name, "cosine": float(cosine.mean()), "max_abs_error": float(error.max()),
              "mean_abs_error": float(error.mean()), "top1_agreement": None, "top1_agreement_decisive": None,
              "decisive_samples": None}
    if classification:
        agree = ref.argmax(axis=1) == cand.argmax(axis=1)
        clear = decisive(ref)
        result["top1_agreement"] = float(agree.mean())
        result["decisive_samples"] = int(clear.sum())
        result["top1_agreement_decisive"] = float(agree[clear].mean()) if clear.any() else None
    return result


def match(expected: Sequence[np.ndarray], got: Sequence[np.ndarray], names: Sequence[str],
          classification: bool) -> Tuple[List[Dict[str, Any]], Optional[str]]:
    """Pair each source output (EXPECTED, [N, ...] each) with the artifact output (GOT) that
    agrees with it best; NAMES are GOT's names.

    Converters may reorder outputs (TFLite does for multi-output detectors): each source output
    takes the remaining output of a compatible shape (see `align`) with the highest cosine.
    Returns the `output_parity` dicts in source order, or ([], why) when they cannot be paired.
    """
    if len(got) != len(expected):
        return [], "%d outputs, the source has %d" % (len(got), len(expected))
    results = []
    unmatched = list(range(len(got)))
    for position, ref in enumerate(expected):
        options = []
        for j in unmatched:
            aligned = align(ref, got[j])
            if aligned is not None:
                options.append((j, aligned))
        if not options:
            return [], "output %d of the source (shape %s) matches no artifact output shape" % (position, ref.shape)
        scored = [(output_parity(names[j], ref, aligned, classification), j) for j, aligned in options]
        best, j = max(scored, key=lambda pair: (pair[0]["cosine"], pair[1] == position))
        unmatched.remove(j)
        results.append(best)
    return results, None


def gate_limits(precision: str, classification: bool) -> Dict[str, float]:
    """PRECISION's GATES (an unknown precision gets int8's); top-1 only for CLASSIFICATION."""
    limits = dict(GATES.get(precision, GATES["int8"]))
    if not classification:
        limits.pop("top1_agreement_decisive", None)
    return limits


def gate_failures(outputs: Sequence[Dict[str, Any]], limits: Dict[str, float]) -> Tuple[List[str], List[str]]:
    """(failed, notes) of OUTPUTS (`output_parity` dicts) against LIMITS (`gate_limits`): one
    line per missed gate, and a note where top-1 could not be gated (no decisive sample)."""
    failed, notes = [], []
    for out in outputs:
        if out["cosine"] < limits["cosine"]:
            failed.append("%s: cosine %.5f < %s" % (out["name"], out["cosine"], limits["cosine"]))
        if "top1_agreement_decisive" not in limits or out.get("top1_agreement") is None:
            continue
        limit = limits["top1_agreement_decisive"]
        if out.get("top1_agreement_decisive") is None:
            notes.append("%s: top-1 not gated: the source leads by %.2f on no sample" % (out["name"], DECISIVE_MARGIN))
        elif out["top1_agreement_decisive"] < limit:
            failed.append("%s: top-1 agreement %.1f%% < %.0f%% on the %d samples where the source is decisive"
                          % (out["name"], 100 * out["top1_agreement_decisive"], 100 * limit, out["decisive_samples"]))
    return failed, notes


# ---------------------------------------------------------------- the reference pack's layout
# An .npz (a zip of .npy arrays, read with allow_pickle=False), written by edgekit.reference:
#   meta          uint8 [n]: UTF-8 JSON, the facts needed to gate it anywhere (edgekit/reference.py)
#   input_<i>     [K, ...] the i-th input's K feeds, in the input's own dtype; sample k is [k:k+1]
#   expected_<j>  float32 [K, ...] the source framework's j-th output on those K samples

PACK_FORMAT = "edgekit-reference"
PACK_VERSION = 1


class PackError(ValueError):
    """A reference pack that cannot be read (damaged, truncated, not a pack, a newer version)."""


def write_pack(handle: Any, meta: Dict[str, Any], inputs: Sequence[np.ndarray], expected: Sequence[np.ndarray]) -> None:
    """Write a pack to HANDLE (a path or binary file object): META (JSON-able, PACK_FORMAT and
    PACK_VERSION are added), INPUTS and EXPECTED as laid out above; zip-compressed."""
    meta = dict(meta, format=PACK_FORMAT, version=PACK_VERSION)
    arrays = {"meta": np.frombuffer(json.dumps(meta, sort_keys=True).encode("utf-8"), np.uint8)}
    for i, array in enumerate(inputs):
        arrays["input_%d" % i] = np.ascontiguousarray(array)
    for j, array in enumerate(expected):
        arrays["expected_%d" % j] = np.ascontiguousarray(array, np.float32)
    np.savez_compressed(handle, **arrays)


def read_pack(path: str) -> Tuple[Dict[str, Any], List[np.ndarray], List[np.ndarray]]:
    """(meta, inputs, expected) of the pack at PATH. Raises PackError when it is not a readable
    pack of a version this code knows, or its arrays disagree on K."""
    try:
        with np.load(path, allow_pickle=False) as data:
            names = set(data.files)
            meta = json.loads(bytes(data["meta"].tobytes()).decode("utf-8"))
            inputs = [data["input_%d" % i] for i in range(len(names)) if "input_%d" % i in names]
            expected = [data["expected_%d" % j] for j in range(len(names)) if "expected_%d" % j in names]
    except (OSError, ValueError, KeyError, EOFError, UnicodeDecodeError) as exc:
        raise PackError("not a readable reference pack (%s)" % (str(exc).splitlines()[0] if str(exc) else type(exc).__name__))
    except Exception as exc:  # zipfile.BadZipFile and friends: a damaged file, whatever the numpy version says
        raise PackError("not a readable reference pack (%s)" % type(exc).__name__)
    if not isinstance(meta, dict) or meta.get("format") != PACK_FORMAT:
        raise PackError("not a reference pack (its meta does not say %r)" % PACK_FORMAT)
    if not isinstance(meta.get("version"), int) or meta["version"] > PACK_VERSION:
        raise PackError("reference pack version %r is newer than this code reads (%d)" % (meta.get("version"), PACK_VERSION))
    counts = {len(a) for a in inputs + expected}
    if not inputs or not expected or len(counts) != 1:
        raise PackError("reference pack arrays are incomplete (inputs %d, outputs %d, sample counts %s)"
                        % (len(inputs), len(expected), sorted(counts)))
    return meta, inputs, expected
