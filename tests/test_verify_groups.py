"""Verify cannot be fooled by pooling (issue 13 §4): gates per output and per channel group, the
int8 step against each group's spread, detection parity and mask IoU; and a float SSD's
TFLite_Detection_PostProcess cut off and spliced back unchanged.

The unit tests build outputs the way runtimes return them; the model tests compare the raw
runtime (LiteRT) with the source framework (Keras) with np.testing.assert_allclose and the field
oracle's per-channel tolerance, never with edgekit's own report.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from edgekit.manifest import Manifest, Preprocess, VerifyReport
from edgekit.parity import stack_samples
from edgekit.verify import (compare, detection_parity, gate, group_axis, mask_parity, observed_step, pair_outputs,
                            parity)

RNG = np.random.default_rng(13)
N = 8


def _yolo_head(scores_low=0.4, scores_high=0.6) -> np.ndarray:
    """[N, 4 + 3, 16]: boxes cx, cy, w, h in pixels of a 320 px input, then 3 class scores."""
    boxes = RNG.uniform(20, 300, (N, 4, 16))
    boxes[:, 2:] = RNG.uniform(20, 80, (N, 2, 16))
    scores = RNG.uniform(scores_low, scores_high, (N, 3, 16))
    return np.concatenate([boxes, scores], axis=1).astype(np.float32)


def _quantized(values: np.ndarray, step: float) -> np.ndarray:
    """VALUES through one int8 tensor of STEP real units per level (zero point 0), as a runtime returns it."""
    return (np.clip(np.round(values / step), 0, 255) * step).astype(np.float32)


@pytest.mark.parametrize("shape, layout, axis", [
    ((N, 7, 8400), None, 1),          # YOLOv8 [1, 4 + C, anchors]: rows
    ((N, 8400, 85), None, 2),         # YOLOv5 [1, anchors, 5 + C]: columns
    ((N, 1917, 4), None, 2),          # SSD boxes: the 4 coordinates
    ((N, 1000), None, None),          # class scores: one group
    ((N, 1, 1, 1000), "NCHW", None),  # a conv head's [1, 1000, 1, 1] squeezed is still one vector
    ((N, 32, 32, 21), "NHWC", 3),     # per-pixel class scores, channels last
    ((N, 21, 32, 32), "NCHW", 1),     # ... and first
    ((N, 64, 64), None, None),        # a square map (depth, one mask): one group
])
def test_group_axis_rule(shape, layout, axis):
    assert group_axis(shape, layout) == axis


def test_collapsed_scores_fail_although_the_pooled_cosine_is_0_9999():
    """The YOLO-style head of issue 13: boxes in pixels dominate the pooled cosine, so scores
    collapsed to int8 levels 1.25 apart (the step a 0..320 range gets) still scored 0.9999."""
    source = _yolo_head()
    step = 320 / 255
    artifact = _quantized(source, step)
    out = compare("output0", source, artifact, classification=False, step=step)
    assert out.cosine > 0.9999                               # what the old gate looked at
    assert (out.group_axis, out.group_name) == (1, "row")
    assert out.worst_group in (4, 5, 6) and out.worst_group_cosine < 0.98
    report = gate(VerifyReport(status="pass", outputs=[out]), "int8", classification=False)
    assert report.status == "fail"
    assert re.search(r"^output output0: its int8 quantization step 1\.25 is coarser than the spread of its row [456] "
                     r"\(source values 0\.4\d*\.\.0\.\d+\), so int8 cannot carry it.*split the outputs, or normalize "
                     r"boxes to 0\.\.1 as the YOLO exporters do", report.notes[0]), report.notes
    assert any(re.search(r"output0: row [456] \(source values .*\) cosine 0\.\d+ < 0\.98, although the whole output "
                         r"scores 0\.9999", n) for n in report.notes), report.notes
    summary = report.summary()["worst_group"]
    assert summary["output"] == "output0" and summary["group"].startswith("row ")


def test_a_collapse_to_one_level_is_caught_by_the_step_even_where_the_cosine_stays_high():
    """Positive scores all rounded to one level keep a high cosine (their direction barely
    changes); the step coarser than their spread still fails them (ONNX Runtime's QDQ did this)."""
    source = _yolo_head(0.45, 0.55)
    artifact = source.copy()
    artifact[:, 4:] = 0.809                                 # every score on one int8 level
    artifact[:, :4] = np.round(artifact[:, :4] / 0.809) * 0.809
    out = compare("out", source, artifact, classification=False, step=observed_step(artifact))
    assert out.quantization_step == pytest.approx(0.809, rel=1e-3)
    assert out.worst_group_cosine > 0.98                     # cosine alone would pass it
    report = gate(VerifyReport(status="pass", outputs=[out]), "int8", classification=False)
    assert report.status == "fail" and "quantization step 0.809 is coarser than the spread" in report.notes[0]


def test_healthy_int8_outputs_pass_their_group_gates():
    """A classifier (one group: never split per class) and per-pixel class scores whose int8
    error is a step or less: no group fails, so healthy int8 models keep passing."""
    logits = RNG.normal(0, 3, (N, 1000)).astype(np.float32)
    step = float(logits.max() - logits.min()) / 255
    classifier = compare("logits", logits, _quantized(logits - logits.min(), step) + logits.min(),
                         classification=True, step=step)
    assert classifier.group_axis is None and classifier.worst_group is None
    seg = RNG.normal(0, 4, (N, 16, 16, 4)).astype(np.float32)
    seg_step = float(seg.max() - seg.min()) / 255
    noisy = seg + RNG.uniform(-seg_step / 2, seg_step / 2, seg.shape).astype(np.float32)
    segmentation = compare("masks", seg, noisy, classification=False, layout="NHWC", step=seg_step)
    assert segmentation.group_axis == 3 and segmentation.worst_group_cosine > 0.999
    report = gate(VerifyReport(status="pass", outputs=[classifier, segmentation]), "int8", classification=False)
    assert report.status == "pass", report.notes


def _upsampled_map(border_error: float) -> tuple[np.ndarray, np.ndarray]:
    """A [N, 32, 32, 3] feature map and the same map with its corner pixels off by BORDER_ERROR
    of each channel's range: what OpenVINO made of TensorFlow's bicubic resize."""
    source = RNG.normal(0, 1, (N, 32, 32, 3)).astype(np.float32)
    artifact = source.copy()
    scale = source.max(axis=(0, 1, 2)) - source.min(axis=(0, 1, 2))
    for y, x in ((0, 0), (0, -1), (-1, 0), (-1, -1)):
        artifact[:, y, x] += border_error * scale
    return source, artifact


def test_fp32_fails_values_off_by_two_percent_that_the_cosine_passes():
    """keras_bicubic -> OpenVINO fp32 (field corpus): the border pixels 2 % of a channel's scale
    off the source, cosine 0.99999. fp32 computes the source's arithmetic; that is another function."""
    source, artifact = _upsampled_map(0.02)
    out = compare("y", source, artifact, classification=False, layout="NHWC")
    assert out.cosine > 0.9999 and out.worst_group_cosine > 0.9999          # the cosine gate passes it
    assert out.relative_error == pytest.approx(0.02, rel=0.01) and out.relative_error_group in (0, 1, 2)
    report = gate(VerifyReport(status="pass", outputs=[out]), "fp32", classification=False)
    assert report.status == "fail"
    assert re.search(r"^y: channel \d is off the source by 2 % of its scale \(> 0\.1 %\), although cosine 0\.9999\d+ "
                     r"passes", report.notes[0]), report.notes
    # fp16 and int8 are gated by their cosine (their rounding is that large): the same values pass there
    assert gate(VerifyReport(status="pass", outputs=[compare("y", source, artifact, False, "NHWC")]), "fp16",
                classification=False).status == "pass"


def test_fp32_summation_order_and_dead_channels_pass_the_relative_error_gate():
    """Healthy fp32 artifacts differ by float32 rounding (another summation order): far inside
    1e-3 of a group's scale, also in a channel that is all zeros in the source (a dead ReLU)."""
    source, _ = _upsampled_map(0.0)
    source[..., 1] = 0.0
    artifact = source + RNG.normal(0, 1e-6, source.shape).astype(np.float32)
    out = compare("y", source, artifact, classification=False, layout="NHWC")
    assert out.relative_error < 1e-4
    assert gate(VerifyReport(status="pass", outputs=[out]), "fp32", classification=False).status == "pass"
    logits = RNG.normal(0, 3, (N, 1000)).astype(np.float32)   # a classifier: the whole output is one group
    classifier = compare("logits", logits, logits * (1 + 1e-6), classification=True)
    assert classifier.relative_error_group is None and classifier.relative_error < 1e-5
    assert gate(VerifyReport(status="pass", outputs=[classifier]), "fp32", classification=True).status == "pass"


def test_observed_step_finds_the_int8_grid_and_nothing_in_float_values():
    grid = (RNG.integers(0, 200, (N, 7, 16)) * 0.80908203125).astype(np.float32)
    assert observed_step(grid) == pytest.approx(0.80908203125, rel=1e-4)
    assert observed_step(RNG.normal(size=(N, 5)).astype(np.float32)) is None
    assert observed_step(np.zeros((N, 4))) is None            # one level: no step to read


def test_detection_parity_matches_boxes_and_scores():
    source = _yolo_head(0.2, 0.9)
    exact = detection_parity([source], [source.copy()], ["output0"], [320, 320], [])
    assert exact.format == "yolo" and exact.recall == 1.0 and exact.precision == 1.0 and exact.mean_iou == 1.0
    shuffled = source.copy()
    shuffled[:, 4:] = shuffled[:, 4:][:, ::-1]                # classes swapped: same boxes, other labels
    report = VerifyReport(status="pass", detection=detection_parity([source], [shuffled], ["output0"], [320, 320], []))
    gate(report, "int8", classification=False)
    assert report.status == "fail"
    assert any(re.search(r"detections: recall \d+\.\d% < 90% \(of \d+ clear source boxes, matched by class and "
                         r"IoU >= 0\.5\)", n) for n in report.notes), report.notes


def test_mask_iou_on_decisive_pixels():
    logits = np.zeros((2, 16, 16, 3), np.float32)
    logits[:, :, :8, 0] = 5.0                                  # left half class 0, right half class 2
    logits[:, :, 8:, 2] = 5.0
    assert mask_parity(logits, logits.copy(), "NHWC").mean_iou == 1.0
    moved = logits.copy()
    moved[:, :, 4:8, 0], moved[:, :, 4:8, 2] = 0.0, 5.0       # a quarter of the image changes class
    mask = mask_parity(logits, moved, "NHWC")
    assert mask.decisive_pixels == 2 * 16 * 16 and mask.pixel_agreement == 0.75
    report = gate(VerifyReport(status="pass", mask=mask), "int8", classification=False)
    assert report.status == "fail" and re.search(r"mask: mean IoU 0\.\d+ < 0\.9 on the 512 pixels", report.notes[0])


def test_parity_pairs_reordered_outputs_and_records_everything():
    source = _yolo_head(0.2, 0.9)
    outputs, detection, mask, problem = parity([source], [source.copy()], ["o"], "detection", "fp32", "NHWC",
                                               [None], ["output0"], [320, 320])
    assert problem is None and mask is None and detection.recall == 1.0
    pairs, problem = pair_outputs([source, source[:, :1]], [source[:, :1].copy(), source.copy()], ["a", "b"], False)
    assert problem is None and [p.name for p, _ in pairs] == ["b", "a"]
    report = gate(VerifyReport(status="pass", outputs=outputs, detection=detection), "fp32", classification=False)
    manifest = Manifest(artifact="m.tflite", target="tflite", precision="fp32", preprocess=Preprocess(), verify=report)
    again = Manifest.from_dict(manifest.to_dict())
    assert again.verify.detection == detection and again.verify.worst_group.worst_group == outputs[0].worst_group


# ------------------------------------------------------------------ real models, raw runtimes


@pytest.fixture(scope="module")
def yolo_artifacts(tmp_path_factory, photos_dir):
    """keras_yolo_mixed (tests/field) to TFLite fp32 and int8, verified by edgekit."""
    pytest.importorskip("tensorflow")
    from edgekit.convert import ConvertRequest, convert
    from tests.field import models

    folder = tmp_path_factory.mktemp("yolo")
    source = models.keras_yolo_mixed(folder)
    result = convert(str(source), ConvertRequest(targets=["tflite"], precisions=["fp32", "int8"], out_dir=folder / "out",
                                                 calib=str(photos_dir), calib_samples=16, verify_samples=16,
                                                 mean=[127.5], std=[127.5], task="detection"))
    return source, {a.precision: a for a in result.artifacts}, result


def _raw(source, artifact, photos: int = 4):
    """Keras and LiteRT (raw interpreters) on the same real photos: [photos, 7, 16] each, and the
    int8 output's quantization step."""
    import keras
    from ai_edge_litert.interpreter import Interpreter

    from edgekit.photos import photo_set
    from tests.field.oracle import _image

    model = keras.models.load_model(source, compile=False)
    interpreter = Interpreter(model_path=str(artifact))
    interpreter.allocate_tensors()
    (feed,), (fetch,) = interpreter.get_input_details(), interpreter.get_output_details()
    expected, got = [], []
    for _, image in photo_set(photos):
        pixels = _image(image, (32, 32), 3, [127.5], [127.5])[None]
        expected.append(np.asarray(model(pixels, training=False))[0])
        scale, zero = feed["quantization"]
        value = np.clip(np.round(pixels / scale + zero), 0, 255) if feed["dtype"] == np.uint8 else pixels
        interpreter.set_tensor(feed["index"], value.astype(feed["dtype"]))
        interpreter.invoke()
        out = interpreter.get_tensor(fetch["index"]).astype(np.float32)
        scale, zero = fetch["quantization"]
        got.append(((out - zero) * scale if scale else out)[0])
    return np.stack(expected), np.stack(got), fetch["quantization"][0] or None


def test_yolo_mixed_output_int8_fails_verify_and_differs_from_keras(yolo_artifacts):
    from tests.field.oracle import tolerance

    source, artifacts, result = yolo_artifacts
    assert artifacts["fp32"].verify.status == "pass" and artifacts["int8"].verify.status == "fail"
    assert result.exit_code == 1 and [a.precision for a in result.failed] == ["int8"]
    assert re.search(r"its int8 quantization step [\d.]+ is coarser than the spread of its row [456].*split the outputs",
                     artifacts["int8"].verify.notes[0])
    assert artifacts["int8"].verify.cosine > 0.999            # the pooled cosine that used to pass it
    expected, got, _ = _raw(source, artifacts["fp32"].path)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * 320)
    expected, got, step = _raw(source, artifacts["int8"].path)
    # the oracle reads outputs with their batch axis ([photos, 1, 7, 16]): per row, 8 % of its scale or 3 int8 steps
    atol = tolerance(expected[:, None], "int8", step)[:, 0]
    np.testing.assert_allclose(got[:, :4] / atol[:, :4], expected[:, :4] / atol[:, :4], rtol=0, atol=1.0)   # boxes
    with pytest.raises(AssertionError, match="Mismatched elements"):   # the scores are lost
        np.testing.assert_allclose(got[:, 4:] / atol[:, 4:], expected[:, 4:] / atol[:, 4:], rtol=0, atol=1.0)


def test_ssd_postprocess_split_and_splice_keep_the_op_and_its_outputs(tmp_path):
    """The float SSD cut before TFLite_Detection_PostProcess (with the Reshapes feeding it) and the
    tail spliced back onto the float body gives the source's own detections, names and signature."""
    pytest.importorskip("tensorflow")
    from edgekit.tflite_model import parse_tflite
    from edgekit.tflite_postprocess import splice, split
    from tests.field import tflite_variants

    data = tflite_variants.ssd_postprocess()
    tail = split(data)
    body = parse_tflite(tail.body)
    assert "TFLite_Detection_PostProcess" not in body.op_counts() and "RESHAPE" not in body.op_counts()
    assert [t.shape for t in body.outputs()] == [[1, 4, 4, 4], [1, 4, 4, 4]]
    samples = RNG.uniform(-1, 1, (4, 32, 32, 3)).astype(np.float32)
    whole = splice(tail.body, tail, samples)
    model = parse_tflite(whole)
    assert model.op_counts()["TFLite_Detection_PostProcess"] == 1
    assert [t.name for t in model.outputs()] == [t.name for t in parse_tflite(data).outputs()]
    assert model.signature_defs[0].outputs.keys() == parse_tflite(data).signature_defs[0].outputs.keys()
    for sample in samples:
        expected = tflite_variants.litert_run(data, [sample[None]])
        got = tflite_variants.litert_run(whole, [sample[None]])
        for e, g in zip(expected, got):
            np.testing.assert_allclose(g, e, rtol=0, atol=1e-5)
    assert split(tflite_variants.plain()) is None


def test_a_source_whose_output_never_varies_is_named_in_the_verify_notes(tmp_path):
    """A model that ignores its input (here: all-zero kernel, so the output is the bias) passes
    every parity gate, since both sides agree on one vector; verify says so instead of passing
    in silence. Unit: constant_outputs; model: a Keras Dense with zero weights through convert."""
    from edgekit.convert import ConvertRequest, convert
    from edgekit.verify import constant_outputs

    assert constant_outputs([np.tile(np.arange(3, dtype=np.float32), (4, 1))], ["scores"])
    assert not constant_outputs([RNG.normal(size=(4, 3)).astype(np.float32)], ["scores"])
    # an SSD's detection count, the maximum on every photo, beside boxes that vary: no warning
    boxes, count = RNG.uniform(size=(4, 10, 4)).astype(np.float32), np.full((4, 1), 10, np.float32)
    assert not constant_outputs([boxes, count], ["boxes", "count"])
    assert constant_outputs([np.tile(boxes[:1], (4, 1, 1)), count], ["boxes", "count"])   # nothing varies
    keras = pytest.importorskip("keras")
    inputs = keras.Input((16, 16, 3))
    flat = keras.layers.Flatten()(inputs)
    outputs = keras.layers.Dense(4, kernel_initializer="zeros", bias_initializer="ones")(flat)
    path = tmp_path / "constant.keras"
    keras.Model(inputs, outputs).save(path)
    result = convert(str(path), ConvertRequest(targets=["tflite"], precisions=["fp32", "fp16"],
                                               out_dir=tmp_path / "out", mean=[127.5], std=[127.5], verify_samples=8))
    for artifact in result.artifacts:
        notes = artifact.verify.notes
        assert any("is the same for all 8 verify samples" in n for n in notes), notes
    # each artifact's notes are its own: the fp32 one's stay out of the fp16 manifest
    from edgekit.manifest import read_manifest

    fp32, fp16 = (Path(a.path).name for a in result.artifacts)
    assert not any(w.startswith(fp32) for w in read_manifest(Path(result.artifacts[1].path)).warnings)
    assert any(w.startswith(fp32) for w in result.warnings) and any(w.startswith(fp16) for w in result.warnings)


def _nms_samples(counts, seed: int) -> list[np.ndarray]:
    """Per verify sample, ONNX NonMaxSuppression's selected indices [K, 3] (batch 0, class, box),
    K = counts[sample], each sample's rows distinct."""
    rng = np.random.default_rng(seed)
    return [np.stack([np.zeros(k), picks // 16, picks % 16], axis=1).astype(np.int64)
            for k, picks in ((k, rng.choice(2 * 16, k, replace=False)) for k in counts)]


def _stacked(boxes: np.ndarray, selected: list[np.ndarray]) -> list[np.ndarray]:
    """What verify stacks from per-sample runs: boxes [N, 16, 4], then the selected rows."""
    return stack_samples([[boxes[k:k + 1], rows] for k, rows in enumerate(selected)])


def test_nms_indices_of_run_time_size_are_compared_as_rows_of_their_sample():
    """int8 NMS kept one box fewer on one photo: the outputs no longer had one shape (this failed
    as 'matches no artifact output shape', field corpus onnx_nms -> OpenVINO int8). Rows of
    run-time size are compared as multisets within their sample and gated like detection recall."""
    boxes = RNG.uniform(0, 32, (N, 16, 4)).astype(np.float32)
    source = _nms_samples([3] * N, 1)
    one_fewer = [rows if k != 2 else rows[1:] for k, rows in enumerate(source)]
    pairs, problem = pair_outputs(_stacked(boxes, source), _stacked(boxes, one_fewer)[::-1], ["selected", "boxes"],
                                  False)
    assert problem is None
    rows = pairs[1][0]
    assert rows.name == "selected" and rows.row_agreement == pytest.approx(23 / 24)
    report = gate(VerifyReport(status="pass", outputs=[p for p, _ in pairs]), "int8", classification=False)
    assert report.status == "pass", report.notes
    assert "selected: 95.8% of its rows (size set at run time, e.g. NMS) agree with the source's (gated like " \
           "detection recall, not by cosine)" in report.notes
    assert report.cosine == pytest.approx(1.0)    # the headline cosine is the element-wise outputs'


@pytest.mark.parametrize("case", ["another sample's boxes", "same count, other boxes", "most lost", "none kept"])
def test_wrong_nms_rows_fail_whatever_their_count(case):
    """Rows keep their sample: an artifact that keeps, on each photo, the boxes the source kept
    on another photo fails, and so does one with as many rows as the source but other boxes (the
    element-wise cosine of [0, 0, box] rows passed that)."""
    boxes = RNG.uniform(0, 32, (N, 16, 4)).astype(np.float32)
    source = _nms_samples([3] * N, 2)
    artifact = {"another sample's boxes": source[1:] + source[:1],
                "same count, other boxes": [np.stack([r[:, 0], r[:, 1], (r[:, 2] + 5) % 16], axis=1) for r in source],
                "most lost": [rows[:1] for rows in source],
                "none kept": [rows[:0] for rows in source]}[case]
    pairs, problem = pair_outputs(_stacked(boxes, source), _stacked(boxes, artifact), ["boxes", "selected"], False)
    assert problem is None
    report = gate(VerifyReport(status="pass", outputs=[p for p, _ in pairs]), "int8", classification=False)
    assert report.status == "fail" and re.search(r"selected: \d+\.\d% of its rows .* < 90%", report.notes[0]), \
        report.notes


def test_nms_rows_travel_in_the_reference_pack_by_sample(tmp_path):
    """The pack keeps K samples: rows of run-time size are taken by their sample column, not by
    row number (which picked arbitrary rows, or indexed past the inputs)."""
    from edgekit import parity as arithmetic

    boxes = RNG.uniform(0, 32, (N, 16, 4)).astype(np.float32)
    selected = _nms_samples([2, 0, 3, 1, 2, 4, 1, 2], 3)
    stacked = _stacked(boxes, selected)
    chosen = [1, 2, 5]
    arithmetic.write_pack(tmp_path / "p.npz", {"outputs": ["boxes", "selected"]}, [boxes[chosen]],
                          [arithmetic.take_samples(o, chosen) for o in stacked])
    meta, inputs, expected = arithmetic.read_pack(str(tmp_path / "p.npz"))
    assert meta["rows_outputs"] == [1] and isinstance(expected[1], arithmetic.RunTimeRows)
    again = arithmetic.stack_samples([[boxes[k:k + 1], selected[k]] for k in chosen])
    np.testing.assert_array_equal(np.asarray(expected[1]), np.asarray(again[1]))
    results, problem = arithmetic.match(expected, again, ["boxes", "selected"], False)
    assert problem is None and results[1]["row_agreement"] == 1.0


def test_float_rows_of_another_count_stay_unpaired():
    """Float rows (boxes after NMS) are not indices: another count is one line naming the shapes."""
    source = [RNG.uniform(0, 1, (3, 4)).astype(np.float32) for _ in range(N)]
    _, problem = pair_outputs(stack_samples([[s] for s in source]), stack_samples([[s[1:]] for s in source]), ["y"],
                              False)
    assert problem == "output 0 of the source (shape (24, 4)) matches no artifact output shape"
