"""Parity between an artifact and its source on the same real inputs: typed reports and gates.

The arithmetic (cosine per output and per channel group, the int8 step against each group's
spread, top-1 on decisive samples, output pairing, the GATES per precision and why) lives in
edgekit/parity.py, numpy-only, which the deploy bundle carries to boards, so a board gates per
group exactly as the host does. This module turns it into manifest records (OutputParity,
VerifyReport, StepParity) and adds what needs frames.py's decoders, so runs on the host only:
detection-level parity (boxes decoded on both sides, matched by class and IoU; recall, precision
and score error gated) and, for segmentation, mask IoU on the pixels where the source is
decisive. A failed gate fails the command.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Callable

import numpy as np

from . import parity as arithmetic   # `parity` below is this module's entry point
from .manifest import DetectionParity, MaskParity, OutputParity, StepParity, VerifyReport
from .parity import (DECISIVE_MARGIN, GATES, GROUP_NAMES, align, group_axis,  # noqa: F401  (their home: parity.py,
                     observed_step)                                            # vendored onto boards)

DETECTION_IOU = 0.5      # a box matches one of the other side's boxes of its class at this IoU
SCORE_MARGIN = 0.10      # clear boxes score this much above the threshold; matches may score this much below
MIN_DECISIVE_PIXELS = 64  # fewer decisive pixels than this: mask IoU reported, not gated
# Below these counts one sample moves a figure by more than 6 % (1/16) or a top-1 rate by 12.5 %
# (1/8): the gate still runs, but the user is told how little it rests on.
MIN_SAMPLES = 16
MIN_DECISIVE = 8


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
    The arithmetic is parity.output_parity's.
    """
    return OutputParity(**arithmetic.output_parity(name, reference, candidate, classification, layout, step))


def coarse_step_problem(out: OutputParity) -> str | None:
    """One line when OUT's int8 quantization step is coarser than the spread of its narrowest
    group's source values (parity.coarse_step_problem)."""
    return arithmetic.coarse_step_problem(asdict(out))


def gate(report: VerifyReport, precision: str, classification: bool) -> VerifyReport:
    """Apply PRECISION's GATES to REPORT's outputs (top-1 only for CLASSIFICATION), channel groups,
    int8 quantization steps (parity.gate_failures), and detection and mask parity where the report
    has them: sets `gate`, `status` ("pass" or "fail") and a note per failure; returns REPORT."""
    limits = arithmetic.gate_limits(precision, classification, report.detection is not None, report.mask is not None)
    report.gate = limits
    notes: list[str] = []
    # TFLite_Detection_PostProcess outputs are detections sorted by score: two near-equal scores
    # swap places under any rounding, so they are compared as boxes (detection parity), not cell by cell
    if report.detection is not None and report.detection.format == "tflite-postprocess":
        limits.pop("cosine")
        notes.append("outputs of TFLite_Detection_PostProcess (detections sorted by score) are gated as matched "
                     "boxes, not element by element")
    gated = [] if "cosine" not in limits else [asdict(o) for o in report.outputs]
    failed, output_notes = arithmetic.gate_failures(gated, limits)
    notes += output_notes
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


def few_samples(report: VerifyReport, classification: bool) -> list[str]:
    """Warnings for a verdict resting on fewer than MIN_SAMPLES samples, or (classification) a
    top-1 agreement resting on fewer than MIN_DECISIVE decisive ones; each says the count used."""
    warnings = []
    if report.samples < MIN_SAMPLES:
        warnings.append(f"verified on only {report.samples} samples (fewer than {MIN_SAMPLES}): the parity figures "
                        "are rough; give --verify-data (or --calib) more images")
    decisive = report.decisive_samples
    # none decisive: gate() already says top-1 is not gated
    if classification and report.top1_agreement is not None and decisive and decisive < MIN_DECISIVE:
        warnings.append(f"top-1 agreement rests on only {decisive} decisive samples (fewer than {MIN_DECISIVE}; the "
                        f"source leads by {DECISIVE_MARGIN:.2f} on those): give more or clearer images")
    return warnings


def constant_outputs(expected: list[np.ndarray], names: list[str]) -> list[str]:
    """Warnings for source outputs (EXPECTED, each [N, ...] over N >= 2 verify samples, named
    NAMES) that are the same for every sample: parity then compares one vector, and an artifact
    that ignores its input (wrong preprocessing, a dead branch) passes every gate. A constant
    single value beside outputs that vary is left alone: an SSD's detection count is the maximum
    on every photo, and the boxes beside it are what tells artifacts apart."""
    warnings = []
    arrays = [np.asarray(output, np.float64).reshape(len(output), -1) for output in expected]
    constant = [len(v) >= 2 and float(np.ptp(v, axis=0).max()) <= 1e-6 * max(float(np.abs(v).max()), 1e-12)
                for v in arrays]
    constant = [same and not isinstance(output, arithmetic.RunTimeRows) for same, output in zip(constant, expected)]
    for name, values, same in zip(names, arrays, constant):
        if same and (all(constant) or values.shape[1] > 1):
            warnings.append(f"the source's output '{name}' is the same for all {len(values)} verify samples: parity "
                            "cannot tell a broken artifact from a good one here; check the preprocessing, or give "
                            "--verify-data inputs the model tells apart")
    return warnings


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
    return [out for out, _ in pairs], problem


def pair_outputs(expected: list[np.ndarray], got: list[np.ndarray], names: list[str], classification: bool,
                 layout: str | None = None, steps: list[float | None] | None = None
                 ) -> tuple[list[tuple[OutputParity, np.ndarray]], str | None]:
    """match_outputs, with each artifact output aligned to its source output's shape."""
    pairs, problem = arithmetic.pair_outputs(expected, got, names, classification, layout, steps)
    return [(OutputParity(**out), aligned) for out, aligned in pairs], problem


def parity(expected: list[np.ndarray], got: list[np.ndarray], names: list[str], task: str, precision: str,
           layout: str | None, steps: list[float | None], source_names: list[str], input_size: list[int] | None,
           labels: list[str] | None = None) -> tuple[list[OutputParity], DetectionParity | None,
                                                     MaskParity | None, str | None]:
    """Everything verify compares between an artifact and its source on the verify samples.

    EXPECTED: the source's outputs, each float [N, ...]; GOT: the artifact's, in its own order, named
    NAMES, with declared int8 STEPS (None where float). For int8 the step of an output without one is
    read off its values (`observed_step`). TASK detection adds DetectionParity, segmentation
    MaskParity (SOURCE_NAMES and INPUT_SIZE [height, width] of the image input feed the frames.py
    decoders; None, a model without an image input: no detection parity).
    Returns (outputs in source order, detection, mask, problem: why outputs could not be paired)."""
    steps = arithmetic.int8_steps(precision, steps, got)
    pairs, problem = pair_outputs(expected, got, names, task == "classification", layout, steps)
    if problem:
        return [], None, None, problem
    aligned = [a for _, a in pairs]
    detection = mask = None
    if task == "detection" and input_size is not None:
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
    result = StepParity(step=step, runtime=runtime, status="pass", samples=len(inputs))
    try:
        batches = [[np.asarray(o) for o in run(sample[None])] for sample in inputs]
    except Exception as exc:  # an upstream runtime: its own message says what broke
        result.status = "fail"
        result.notes.append(f"{runtime} could not run it: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                            if str(exc) else f"{runtime} could not run it: {type(exc).__name__}")
        return result
    got = arithmetic.stack_samples(batches)
    names = names or [f"output_{i}" for i in range(len(got))]
    result.outputs, problem = match_outputs(expected, got, names, classification)
    limit = GATES["fp32"]["cosine"]
    worst = min(result.outputs, key=lambda o: o.gated_cosine, default=None)
    if problem:
        result.status, result.notes = "fail", [problem]
    elif result.cosine < limit:
        result.status = "fail"
        result.notes.append(f"cosine {result.cosine:.6f} < {limit} against the source")
    elif worst is not None and worst.gated_cosine < limit:
        result.status = "fail"
        result.notes.append(f"{worst.name} {worst.describe_worst_group()}: cosine {worst.gated_cosine:.6f} < {limit} "
                            "against the source")
    else:   # the intermediate must compute the source's arithmetic, as an fp32 artifact does
        failed, _ = arithmetic.gate_failures([asdict(o) for o in result.outputs],
                                             {"relative_error": GATES["fp32"]["relative_error"]})
        if failed:
            result.status, result.notes = "fail", failed[:1]
    return result
