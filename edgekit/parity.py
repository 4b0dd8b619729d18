"""Parity arithmetic: how close an artifact's outputs are to its source's, and the gates.

numpy only, no edgekit imports, Python 3.7+: the deploy bundle carries this very file
(sha256-checked) so that `edgekit remote verify` on a board computes parity and applies the
gates exactly as `edgekit convert` and `edgekit verify` do on the host. edgekit.verify builds
its typed reports (manifest.OutputParity, VerifyReport) on these functions; this is their one
home. Results here are plain dicts whose keys are OutputParity's fields. The reference pack's
layout (`write_pack`, `read_pack`) is here too, so host and board read it with the same code.

Gates (documented in README): cosine similarity per output and, within an output, per channel
group (see `group_axis`), at least
  fp32 0.9999 | fp16 0.999 | dynamic 0.99 | int8 0.98
for fp32 also every value within 0.1 % of its group's scale (`relative_error`); an output whose
row count is set at run time (NMS's selected indices) is compared as a multiset of rows and takes
the detection recall gate (`run_time_rows_parity`); and for
classification int8 top-1 agreement >= 95 % on the samples where the source itself is decisive:
its top class leads the runner-up by at least DECISIVE_MARGIN in probability. Where the source
hesitates between two classes (textures, microscopy, a busy scene) its top-1 flips
under any perturbation: fp16, numerically near-exact, agrees on only 98.6 % of the bundled photo
views, and every healthy int8 EfficientNet-Lite0 on 83-86 %, while on the decisive views healthy
int8 artifacts agree on 100 % and broken ones (int16 saturation on non-VNNI CPUs) on 80-90 %.

Why groups: one cosine over a whole output is dominated by its largest values. A YOLO-style head
[1, 4 + C, N] with boxes in pixels (0..320) and scores in 0..1 kept cosine 0.9999 in int8 while
every score had collapsed to one of two values (issue 13). So each group of values that share a
meaning (a row of [1, C, N], a column of [1, N, C], a channel of a feature map) is gated on its
own, and an int8 output whose quantization step is coarser than the spread of a group it carries
fails outright: that group is lost, whatever the cosine says.

Why a relative error for fp32: a cosine of 0.9999 still lets a few values be wrong by several
percent. OpenVINO ignores ONNX Resize's exclude_outside=1 (TensorFlow's bicubic resize), so the
border pixels of an upsampled map came out 2 % of the channel's scale off Keras at cosine
0.99999. An fp32 artifact computes the same arithmetic as its source, up to summation order:
healthy ones stay within 1e-5 of each group's scale, so 1e-3 fails only real differences.

The detection and mask gates (GATES' detection_* and mask_iou keys) need frames.py's decoders: edgekit.verify applies them
on the host; `gate_failures` here ignores them.
"""
from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

GATES = {
    "fp32": {"cosine": 0.9999, "relative_error": 1e-3, "detection_recall": 0.95, "detection_score_error": 0.01,
             "mask_iou": 0.99},
    "fp16": {"cosine": 0.999, "detection_recall": 0.95, "detection_score_error": 0.02, "mask_iou": 0.98},
    "dynamic": {"cosine": 0.99, "detection_recall": 0.9, "detection_score_error": 0.05, "mask_iou": 0.95},
    "int8": {"cosine": 0.98, "top1_agreement_decisive": 0.95, "detection_recall": 0.9,
             "detection_score_error": 0.1, "mask_iou": 0.9},
}
# Rows of an output whose size is set at run time (NMS's selected indices) are detections: they
# take the detection recall gate of their precision (`run_time_rows_parity`).
for _limits in GATES.values():
    _limits["row_agreement"] = _limits["detection_recall"]
DETECTION_KEYS = ("detection_recall", "detection_score_error")   # gated by edgekit.verify (host: frames.py decodes)
MASK_KEYS = ("mask_iou",)
DECISIVE_MARGIN = 0.10   # probability by which the source's top class must lead for top-1 to count
GROUP_NAMES = {2: ("row", "column"), 3: ("channel", "channel", "channel")}


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


def group_axis(shape: Sequence[int], layout: Optional[str] = None) -> Optional[int]:
    """The axis of an output of SHAPE ([N, ...], samples first) whose entries are channel groups,
    or None when the whole output is one group. The rule (README, Verify):

    - dimensions of size 1 are ignored ([1, 1000, 1, 1] is a vector of 1000 scores);
    - one remaining dimension (class scores, an embedding): one group;
    - two, [N, A, B]: the shorter one is the channel axis (YOLO's [1, 4 + C, 8400] rows, SSD's
      [1, N, 4] box columns and [1, N, C] score columns); equal lengths (a square map): one group;
    - three (a feature map or per-pixel class scores): the channel axis of the source's LAYOUT,
      first for NCHW, last for NHWC;
    - more: one group.
    """
    axes = [axis for axis in range(1, len(shape)) if shape[axis] > 1]
    if len(axes) == 2:
        a, b = axes
        return None if shape[a] == shape[b] else (a if shape[a] < shape[b] else b)
    if len(axes) == 3:
        return axes[0] if layout == "NCHW" else axes[-1]
    return None


def cosines(ref: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """Cosine of each row pair of two float64 [N, K] arrays; two all-zero rows count 1.0."""
    dots = (ref * cand).sum(axis=1)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1)
    exact = np.where(np.abs(ref - cand).max(axis=1) == 0, 1.0, 0.0)
    return np.where(norms > 0, dots / np.maximum(norms, 1e-30), exact)


def observed_step(values: np.ndarray, levels: int = 256) -> Optional[float]:
    """The quantization step of VALUES when they lie on one grid of at most LEVELS values (an
    int8 tensor dequantized, perhaps reshaped or transposed: what ONNX Runtime's QDQ and
    OpenVINO's FakeQuantize outputs are), else None. Real units per step."""
    unique = np.unique(np.asarray(values, np.float64))
    if len(unique) < 3 or len(unique) > levels:
        return None
    gaps = np.diff(unique)
    smallest = gaps.min()
    step = float(np.median(gaps[gaps < 1.5 * smallest]))   # float32 rounding blurs single gaps a little
    if step <= 0 or not np.allclose(gaps / step, np.round(gaps / step), atol=0.01):
        return None
    return step


def int8_steps(precision: str, steps: Optional[Sequence[Optional[float]]], got: Sequence[np.ndarray]
               ) -> List[Optional[float]]:
    """Each artifact output's quantization step: STEPS (declared, None where unknown) and, for an
    int8 PRECISION, the step seen in GOT's values (`observed_step`) where none was declared."""
    steps = list(steps) if steps is not None else [None] * len(got)
    if precision != "int8":
        return steps
    return [step if step is not None else observed_step(values) for step, values in zip(steps, got)]


def output_parity(name: str, reference: np.ndarray, candidate: np.ndarray, classification: bool,
                  layout: Optional[str] = None, step: Optional[float] = None) -> Dict[str, Any]:
    """Parity of one output over N samples: REFERENCE (the source's) and CANDIDATE (the
    artifact's, already `align`ed), both float [N, ...] in the model's own units.

    cosine: per-sample cosine similarity of the flattened outputs, averaged (two all-zero rows
    count 1.0); max/mean absolute error over every element; relative_error: the largest
    |candidate - reference| as a fraction of its group's scale (the larger of the group's source
    value range and its largest |source value|; the whole output is one group without groups),
    and relative_error_group, that group's index (None without groups; a group nearly constant
    in the source is judged on 1 % of the whole output's scale). Channel groups (`group_axis`,
    the source's LAYOUT; not for CLASSIFICATION): the same cosine per group, the worst one reported
    with its value range, and the group whose source values spread least; groups whose source
    values are constant are left out (nothing to compare a direction of). STEP: the artifact
    output's int8 quantization step in real units (None: float or unknown). With CLASSIFICATION
    ([N, classes] scores or logits): top-1 agreement over all samples, and over the decisive
    ones (`decisive`).
    """
    ref = reference.reshape(len(reference), -1).astype(np.float64)
    cand = candidate.reshape(len(candidate), -1).astype(np.float64)
    error = np.abs(ref - cand)
    result = _parity_dict(name, float(cosines(ref, cand).mean()), float(error.max()), float(error.mean()), step)
    axis = None if classification else group_axis(reference.shape, layout)
    result.update(_relative_error(ref, error, reference.shape, axis))
    if axis is not None:
        groups_ref = np.moveaxis(reference, axis, 1).astype(np.float64)
        groups_cand = np.moveaxis(candidate, axis, 1).astype(np.float64)
        count = groups_ref.shape[1]
        ranks = [a for a in range(1, reference.ndim) if reference.shape[a] > 1]
        result.update(group_axis=axis, groups=count, group_name=GROUP_NAMES[len(ranks)][ranks.index(axis)])
        worst = narrowest = None
        for index in range(count):
            g_ref = groups_ref[:, index].reshape(len(reference), -1)
            g_cand = groups_cand[:, index].reshape(len(candidate), -1)
            if g_ref.max() == g_ref.min():
                continue
            cosine = float(cosines(g_ref, g_cand).mean())
            value_range = [float(g_ref.min()), float(g_ref.max())]
            if worst is None or cosine < worst[1]:
                worst = (index, cosine, value_range)
            if narrowest is None or value_range[1] - value_range[0] < narrowest[1][1] - narrowest[1][0]:
                narrowest = (index, value_range)
        if worst is not None:
            result.update(worst_group=worst[0], worst_group_cosine=worst[1], worst_group_range=worst[2],
                          narrowest_group=narrowest[0], narrowest_group_range=narrowest[1])
    if classification:
        agree = ref.argmax(axis=1) == cand.argmax(axis=1)
        clear = decisive(ref)
        result["top1_agreement"] = float(agree.mean())
        result["decisive_samples"] = int(clear.sum())
        result["top1_agreement_decisive"] = float(agree[clear].mean()) if clear.any() else None
    return result


def _parity_dict(name: str, cosine: float, max_abs_error: float, mean_abs_error: float,
                 step: Optional[float] = None) -> Dict[str, Any]:
    return {"name": name, "cosine": cosine, "max_abs_error": max_abs_error, "mean_abs_error": mean_abs_error,
            "top1_agreement": None, "top1_agreement_decisive": None, "decisive_samples": None,
            "group_axis": None, "group_name": None, "groups": None, "worst_group": None,
            "worst_group_cosine": None, "worst_group_range": None, "narrowest_group": None,
            "narrowest_group_range": None, "quantization_step": None if step is None else float(step),
            "relative_error": None, "relative_error_group": None, "row_agreement": None}


class RunTimeRows(np.ndarray):
    """An output whose row count is set at run time (ONNX NonMaxSuppression's selected indices
    [K, 3]: batch, class, box), every sample's rows stacked as float [R, 1 + W] with the sample's
    index in column 0, so rows keep the sample they came from. Compared as a multiset of rows
    (`run_time_rows_parity`), never element by element: int8 may keep a box more or less than
    the source, or a near-tied neighbour instead."""


def _whole(values: np.ndarray) -> bool:
    return bool(np.issubdtype(values.dtype, np.integer) or (values == np.round(values)).all())


def stack_samples(batches: Sequence[Sequence[np.ndarray]]) -> List[np.ndarray]:
    """Per-sample outputs (BATCHES: for each sample, its outputs) -> one array per output: the
    samples concatenated along the batch axis, [N, ...]; an output that is 2-D, whole numbers,
    and has other than one row in some sample (no batch axis: rows set at run time) becomes
    `RunTimeRows` instead."""
    stacked = []
    for i in range(len(batches[0])):
        arrays = [np.asarray(b[i]) for b in batches]
        if all(a.ndim == 2 for a in arrays) and len({a.shape[1] for a in arrays}) == 1 \
                and any(a.shape[0] != 1 for a in arrays) and all(_whole(a) for a in arrays):
            stacked.append(_rows([a.astype(np.float64) for a in arrays]))
        else:
            stacked.append(np.concatenate(arrays))
    return stacked


def _rows(per_sample: Sequence[np.ndarray]) -> "RunTimeRows":
    width = per_sample[0].shape[1] if len(per_sample) else 0
    parts = [np.concatenate([np.full((len(a), 1), k, np.float64), a.reshape(len(a), width)], axis=1)
             for k, a in enumerate(per_sample)]
    return np.concatenate(parts).view(RunTimeRows) if parts else np.zeros((0, width + 1)).view(RunTimeRows)


def take_samples(array: np.ndarray, indices: Sequence[int]) -> np.ndarray:
    """ARRAY (stacked by `stack_samples`) at the samples INDICES, in that order: rows of a
    RunTimeRows renumbered 0.. as they are taken."""
    if not isinstance(array, RunTimeRows):
        return array[list(indices)]
    rows = np.asarray(array)
    return _rows([rows[rows[:, 0] == k][:, 1:] for k in indices])


def _as_rows(array: np.ndarray) -> Optional["RunTimeRows"]:
    """ARRAY as RunTimeRows: itself, or a [N, W] whole-number output stacked from N samples that
    each kept exactly one row (one side's count happened to be 1 everywhere); None otherwise."""
    if isinstance(array, RunTimeRows):
        return array
    if array.ndim == 2 and _whole(array):
        return _rows([row[None].astype(np.float64) for row in array])
    return None


def run_time_rows_parity(name: str, reference: np.ndarray, candidate: np.ndarray) -> Dict[str, Any]:
    """Parity of an output of run-time size (REFERENCE and CANDIDATE as `RunTimeRows`, column 0
    the sample), its rows compared as multisets within each sample. row_agreement: rows in
    common / the larger row count (gated like detection recall; 1.0 when neither side has a
    row); cosine: between the two sides' counts of each distinct (sample, row); max/mean_abs_error:
    of each source row to the nearest artifact row of its sample (a box index 11 chosen as 8 is
    3 off; no artifact row there: the row's largest magnitude)."""
    ref, cand = np.asarray(reference, np.float64), np.asarray(candidate, np.float64)
    if not len(ref) and not len(cand):
        result = _parity_dict(name, 1.0, 0.0, 0.0)
        result["row_agreement"] = 1.0
        return result
    rows, inverse = np.unique(np.concatenate([ref, cand]), axis=0, return_inverse=True)
    inverse = np.asarray(inverse).ravel()
    counts_ref = np.bincount(inverse[:len(ref)], minlength=len(rows)).astype(np.float64)
    counts_cand = np.bincount(inverse[len(ref):], minlength=len(rows)).astype(np.float64)
    common = float(np.minimum(counts_ref, counts_cand).sum())
    norms = np.linalg.norm(counts_ref) * np.linalg.norm(counts_cand)
    cosine = float(counts_ref @ counts_cand / norms) if norms > 0 else 0.0
    nearest = []
    for row in ref:
        mates = cand[cand[:, 0] == row[0]][:, 1:]
        nearest.append(np.abs(mates - row[1:]).max(axis=1).min() if len(mates) else np.abs(row[1:]).max())
    nearest = np.asarray(nearest if nearest else [0.0])
    result = _parity_dict(name, cosine, float(nearest.max()), float(nearest.mean()))
    result["row_agreement"] = common / max(len(ref), len(cand))
    return result


def _relative_error(ref: np.ndarray, error: np.ndarray, shape: Sequence[int], axis: Optional[int]) -> Dict[str, Any]:
    """relative_error and relative_error_group of `output_parity`: REF and ERROR are float64
    [N, K] (the source's values and |candidate - source|, flattened from SHAPE); AXIS the group
    axis of SHAPE or None (one group)."""
    if axis is not None:   # [N, groups, rest]: each group's largest error and scale
        errors = np.moveaxis(error.reshape(shape), axis, 1).reshape(len(ref), shape[axis], -1).max(axis=(0, 2))
        values = np.moveaxis(ref.reshape(shape), axis, 1).reshape(len(ref), shape[axis], -1)
        scales = np.maximum(values.max(axis=(0, 2)) - values.min(axis=(0, 2)), np.abs(values).max(axis=(0, 2)))
    else:
        errors, scales = error.max(keepdims=True).reshape(1), np.array([max(ref.max() - ref.min(), np.abs(ref).max())])
    # a group that is (nearly) constant in the source, a dead channel, is judged on the output's scale
    overall = max(float(ref.max() - ref.min()), float(np.abs(ref).max()))
    scales = np.maximum(scales, 1e-2 * overall)
    # an all-zero source output has no scale: any error there counts as 1 (off by all of itself)
    fractions = np.where(scales > 0, errors / np.maximum(scales, 1e-30), np.where(errors > 0, 1.0, 0.0))
    worst = int(np.argmax(fractions))
    return {"relative_error": float(fractions[worst]), "relative_error_group": worst if axis is not None else None}


def pair_outputs(expected: Sequence[np.ndarray], got: Sequence[np.ndarray], names: Sequence[str],
                 classification: bool, layout: Optional[str] = None,
                 steps: Optional[Sequence[Optional[float]]] = None
                 ) -> Tuple[List[Tuple[Dict[str, Any], np.ndarray]], Optional[str]]:
    """Pair each source output (EXPECTED, [N, ...] each) with the artifact output (GOT) that
    agrees with it best; NAMES are GOT's names, STEPS their int8 quantization steps (None where
    float or unknown), LAYOUT the source's input layout (see `group_axis`).

    Converters may reorder outputs (TFLite does for multi-output detectors): each source output
    takes the remaining output of a compatible shape (see `align`) with the highest cosine.
    Returns ([(output_parity dict, the artifact output aligned to the source's shape)] in source
    order, None), or ([], why) when they cannot be paired.
    """
    if len(got) != len(expected):
        return [], "%d outputs, the source has %d" % (len(got), len(expected))
    steps = list(steps) if steps is not None else [None] * len(got)
    results = []
    unmatched = list(range(len(got)))
    for position, ref in enumerate(expected):
        options = [] if isinstance(ref, RunTimeRows) else \
            [(j, align(ref, got[j])) for j in unmatched if not isinstance(got[j], RunTimeRows)]
        options = [(j, aligned) for j, aligned in options if aligned is not None]
        if not options:   # rows of run-time size on either side (one side may have kept one row per sample)
            rows = [(j, _as_rows(ref), _as_rows(got[j])) for j in unmatched
                    if isinstance(ref, RunTimeRows) or isinstance(got[j], RunTimeRows)]
            rows = [(j, r, c) for j, r, c in rows if r is not None and c is not None and r.shape[1] == c.shape[1]]
            if rows:
                j, r, c = rows[0]
                unmatched.remove(j)
                results.append((run_time_rows_parity(names[j], r, c), c))
                continue
            if isinstance(ref, RunTimeRows):
                return [], "output %d of the source (rows of run-time size, %d wide) matches no artifact output" \
                    % (position, ref.shape[1] - 1)
            return [], "output %d of the source (shape %s) matches no artifact output shape" % (position, ref.shape)
        scored = [(output_parity(names[j], ref, aligned, classification, layout, steps[j]), j, aligned)
                  for j, aligned in options]
        best, j, aligned = max(scored, key=lambda item: (item[0]["cosine"], item[1] == position))
        unmatched.remove(j)
        results.append((best, aligned))
    return results, None


def match(expected: Sequence[np.ndarray], got: Sequence[np.ndarray], names: Sequence[str],
          classification: bool, layout: Optional[str] = None,
          steps: Optional[Sequence[Optional[float]]] = None) -> Tuple[List[Dict[str, Any]], Optional[str]]:
    """`pair_outputs` without the aligned arrays: the `output_parity` dicts in source order, or
    ([], why)."""
    pairs, problem = pair_outputs(expected, got, names, classification, layout, steps)
    return [result for result, _ in pairs], problem


def gate_limits(precision: str, classification: bool, detection: bool = False, mask: bool = False) -> Dict[str, float]:
    """PRECISION's GATES (an unknown precision gets int8's); top-1 only for CLASSIFICATION, the
    detection and mask keys only where the report has DETECTION or MASK parity."""
    limits = dict(GATES.get(precision, GATES["int8"]))
    if not classification:
        limits.pop("top1_agreement_decisive", None)
    for keys, present in ((DETECTION_KEYS, detection), (MASK_KEYS, mask)):
        if not present:
            for key in keys:
                limits.pop(key, None)
    return limits


def coarse_step_problem(out: Dict[str, Any]) -> Optional[str]:
    """One line when OUT's (an `output_parity` dict) int8 quantization step is coarser than the
    spread of its narrowest group's source values: that group is carried by one or two int8
    levels, its information lost."""
    step, spread = out.get("quantization_step"), out.get("narrowest_group_range")
    if step is None or spread is None:
        return None
    low, high = spread
    if step <= high - low:
        return None
    return ("output %s: its int8 quantization step %.3g is coarser than the spread of its %s %s (source values "
            "%.3g..%.3g), so int8 cannot carry it: one tensor mixes value ranges. split the outputs, or normalize "
            "boxes to 0..1 as the YOLO exporters do, then quantize again"
            % (out["name"], step, out.get("group_name") or "group", out.get("narrowest_group"), low, high))


def describe_worst_group(out: Dict[str, Any]) -> Optional[str]:
    """'row 4'-style name of OUT's worst group, or None without groups."""
    if out.get("worst_group") is None:
        return None
    return "%s %s" % (out.get("group_name") or "group", out["worst_group"])


def gate_failures(outputs: Sequence[Dict[str, Any]], limits: Dict[str, float]) -> Tuple[List[str], List[str]]:
    """(failed, notes) of OUTPUTS (`output_parity` dicts) against LIMITS (`gate_limits`): one
    line per missed gate, and a note where top-1 could not be gated (no decisive sample).

    Per output: the pooled cosine, else its worst channel group's cosine, against limits'
    "cosine" (absent: not gated, as for sorted detections), else the largest error against
    "relative_error" (fp32: a few values far off at a cosine that passes); an int8 step coarser
    than a group's spread (`coarse_step_problem`) fails first, whatever the cosine; top-1 on
    decisive samples where limits has it. Keys this function does not know (detection, mask: edgekit.verify gates
    them on the host) are ignored, and dicts from older packs without group fields pass through.
    """
    failed, notes = [], []
    for out in outputs:
        if out.get("row_agreement") is not None:   # rows of run-time size: no element-wise gate applies
            line = "%s: %.1f%% of its rows (size set at run time, e.g. NMS) agree with the source's" \
                % (out["name"], 100 * out["row_agreement"])
            if out["row_agreement"] < limits.get("row_agreement", 0.0):
                failed.append("%s < %.0f%%" % (line, 100 * limits["row_agreement"]))
            else:
                notes.append("%s (gated like detection recall, not by cosine)" % line)
            continue
        limit = limits.get("cosine")
        cosine_failed = True
        if limit is not None and out["cosine"] < limit:
            failed.append("%s: cosine %.5f < %s" % (out["name"], out["cosine"], limit))
        elif limit is not None and out.get("worst_group_cosine") is not None and out["worst_group_cosine"] < limit:
            low, high = out["worst_group_range"]
            failed.append("%s: %s (source values %.3g..%.3g) cosine %.5f < %s, although the whole output scores %.5f"
                          % (out["name"], describe_worst_group(out), low, high, out["worst_group_cosine"], limit,
                             out["cosine"]))
        else:
            cosine_failed = False
        relative = limits.get("relative_error")
        if not cosine_failed and relative is not None and out.get("relative_error") is not None \
                and out["relative_error"] > relative:   # (a failed cosine says it already)
            where = "%s %s" % (out.get("group_name") or "group", out["relative_error_group"]) \
                if out.get("relative_error_group") is not None else "a value"
            failed.append("%s: %s is off the source by %.3g %% of its scale (> %.3g %%), although cosine %.5f passes: "
                          "the artifact computes something else there (a converter changed an op)"
                          % (out["name"], where, 100 * out["relative_error"], 100 * relative, out["cosine"]))
        coarse = coarse_step_problem(out)
        if coarse:
            failed.insert(0, coarse)   # the cause first: it says what to do
        if "top1_agreement_decisive" not in limits or out.get("top1_agreement") is None:
            continue
        top1 = limits["top1_agreement_decisive"]
        if out.get("top1_agreement_decisive") is None:
            notes.append("%s: top-1 not gated: the source leads by %.2f on no sample" % (out["name"], DECISIVE_MARGIN))
        elif out["top1_agreement_decisive"] < top1:
            failed.append("%s: top-1 agreement %.1f%% < %.0f%% on the %d samples where the source is decisive"
                          % (out["name"], 100 * out["top1_agreement_decisive"], 100 * top1, out["decisive_samples"]))
    return failed, notes


def pack_layout(meta: Dict[str, Any]) -> Optional[str]:
    """The source's input layout a pack's expected outputs are in (META of `read_pack`), which
    `group_axis` needs for feature maps: its "source_layout", or for packs written before it, the
    artifact's input layout (the manifest's preprocess layout)."""
    if meta.get("source_layout"):
        return meta["source_layout"]
    inputs = meta.get("inputs") or [{}]
    return inputs[0].get("layout") if isinstance(inputs[0], dict) else None


# ---------------------------------------------------------------- the reference pack's layout
# An .npz (a zip of .npy arrays, read with allow_pickle=False), written by edgekit.reference:
#   meta          uint8 [n]: UTF-8 JSON, the facts needed to gate it anywhere (edgekit/reference.py)
#   input_<i>     [K, ...] the i-th input's K feeds, in the input's own dtype; sample k is [k:k+1]
#   expected_<j>  float32 [K, ...] the source framework's j-th output on those K samples; for the
#                 outputs meta["rows_outputs"] lists, RunTimeRows [R, 1 + W] (column 0: sample 0..K-1)

PACK_FORMAT = "edgekit-reference"
PACK_VERSION = 1


class PackError(ValueError):
    """A reference pack that cannot be read (damaged, truncated, not a pack, a newer version)."""


def write_pack(handle: Any, meta: Dict[str, Any], inputs: Sequence[np.ndarray], expected: Sequence[np.ndarray]) -> None:
    """Write a pack to HANDLE (a path or binary file object): META (JSON-able, PACK_FORMAT and
    PACK_VERSION are added), INPUTS and EXPECTED as laid out above; zip-compressed."""
    meta = dict(meta, format=PACK_FORMAT, version=PACK_VERSION,
                rows_outputs=[j for j, array in enumerate(expected) if isinstance(array, RunTimeRows)])
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
    rows = set(meta.get("rows_outputs") or []) if isinstance(meta, dict) else set()
    expected = [a.view(RunTimeRows) if j in rows else a for j, a in enumerate(expected)]
    counts = {len(a) for a in inputs + [a for a in expected if not isinstance(a, RunTimeRows)]}
    if not inputs or not expected or len(counts) != 1:
        raise PackError("reference pack arrays are incomplete (inputs %d, outputs %d, sample counts %s)"
                        % (len(inputs), len(expected), sorted(counts)))
    return meta, inputs, expected
