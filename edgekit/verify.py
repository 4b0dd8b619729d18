"""Parity between an artifact and its source on the same real inputs.

Gates (documented in README): cosine similarity per output and, within an output, per channel
group (see `group_axis`), at least
  fp32 0.9999 | fp16 0.999 | dynamic 0.99 | int8 0.98
and for classification int8 top-1 agreement >= 95 % on the samples where the source itself is
decisive: its top class leads the runner-up by at least DECISIVE_MARGIN in probability. Where
the source hesitates between two classes (textures, microscopy, a busy scene) its top-1 flips
under any perturbation: fp16, numerically near-exact, agrees on only 98.6 % of the bundled photo
views, and every healthy int8 EfficientNet-Lite0 on 83-86 %, while on the decisive views healthy
int8 artifacts agree on 100 % and broken ones (int16 saturation on non-VNNI CPUs) on 80-90 %.
Agreement over all samples is reported beside it. A failed gate fails the command.

Why groups: one cosine over a whole output is dominated by its largest values. A YOLO-style head
[1, 4 + C, N] with boxes in pixels (0..320) and scores in 0..1 kept cosine 0.9999 in int8 while
every score had collapsed to one of two values (issue 13). So each group of values that share a
meaning (a row of [1, C, N], a column of [1, N, C], a channel of a feature map) is gated on its
own, and an int8 output whose quantization step is coarser than the spread of a group it carries
fails outright: that group is lost, whatever the cosine says.

Detection models also get detection-level parity (boxes decoded with frames.py on both sides,
matched by class and IoU; recall, precision and score error gated), and segmentation models mask
IoU on the pixels where the source is decisive.
"""
from __future__ import annotations

import numpy as np

from typing import Callable

from .manifest import DetectionParity, MaskParity, OutputParity, StepParity, VerifyReport

GATES = {
    "fp32": {"cosine": 0.9999, "detection_recall": 0.95, "detection_score_error": 0.01, "mask_iou": 0.99},
    "fp16": {"cosine": 0.999, "detection_recall": 0.95, "detection_score_error": 0.02, "mask_iou": 0.98},
    "dynamic": {"cosine": 0.99, "detection_recall": 0.9, "detection_score_error": 0.05, "mask_iou": 0.95},
    "int8": {"cosine": 0.98, "top1_agreement_decisive": 0.95, "detection_recall": 0.9,
             "detection_score_error": 0.1, "mask_iou": 0.9},
}
DECISIVE_MARGIN = 0.10   # probability by which the source's top class must lead for top-1 to count
DETECTION_IOU = 0.5      # a box matches one of the other side's boxes of its class at this IoU
SCORE_MARGIN = 0.10      # clear boxes score this much above the threshold; matches may score this much below
MIN_DECISIVE_PIXELS = 64  # fewer decisive pixels than this: mask IoU reported, not gated


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


def group_axis(shape: tuple[int, ...], layout: str | None = None) -> int | None:
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


GROUP_NAMES = {2: ("row", "column"), 3: ("channel", "channel", "channel")}


def compare(name: str, reference: np.ndarray, candidate: np.ndarray, classification: bool,
            layout: str | None = None, step: float | None = None) -> OutputParity:
    """Parity of one output over N samples: REFERENCE (the source's) and CANDIDATE (the
    artifact's, already `align`ed), both float [N, ...] in the model's own units.

    cosine: per-sample cosine similarity of the flattened outputs, averaged (two all-zero rows
    count 1.0); max/mean absolute error over every element. Channel groups (`group_axis`, the
    source's LAYOUT): the same cosine per group, the worst one reported with its value range;
    groups whose source values are constant are left out (nothing to compare a direction of).
    STEP: the artifact output's int8 quantization step in real units, if declared; else, for an
    int8 output, the step seen in its values (`observed_step`). With CLASSIFICATION ([N, classes]
    scores or logits): top-1 agreement over all samples, and over the decisive ones, where the
    source's top class leads the runner-up by DECISIVE_MARGIN in probability (softmax of logits).
    """
    ref = reference.reshape(len(reference), -1).astype(np.float64)
    cand = candidate.reshape(len(candidate), -1).astype(np.float64)
    error = np.abs(ref - cand)
    parity = OutputParity(name=name, cosine=float(_cosines(ref, cand).mean()), max_abs_error=float(error.max()),
                          mean_abs_error=float(error.mean()), quantization_step=step)
    axis = None if classification else group_axis(reference.shape, layout)
    if axis is not None:
        groups_ref = np.moveaxis(reference, axis, 1).astype(np.float64)
        groups_cand = np.moveaxis(candidate, axis, 1).astype(np.float64)
        count = groups_ref.shape[1]
        ranks = [a for a in range(1, reference.ndim) if reference.shape[a] > 1]
        parity.group_axis, parity.groups = axis, count
        parity.group_name = GROUP_NAMES[len(ranks)][ranks.index(axis)]
        worst = narrowest = None
        for index in range(count):
            g_ref = groups_ref[:, index].reshape(len(reference), -1)
            g_cand = groups_cand[:, index].reshape(len(candidate), -1)
            if g_ref.max() == g_ref.min():
                continue
            cosine = float(_cosines(g_ref, g_cand).mean())
            value_range = [float(g_ref.min()), float(g_ref.max())]
            if worst is None or cosine < worst[1]:
                worst = (index, cosine, value_range)
            if narrowest is None or value_range[1] - value_range[0] < narrowest[1][1] - narrowest[1][0]:
                narrowest = (index, value_range)
        if worst is not None:
            parity.worst_group, parity.worst_group_cosine, parity.worst_group_range = worst
            parity.narrowest_group, parity.narrowest_group_range = narrowest
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


def _cosines(ref: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """Cosine of each row pair of two float64 [N, K] arrays; two all-zero rows count 1.0."""
    dots = (ref * cand).sum(axis=1)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1)
    return np.where(norms > 0, dots / np.maximum(norms, 1e-30), np.where(np.abs(ref - cand).max(axis=1) == 0, 1.0, 0.0))


def observed_step(values: np.ndarray, levels: int = 256) -> float | None:
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


def coarse_step_problem(parity: OutputParity) -> str | None:
    """One line when PARITY's int8 quantization step is coarser than the spread of its worst group's
    source values: that group is carried by one or two int8 levels, its information lost."""
    if parity.quantization_step is None or parity.narrowest_group_range is None:
        return None
    low, high = parity.narrowest_group_range
    if parity.quantization_step <= high - low:
        return None
    return (f"output {parity.name}: its int8 quantization step {parity.quantization_step:.3g} is coarser than the "
            f"spread of its {parity.group_name} {parity.narrowest_group} (source values {low:.3g}..{high:.3g}), so "
            f"int8 cannot carry it: one tensor mixes value ranges. split the outputs, or normalize boxes to 0..1 as "
            f"the YOLO exporters do, then quantize again")


def _probabilities(scores: np.ndarray) -> np.ndarray:
    """Rows that already are probabilities stay; logits go through a softmax."""
    if (scores >= 0).all() and np.allclose(scores.sum(axis=1), 1.0, atol=1e-3):
        return scores
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def gate(report: VerifyReport, precision: str, classification: bool) -> VerifyReport:
    """Apply PRECISION's GATES to REPORT's outputs (top-1 only for CLASSIFICATION), channel groups,
    int8 quantization steps, and detection and mask parity where the report has them: sets `gate`,
    `status` ("pass" or "fail") and a note per failure; returns REPORT."""
    limits = dict(GATES.get(precision, GATES["int8"]))
    if not classification:
        limits.pop("top1_agreement_decisive", None)
    if report.detection is None:
        limits.pop("detection_recall", None)
        limits.pop("detection_score_error", None)
    if report.mask is None:
        limits.pop("mask_iou", None)
    report.gate = limits
    failed, notes = [], []
    # TFLite_Detection_PostProcess outputs are detections sorted by score: two near-equal scores
    # swap places under any rounding, so they are compared as boxes (detection parity), not cell by cell
    sorted_detections = report.detection is not None and report.detection.format == "tflite-postprocess"
    if sorted_detections:
        limits.pop("cosine")
        notes.append("outputs of TFLite_Detection_PostProcess (detections sorted by score) are gated as matched "
                      "boxes, not element by element")
    for out in report.outputs:
        if sorted_detections:
            continue
        if out.cosine < limits["cosine"]:
            failed.append(f"{out.name}: cosine {out.cosine:.5f} < {limits['cosine']}")
        elif out.worst_group_cosine is not None and out.worst_group_cosine < limits["cosine"]:
            low, high = out.worst_group_range
            failed.append(f"{out.name}: {out.describe_worst_group()} (source values {low:.3g}..{high:.3g}) cosine "
                          f"{out.worst_group_cosine:.5f} < {limits['cosine']}, although the whole output scores "
                          f"{out.cosine:.5f}")
        coarse = coarse_step_problem(out)
        if coarse:
            failed.insert(0, coarse)   # the cause first: it says what to do
        if "top1_agreement_decisive" not in limits or out.top1_agreement is None:
            continue
        limit = limits["top1_agreement_decisive"]
        if out.top1_agreement_decisive is None:
            notes.append(f"{out.name}: top-1 not gated: the source leads by {DECISIVE_MARGIN:.2f} on no sample")
        elif out.top1_agreement_decisive < limit:
            failed.append(f"{out.name}: top-1 agreement {out.top1_agreement_decisive:.1%} < {limit:.0%} on the "
                          f"{out.decisive_samples} samples where the source is decisive")
    failed += _detection_failures(report.detection, limits, notes)
    failed += _mask_failures(report.mask, limits, notes)
    report.status = "fail" if failed else "pass"
    report.notes.extend(failed + notes)
    return report


def _detection_failures(detection: DetectionParity | None, limits: dict, notes: list[str]) -> list[str]:
    if detection is None:
        return []
    if detection.recall is None and detection.precision is None:
        notes.append(f"detection parity not gated: no box scored above {detection.score_threshold + SCORE_MARGIN:.2f} "
                     f"on either side over {detection.samples} samples")
        return []
    failed = []
    limit = limits["detection_recall"]
    for what, value, count, side in (("recall", detection.recall, detection.source_boxes, "source"),
                                     ("precision", detection.precision, detection.artifact_boxes, "artifact")):
        if value is not None and value < limit:
            failed.append(f"detections: {what} {value:.1%} < {limit:.0%} (of {count} clear {side} boxes, matched by "
                          f"class and IoU >= {DETECTION_IOU})")
    if detection.score_error is not None and detection.score_error > limits["detection_score_error"]:
        failed.append(f"detections: mean score error {detection.score_error:.3f} > {limits['detection_score_error']} "
                      "on matched boxes")
    return failed


def _mask_failures(mask: MaskParity | None, limits: dict, notes: list[str]) -> list[str]:
    if mask is None:
        return []
    if mask.mean_iou is None or mask.decisive_pixels < MIN_DECISIVE_PIXELS:
        notes.append(f"mask IoU not gated: the source is decisive on {mask.decisive_pixels} pixels")
        return []
    if mask.mean_iou < limits["mask_iou"]:
        return [f"mask: mean IoU {mask.mean_iou:.3f} < {limits['mask_iou']} on the {mask.decisive_pixels} pixels "
                "where the source is decisive"]
    return []


def match_outputs(expected: list[np.ndarray], got: list[np.ndarray], names: list[str],
                  classification: bool, layout: str | None = None,
                  steps: list[float | None] | None = None) -> tuple[list[OutputParity], str | None]:
    """Pair each source output with the artifact output that agrees with it best.

    Converters may reorder outputs (TFLite does for multi-output detectors): each source output
    takes the remaining output of a compatible shape (see `align`) with the highest cosine.
    LAYOUT: the source's input layout (channel groups of feature maps, see `group_axis`); STEPS:
    each artifact output's declared int8 quantization step (None where float or unknown).
    Returns the parities in source order, or ([], why) when the outputs cannot be paired.
    """
    pairs, problem = pair_outputs(expected, got, names, classification, layout, steps)
    return [parity for parity, _ in pairs], problem


def pair_outputs(expected: list[np.ndarray], got: list[np.ndarray], names: list[str], classification: bool,
                 layout: str | None = None, steps: list[float | None] | None = None
                 ) -> tuple[list[tuple[OutputParity, np.ndarray]], str | None]:
    """match_outputs, with each artifact output aligned to its source output's shape."""
    if len(got) != len(expected):
        return [], f"{len(got)} outputs, the source has {len(expected)}"
    steps = steps or [None] * len(got)
    results = []
    unmatched = list(range(len(got)))
    for position, ref in enumerate(expected):
        options = [(j, aligned) for j in unmatched if (aligned := align(ref, got[j])) is not None]
        if not options:
            return [], f"output {position} of the source (shape {ref.shape}) matches no artifact output shape"
        parities = [(compare(names[j], ref, aligned, classification, layout, steps[j]), j, aligned)
                    for j, aligned in options]
        best, j, aligned = max(parities, key=lambda item: (item[0].cosine, item[1] == position))
        unmatched.remove(j)
        results.append((best, aligned))
    return results, None


def parity(expected: list[np.ndarray], got: list[np.ndarray], names: list[str], task: str, precision: str,
           layout: str | None, steps: list[float | None], source_names: list[str], input_size: list[int],
           labels: list[str] | None = None) -> tuple[list[OutputParity], DetectionParity | None,
                                                     MaskParity | None, str | None]:
    """Everything verify compares between an artifact and its source on the verify samples.

    EXPECTED: the source's outputs, each float [N, ...]; GOT: the artifact's, in its own order, named
    NAMES, with declared int8 STEPS (None where float). For int8 the step of an output without one is
    read off its values (`observed_step`). TASK detection adds DetectionParity, segmentation
    MaskParity (SOURCE_NAMES and INPUT_SIZE [height, width] feed the frames.py decoders).
    Returns (outputs in source order, detection, mask, problem: why outputs could not be paired)."""
    if precision == "int8":
        steps = [step if step is not None else observed_step(values) for step, values in zip(steps, got)]
    pairs, problem = pair_outputs(expected, got, names, task == "classification", layout, steps)
    if problem:
        return [], None, None, problem
    aligned = [a for _, a in pairs]
    detection = mask = None
    if task == "detection":
        detection = detection_parity(expected, aligned, source_names, input_size, labels or [])
    elif task == "segmentation":
        mask = mask_parity(expected[0], aligned[0], layout)
    return [p for p, _ in pairs], detection, mask, None


def detection_parity(expected: list[np.ndarray], got: list[np.ndarray], names: list[str], input_size: list[int],
                     labels: list[str], threshold: float = 0.25) -> DetectionParity | None:
    """Decode both sides' outputs (each [N, ...] in source order, names NAMES) into boxes per
    sample with frames.decode_detections, then match clear boxes by class and IoU (see
    DetectionParity). None when the outputs fit no detection format frames.py reads."""
    from .frames import DecodeSpec, FrameError, FrameMeta, decode_detections, detection_format, iou

    fmt = detection_format([[1, *o.shape[1:]] for o in expected])
    if fmt is None:
        return None
    size = (int(input_size[0]), int(input_size[1]))
    meta = FrameMeta((1 << 30, 1 << 30), size)   # model-input pixels, unclipped: boxes past the edge still compare
    samples = len(expected[0])
    totals = {"source": 0, "artifact": 0, "found": 0, "kept": 0}
    ious, score_errors = [], []

    def boxes(outputs, index, floor):
        spec = DecodeSpec(task="detection", labels=labels, score_threshold=floor, detection_format=fmt,
                          output_names=list(names), max_detections=100)
        found = decode_detections([o[index:index + 1] for o in outputs], meta, spec).detections
        return [(np.array(d.box, np.float32), d.index, d.score) for d in found]

    try:
        for index in range(samples):
            loose = {side: boxes(outputs, index, max(threshold - SCORE_MARGIN, 0.0))
                     for side, outputs in (("source", expected), ("artifact", got))}
            for side, other in (("source", "artifact"), ("artifact", "source")):
                clear = [b for b in loose[side] if b[2] >= threshold + SCORE_MARGIN]
                totals[side] += len(clear)
                free = list(loose[other])
                for box, cls, score in sorted(clear, key=lambda b: -b[2]):
                    same = [k for k, o in enumerate(free) if o[1] == cls]
                    if not same:
                        continue
                    others = np.stack([free[k][0] for k in same])
                    # equal boxes match even when degenerate (zero area, where IoU is 0/0)
                    overlaps = np.where(np.abs(others - box).max(axis=1) <= 1e-3, 1.0, iou(box, others))
                    best = int(np.argmax(overlaps))
                    if overlaps[best] < DETECTION_IOU:
                        continue
                    match = free.pop(same[best])
                    totals["found" if side == "source" else "kept"] += 1
                    if side == "source":
                        ious.append(float(overlaps[best]))
                        score_errors.append(abs(score - match[2]))
    except FrameError:
        return None
    return DetectionParity(
        samples=samples, source_boxes=totals["source"], artifact_boxes=totals["artifact"],
        recall=totals["found"] / totals["source"] if totals["source"] else None,
        precision=totals["kept"] / totals["artifact"] if totals["artifact"] else None,
        mean_iou=float(np.mean(ious)) if ious else None,
        score_error=float(np.mean(score_errors)) if score_errors else None,
        score_threshold=threshold, format=fmt)


def mask_parity(expected: np.ndarray, got: np.ndarray, layout: str | None) -> MaskParity | None:
    """Class maps of both sides (frames.class_map, per sample of [N, ...]) compared on the pixels
    where the source's top class leads the runner-up by DECISIVE_MARGIN in probability (all
    pixels of an output that holds class ids). None when the output is no class map."""
    from .frames import DecodeSpec, FrameError, class_map, softmax

    spec = DecodeSpec(task="segmentation", layout=layout)
    inter: dict[int, int] = {}
    union: dict[int, int] = {}
    decisive_total = agree_total = 0
    try:
        for index in range(len(expected)):
            ref_map = class_map(expected[index:index + 1], spec)
            got_map = class_map(got[index:index + 1], spec)
            if ref_map.shape != got_map.shape:
                return None
            scores = np.asarray(expected[index])
            if scores.ndim == 3 and min(scores.shape[0], scores.shape[2]) > 1:
                channels_first = scores.shape[:2] != ref_map.shape
                probs = softmax(scores, axis=0 if channels_first else 2)
                top2 = np.sort(probs, axis=0 if channels_first else 2)
                top2 = top2[-2:] if channels_first else np.moveaxis(top2[..., -2:], 2, 0)
                decisive = top2[1] - top2[0] >= DECISIVE_MARGIN
            else:
                decisive = np.ones(ref_map.shape, bool)
            ref_d, got_d = ref_map[decisive], got_map[decisive]
            decisive_total += int(decisive.sum())
            agree_total += int((ref_d == got_d).sum())
            for cls in np.union1d(ref_d, got_d):
                a, b = ref_d == cls, got_d == cls
                inter[int(cls)] = inter.get(int(cls), 0) + int((a & b).sum())
                union[int(cls)] = union.get(int(cls), 0) + int((a | b).sum())
    except (FrameError, ValueError, IndexError):
        return None
    ious = [inter[c] / union[c] for c in union if union[c]]
    return MaskParity(samples=len(expected), decisive_pixels=decisive_total,
                      mean_iou=float(np.mean(ious)) if ious else None,
                      pixel_agreement=agree_total / decisive_total if decisive_total else None)


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
    worst = min(parity.outputs, key=lambda o: o.gated_cosine, default=None)
    if problem:
        parity.status, parity.notes = "fail", [problem]
    elif parity.cosine < limit:
        parity.status = "fail"
        parity.notes.append(f"cosine {parity.cosine:.6f} < {limit} against the source")
    elif worst is not None and worst.gated_cosine < limit:
        parity.status = "fail"
        parity.notes.append(f"{worst.name} {worst.describe_worst_group()}: cosine {worst.gated_cosine:.6f} < {limit} "
                            "against the source")
    return parity
