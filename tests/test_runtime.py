"""Runtime layer: one Runner API over LiteRT, OpenVINO, ONNX Runtime (Core ML: macOS only), the
manifest's pre/postprocessing the same on every backend, and bad input stopped before the runtime.

Detection and segmentation use tiny Keras models with fixed, hand-set weights, so that what they
should find in a picture is known: a WHITE and a RED square on a dark background. They are
converted with edgekit.convert to TFLite (fp32 and int8), OpenVINO IR and ONNX, and every
backend must find the same boxes (IoU >= 0.9) and the same mask, in original-image pixels.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from edgekit.errors import EdgekitError, ModelFormatError
from edgekit.formats import FORMATS
from edgekit.manifest import Preprocess, Quantization, TensorInfo
from edgekit.runtime import BACKENDS, open_runner
from edgekit.runtime.predictor import open_predictor
from edgekit.runtime.results import FrameMeta

SIZE = 64                 # detector input (square)
CELL = 8                  # detector grid: 8 x 8 cells of 8 px
N = (SIZE // CELL) ** 2
ORIGINAL = (96, 128)      # photo height, width: letterboxed to 64 x 64 (scale 0.5, 8 px bars top/bottom)
WHITE = (32, 48, 48, 64)  # square in the original photo: y1, y2, x1, x2 -> model cell (3, 3)
RED = (64, 80, 96, 112)   # -> model cell (5, 6)
LABELS = ["white", "red"]
# artifact suffix -> backend; the ONNX fp32 artifact on ONNX Runtime is the reference
ARTIFACTS = {"_fp32.onnx": "onnxruntime", "_fp32.tflite": "litert", "_int8.tflite": "litert",
             "_fp32.xml": "openvino", "_int8.xml": "openvino", "_int8.onnx": "onnxruntime"}


def scene(seed: int = 0) -> np.ndarray:
    """The test photo: dark noise, a white square and a red square (RGB uint8)."""
    rng = np.random.default_rng(seed)
    image = rng.integers(10, 30, (*ORIGINAL, 3), dtype=np.uint8)
    y1, y2, x1, x2 = WHITE
    image[y1:y2, x1:x2] = 250
    y1, y2, x1, x2 = RED
    image[y1:y2, x1:x2] = (250, 10, 10)
    return image


def _class_scores(keras, x, background: bool):
    """1x1 conv with set weights: 'white' fires on bright pixels, 'red' on red ones."""
    kernel = np.zeros((1, 1, 3, 3 if background else 2), np.float32)
    bias = np.zeros(kernel.shape[-1], np.float32)
    w, r = (1, 2) if background else (0, 1)
    kernel[0, 0, :, w], bias[w] = 20 / 3, -12.0
    kernel[0, 0, :, r], bias[r] = (20.0, -10.0, -10.0), -10.0
    layer = keras.layers.Conv2D(kernel.shape[-1], 1, activation="softmax" if background else "sigmoid")
    out = layer(x)
    layer.set_weights([kernel, bias])
    return out


def _dense_boxes(keras, pooled, bias: np.ndarray, jitter: float):
    """Boxes from a dense layer: the grid in the bias, an image-dependent nudge in the kernel."""
    flat = keras.layers.Flatten()(pooled)
    layer = keras.layers.Dense(bias.size)
    out = layer(flat)
    kernel = np.random.default_rng(1).normal(0, jitter, (flat.shape[-1], bias.size)).astype(np.float32)
    layer.set_weights([kernel, bias.astype(np.float32)])
    return keras.layers.Reshape((N, 4))(out)


def _grid() -> tuple[np.ndarray, np.ndarray]:
    centers = (np.arange(SIZE // CELL) + 0.5) * CELL
    cy, cx = np.meshgrid(centers, centers, indexing="ij")
    return cx.ravel(), cy.ravel()


def yolo_model():
    """[1, N, 4 + 2]: cx, cy, w, h in input pixels, then sigmoid class scores (YOLOv8 style)."""
    import keras

    image = keras.Input((SIZE, SIZE, 3), batch_size=1, name="image")
    pooled = keras.layers.AveragePooling2D(CELL)(image)
    cx, cy = _grid()
    boxes = _dense_boxes(keras, pooled, np.stack([cx, cy, np.full(N, 12.0), np.full(N, 12.0)], 1).ravel(), 0.3)
    scores = keras.layers.Reshape((N, 2))(_class_scores(keras, pooled, background=False))
    return keras.Model(image, keras.layers.Concatenate(axis=-1)([boxes, scores]))


def ssd_model():
    """boxes [1, N, 4] (ymin, xmin, ymax, xmax normalized) and softmax scores [1, N, 1 + 2]."""
    import keras

    image = keras.Input((SIZE, SIZE, 3), batch_size=1, name="image")
    pooled = keras.layers.AveragePooling2D(CELL)(image)
    cx, cy = _grid()
    corners = np.stack([cy - 6, cx - 6, cy + 6, cx + 6], 1) / SIZE
    boxes = _dense_boxes(keras, pooled, corners.ravel(), 0.005)
    scores = keras.layers.Reshape((N, 3))(_class_scores(keras, pooled, background=True))
    return keras.Model(image, [boxes, scores])


def segmentation_model():
    """[1, 16, 16, 3] class logits (background, white, red) at a quarter of the input size."""
    import keras

    image = keras.Input((SIZE, SIZE, 3), batch_size=1, name="image")
    pooled = keras.layers.AveragePooling2D(4)(image)
    return keras.Model(image, _class_scores(keras, pooled, background=True))


MODELS = {"yolo": (yolo_model, "detection", LABELS), "ssd": (ssd_model, "detection", LABELS),
          "seg": (segmentation_model, "segmentation", ["background", *LABELS])}


PRECISIONS = {"yolo": ["fp32"], "ssd": ["fp32", "int8"], "seg": ["fp32"]}


@pytest.fixture(scope="session")
def scenes_dir(tmp_path_factory) -> Path:
    import cv2

    folder = tmp_path_factory.mktemp("scenes")
    for seed in range(8):
        cv2.imwrite(str(folder / f"scene{seed}.png"), scene(seed)[:, :, ::-1])
    return folder


@pytest.fixture(scope="session")
def converted(tmp_path_factory, scenes_dir) -> dict[str, Path]:
    """name -> artifact stem; every model to tflite, openvino and onnx in one convert() call each,
    fp32 (and int8 for the SSD), each verified against Keras on the scenes. Conversion dominates
    this file's run time."""
    pytest.importorskip("tensorflow")
    from edgekit.convert import ConvertRequest, convert

    out = tmp_path_factory.mktemp("runtime_models")
    stems = {}
    for name, (build, task, labels) in MODELS.items():
        path = out / f"{name}.keras"
        build().save(path)
        labels_file = out / f"{name}_labels.txt"
        labels_file.write_text("\n".join(labels) + "\n")
        result = convert(str(path), ConvertRequest(targets=["tflite", "openvino", "onnx"], precisions=PRECISIONS[name],
                                          out_dir=out, calib=str(scenes_dir), verify_data=str(scenes_dir), input_size=[SIZE, SIZE],
                                          mean=[0.0], std=[255.0], resize="letterbox", task=task, labels=labels_file,
                                          name=name))
        stems[name] = out / name
        VERIFIED[name] = result.artifacts
    return stems


VERIFIED: dict[str, list] = {}


def test_multi_output_models_verify_against_the_source(converted):
    """TFLite reorders a detector's outputs; verify pairs them by shape and agreement, not position."""
    for name, artifacts in VERIFIED.items():
        for artifact in artifacts:
            if artifact.precision == "fp32":
                assert artifact.verify.status == "pass", (name, artifact.path, artifact.verify.notes)
                assert len(artifact.verify.outputs) >= (2 if name == "ssd" else 1)


def available(backend: str) -> bool:
    return BACKENDS.get(backend).unavailable_reason() is None


def predictors(stem: Path, **kwargs):
    """(suffix, Predictor) for every artifact of STEM whose backend runs on this host."""
    for suffix, backend in ARTIFACTS.items():
        path = stem.with_name(stem.name + suffix)
        if path.exists() and available(backend):
            yield suffix, open_predictor(path, backend, **kwargs)


def center(box) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def inside(point, square) -> bool:
    y1, y2, x1, x2 = square
    return x1 <= point[0] <= x2 and y1 <= point[1] <= y2


def box_iou(a, b) -> float:
    from edgekit.frames import iou

    return float(iou(np.asarray(a, np.float32), np.asarray([b], np.float32))[0])


# ------------------------------------------------------------------ pure functions

@pytest.mark.parametrize("mode, scale, offset", [("letterbox", (0.5, 0.5), (40.0, 0.0)),
                                                 ("stretch", (320 / 480, 0.5), (0.0, 0.0)),
                                                 ("center-crop", (320 / 480, 320 / 480), (0.0, -80 * 320 / 480))])
def test_known_box_maps_back_through_resize(mode, scale, offset):
    from edgekit.frames import FrameSpec, frame_meta
    from edgekit.frames import boxes_to_original as to_original

    meta = frame_meta((480, 640), FrameSpec.of(Preprocess(input_size=[320, 320], resize=mode)))
    assert meta.scale == pytest.approx(scale, rel=1e-3)  # resize rounds to whole pixels
    assert meta.offset == pytest.approx(offset)
    # a person at x 100..300, y 50..450 of the 640x480 photo, as the model sees it
    original = np.array([[100, 50, 300, 450]], np.float32)
    (sy, sx), (oy, ox) = meta.scale, meta.offset
    model = original * [sx, sy, sx, sy] + [ox, oy, ox, oy]
    if mode == "letterbox":
        assert model[0].tolist() == pytest.approx([50, 65, 150, 265])   # 40 px grey bar on top
    assert to_original(model, meta)[0].tolist() == pytest.approx(original[0].tolist(), abs=1e-3)


def test_letterbox_boxes_are_clipped_to_the_photo():
    from edgekit.frames import boxes_to_original as to_original

    meta = FrameMeta((480, 640), (320, 320), (0.5, 0.5), (40.0, 0.0))
    box = to_original(np.array([[-10, 0, 330, 320]], np.float32), meta)[0]   # reaches into the bars
    assert box.tolist() == pytest.approx([0, 0, 640, 480])


def test_nms_keeps_the_best_box_per_class():
    from edgekit.frames import nms

    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [50, 50, 60, 60]], np.float32)
    keep = nms(boxes, np.array([0.9, 0.8, 0.7, 0.6]), np.array([0, 0, 1, 0]), 0.45, 100)
    assert keep.tolist() == [0, 2, 3]    # box 1 overlaps box 0 (same class); box 2 is another class


def test_segmentation_mask_maps_back_through_letterbox():
    from edgekit.frames import mask_to_original as to_original

    meta = FrameMeta((4, 8), (8, 8), (1.0, 1.0), (2.0, 0.0))   # 4x8 photo in an 8x8 input, 2 rows of bar
    mask = np.zeros((8, 8), np.int32)
    mask[2:6] = np.arange(8)                  # the photo's rows: class = column
    mask[:2] = mask[6:] = 9                   # the bars: never part of the photo
    assert to_original(mask, meta).tolist() == [list(range(8))] * 4


@pytest.mark.parametrize("mean, std, dtype, scale, zero", [
    (127.0, 128.0, "uint8", 1 / 128, 127),      # EfficientNet-Lite: identity
    (127.0, 128.0, "int8", 1 / 128, -1),        # int8 I/O: pixel - 128
    (127.5, 127.5, "uint8", 0.0078125, 128),    # MobileNet-style: a table
    (0.0, 255.0, "int8", 1 / 255, -128),
])
def test_quantized_input_straight_from_pixels_equals_float_path(mean, std, dtype, scale, zero):
    from edgekit.frames import FrameSpec, prepare, preprocess_image
    from edgekit.runtime.base import quantize

    pre = Preprocess(input_size=[48, 64], mean=[mean] * 3, std=[std] * 3)
    model_input = TensorInfo("x", [1, 48, 64, 3], dtype, Quantization([scale], [zero]))
    rgb = np.random.default_rng(3).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    fast, _ = prepare(rgb, FrameSpec.of(pre), dtype, [scale], [zero])
    slow = quantize(preprocess_image(rgb, pre), model_input)
    assert fast.dtype == np.dtype(dtype) and np.array_equal(fast, slow)


# ------------------------------------------------------------------ detection / segmentation, every backend

def detections_by_backend(stem: Path) -> dict[str, list]:
    found = {}
    for suffix, predictor in predictors(stem, score_threshold=0.5):
        with predictor:
            assert predictor.task == "detection"
            found[suffix] = predictor(scene()).detections
    return found


@pytest.mark.slow  # converts three tiny models with edgekit.convert (minutes on a busy machine)
@pytest.mark.parametrize("name", ["yolo", "ssd"])
def test_detection_boxes_agree_across_backends_in_original_pixels(converted, name):
    found = detections_by_backend(converted[name])
    assert "_fp32.onnx" in found and len(found) >= 3 * len(PRECISIONS[name]), f"too few ran: {sorted(found)}"
    reference = found["_fp32.onnx"]
    # one box per square, on the square, in the 128x96 photo's own pixels (letterbox undone)
    assert sorted(d.label for d in reference) == ["red", "white"], reference
    for detection in reference:
        assert inside(center(detection.box), WHITE if detection.label == "white" else RED), detection
        assert all(0 <= v <= max(ORIGINAL) for v in detection.box)
    for suffix, detections in found.items():
        assert len(detections) == len(reference), (suffix, detections)
        for expected in reference:
            best = max((box_iou(expected.box, d.box) for d in detections if d.label == expected.label), default=0)
            assert best >= 0.9, f"{name}{suffix}: {expected.label} box IoU {best:.3f} vs ONNX Runtime fp32"


@pytest.mark.slow  # converts three tiny models with edgekit.convert (minutes on a busy machine)
def test_segmentation_mask_at_original_size_agrees_across_backends(converted):
    masks = {}
    for suffix, predictor in predictors(converted["seg"]):
        with predictor:
            masks[suffix] = predictor(scene()).mask
    assert "_fp32.onnx" in masks and len(masks) >= 3, sorted(masks)
    reference = masks["_fp32.onnx"]
    assert reference.shape == ORIGINAL
    for square, cls in ((WHITE, 1), (RED, 2)):
        y1, y2, x1, x2 = square
        assert (reference[y1 + 2:y2 - 2, x1 + 2:x2 - 2] == cls).all()
        assert (reference == cls).sum() == pytest.approx((y2 - y1) * (x2 - x1), rel=0.3)
    assert reference[:8, :8].max() == 0 and reference[-8:, -8:].max() == 0
    for suffix, mask in masks.items():
        assert mask.shape == ORIGINAL and (mask == reference).mean() >= 0.99, suffix


@pytest.mark.slow  # converts three tiny models with edgekit.convert (minutes on a busy machine)
def test_quantized_artifact_takes_pixels_without_requantizing(converted):
    """An int8 artifact's Predictor makes the uint8 tensor straight from the pixels; the Runner
    passes it through, and the result equals normalizing in float and quantizing in the Runner."""
    from edgekit.frames import preprocess_image

    path = converted["ssd"].with_name("ssd_int8.tflite")
    with open_predictor(path) as predictor:
        batch, meta = predictor.prepare(scene())
        assert batch.dtype == np.uint8 and batch.shape == (1, SIZE, SIZE, 3)
        assert meta.offset == (8.0, 0.0) and meta.scale == (0.5, 0.5)
        float_batch = preprocess_image(scene(), predictor.manifest.preprocess)
        assert float_batch.dtype == np.float32
        # one Runner, switching feeds: it decides pass-through or quantize once per input signature
        direct, requantized = predictor.infer(batch), predictor.runner.infer(float_batch)
        again = predictor.runner.infer(batch)
        assert all(np.array_equal(a, b) and np.array_equal(a, c) for a, b, c in zip(direct, requantized, again))


# ------------------------------------------------------------------ TFLite_Detection_PostProcess

def ssd_postprocess_tflite(path: Path) -> Path:
    """A real SSD head ending in the TFLite_Detection_PostProcess custom op, built the way the TF
    Object Detection API exports it: a tf.function with experimental_implements, which the
    converter legalizes to the op. Box encodings are relative to 8x8 grid anchors."""
    import tensorflow as tf

    g = (np.arange(8) + 0.5) / 8
    yy, xx = np.meshgrid(g, g, indexing="ij")
    anchors = np.stack([yy.ravel(), xx.ravel(), np.full(N, 0.25), np.full(N, 0.25)], 1).astype(np.float32)
    attrs = {"max_detections": "i: 10", "max_classes_per_detection": "i: 1", "use_regular_nms": "b: false",
             "nms_score_threshold": "f: 0.3", "nms_iou_threshold": "f: 0.5", "y_scale": "f: 10.0",
             "x_scale": "f: 10.0", "h_scale": "f: 5.0", "w_scale": "f: 5.0", "num_classes": "i: 2"}
    signature = " ".join(['name: "TFLite_Detection_PostProcess"'] +
                         [f'attr {{ key: "{k}" value {{ {v} }} }}' for k, v in attrs.items()])
    kernel = np.random.default_rng(0).normal(0, 0.05, (1, 1, 3, 4)).astype(np.float32)

    @tf.function(experimental_implements=signature)
    def postprocess(box_encodings, class_predictions, anchors):
        zero = tf.constant(0.0)
        return zero, zero, zero, zero   # the converter replaces this body with the op

    class SSD(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, SIZE, SIZE, 3], tf.float32, name="image")])
        def serve(self, image):
            pooled = tf.nn.avg_pool2d(image, CELL, CELL, "VALID")
            white = tf.sigmoid(20 / 3 * tf.reduce_sum(pooled, -1, keepdims=True) - 12)
            red = tf.sigmoid(pooled[..., :1] * 20 - (pooled[..., 1:2] + pooled[..., 2:]) * 10 - 10)
            classes = tf.reshape(tf.concat([1 - tf.maximum(white, red), white, red], -1), [1, N, 3])
            encodings = tf.reshape(tf.nn.conv2d(pooled, kernel, 1, "SAME"), [1, N, 4])
            return postprocess(encodings, classes, tf.constant(anchors))

    module = SSD()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.serve.get_concrete_function()], module)
    converter.allow_custom_ops = True
    path.write_bytes(converter.convert())
    return path


@pytest.fixture(scope="session")
def ssd_postprocess_file(tmp_path_factory) -> Path:
    pytest.importorskip("tensorflow")
    folder = tmp_path_factory.mktemp("ssd_pp")
    (folder / "labels.txt").write_text("white\nred\n")
    return ssd_postprocess_tflite(folder / "ssd_postprocess.tflite")


def test_tflite_detection_postprocess_op_without_manifest(ssd_postprocess_file):
    from edgekit.tflite_model import read_tflite

    assert "TFLite_Detection_PostProcess" in read_tflite(ssd_postprocess_file).op_counts()
    warnings = []
    white, red = (48, 64, 48, 64), (80, 96, 96, 112)   # 128x128 photo: each square is one 8x8 cell at 64x64
    image = np.full((128, 128, 3), 20, np.uint8)
    image[white[0]:white[1], white[2]:white[3]] = 250
    image[red[0]:red[1], red[2]:red[3]] = (250, 10, 10)
    with open_predictor(ssd_postprocess_file, warn=warnings.append) as predictor:
        assert predictor.task == "detection" and predictor.labels == ["white", "red"]
        detections = predictor(image).detections   # no manifest: stretched to 64x64, pixels / 255
    assert len(warnings) == 1 and "no manifest" in warnings[0] and "task detection" in warnings[0]
    assert sorted(d.label for d in detections) == ["red", "white"], detections
    for detection in detections:
        assert detection.score > 0.9
        assert inside(center(detection.box), white if detection.label == "white" else red), detection


def test_openvino_refuses_the_postprocess_op_in_one_line(ssd_postprocess_file):
    if not available("openvino"):
        pytest.skip(BACKENDS.get("openvino").unavailable_reason())
    with pytest.raises(EdgekitError, match="TFLite_Detection_PostProcess"):
        open_runner(ssd_postprocess_file, "openvino")


# ------------------------------------------------------------------ Runner API: options, devices, bad input

@pytest.fixture(scope="module")
def tiny_formats(tflite_float_file, onnx_file, tmp_path_factory) -> dict[str, Path]:
    """conftest's tiny classifiers by format: .tflite (from Keras), .onnx (from torch) and an
    OpenVINO IR (converted from the .onnx)."""
    artifacts = {"tflite": tflite_float_file, "onnx": onnx_file}
    if available("openvino"):
        import openvino as ov

        xml = tmp_path_factory.mktemp("tiny_ir") / "tiny.xml"
        ov.save_model(ov.convert_model(str(onnx_file)), str(xml), compress_to_fp16=False)
        artifacts["openvino"] = xml
    return artifacts


@pytest.fixture(scope="module")
def tiny_artifacts(tiny_formats) -> dict[str, Path]:
    """The tiny artifacts by the backend that runs their format by default."""
    return {FORMATS.get(fmt).backend: path for fmt, path in tiny_formats.items()}


def artifact_for(backend: str, tiny_formats: dict[str, Path]) -> Path:
    """A tiny artifact BACKEND runs; the test skips with the reason when there is none here."""
    runner_cls = BACKENDS.get(backend)
    if runner_cls.unavailable_reason():
        pytest.skip(f"{backend}: {runner_cls.unavailable_reason()}")
    path = next((tiny_formats[f] for f in runner_cls.formats if f in tiny_formats), None)
    if path is None:
        pytest.skip(f"{backend} runs {', '.join(runner_cls.formats)}; these tests build no such tiny artifact")
    return path


# every (backend, format it runs): the Runner contract holds for each, on every backend registered
BACKEND_FORMATS = [(name, fmt) for name, cls in BACKENDS.items() for fmt in cls.formats]


@pytest.mark.parametrize("backend, fmt", BACKEND_FORMATS, ids=[f"{b}-{f}" for b, f in BACKEND_FORMATS])
def test_runner_contract_matches_the_source_framework(backend, fmt, tiny_formats, keras_model, torch_module):
    """Every backend on every format it runs: TensorInfo inputs/outputs, float32 outputs of
    the declared shapes, and the numbers of the framework the tiny model came from (Keras for
    the .tflite, torch for the .onnx and the IR), through the raw framework, not edgekit."""
    import torch

    runner_cls = BACKENDS.get(backend)
    if runner_cls.unavailable_reason():
        pytest.skip(f"{backend}: {runner_cls.unavailable_reason()}")
    if fmt not in tiny_formats:
        pytest.skip(f"these tests build no tiny {fmt} artifact")
    x = np.random.default_rng(5).uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)   # NHWC
    with open_runner(tiny_formats[fmt], backend) as runner:
        assert runner.backend == backend
        assert all(isinstance(t, TensorInfo) for t in runner.inputs + runner.outputs)
        nchw = list(runner.inputs[0].shape) == [1, 3, 32, 32]
        feed = x.transpose(0, 3, 1, 2).copy() if nchw else x
        got = runner.infer(feed)
    assert [o.dtype for o in got] == [np.float32] * len(runner.outputs)
    assert [list(o.shape) for o in got] == [list(t.shape) for t in runner.outputs]
    if fmt == "tflite":
        expected = np.asarray(keras_model(x, training=False))
    else:
        with torch.no_grad():
            expected = torch_module(torch.from_numpy(feed)).numpy()
    np.testing.assert_allclose(got[0], expected, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("backend, options", [("litert", {"threads": 2}), ("openvino", {"threads": 1, "hint": "throughput"}),
                                              ("openvino", {"hint": "latency"}), ("onnxruntime", {"threads": 1})])
def test_backend_options_reach_the_runtime(tiny_artifacts, backend, options):
    if not available(backend):
        pytest.skip(BACKENDS.get(backend).unavailable_reason())
    with open_runner(tiny_artifacts[backend], backend, **options) as runner:
        shape = runner.inputs[0].shape
        assert sorted(shape) == [1, 3, 32, 32] and runner.inputs[0].dtype == "float32"
        assert runner.outputs[0].shape == [1, 10] and runner.outputs[0].quantization is None
        out = runner.infer({runner.inputs[0].name: np.zeros(shape, np.float32)})
        assert out[0].shape == (1, 10) and out[0].dtype == np.float32
        if backend == "openvino":
            assert str(runner.compiled.get_property("PERFORMANCE_HINT")).endswith(options["hint"].upper())
            if "threads" in options:
                assert int(runner.compiled.get_property("INFERENCE_NUM_THREADS")) == 1
        if backend == "onnxruntime":
            assert runner.session.get_session_options().intra_op_num_threads == 1


def test_openvino_cpu_runs_float_irs_in_fp32_not_bf16(tiny_artifacts, onnx_file):
    """OpenVINO's CPU plugin defaults to bf16 on CPUs with AVX512-BF16/AMX, which moved
    EfficientNet-Lite0 fp32 to cosine 0.998: the Runner pins f32, and so matches ONNX Runtime."""
    if not available("openvino") or not available("onnxruntime"):
        pytest.skip("needs OpenVINO and ONNX Runtime")
    import onnxruntime as ort

    batch = np.random.default_rng(0).uniform(-1, 1, (1, 3, 32, 32)).astype(np.float32)
    with open_runner(tiny_artifacts["openvino"], "openvino") as runner:
        assert "32" in str(runner.compiled.get_property("INFERENCE_PRECISION_HINT"))
        got = runner.infer([batch])[0]
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: batch})[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS.names())
def test_load_run_results_are_infer_in_three_timed_steps(tiny_formats, backend):
    """bench times Runner.run alone; load + run + results must be exactly what infer returns."""
    rng = np.random.default_rng(3)
    with open_runner(artifact_for(backend, tiny_formats), backend) as runner:
        first, second = (rng.uniform(-1, 1, runner.inputs[0].shape).astype(np.float32) for _ in range(2))
        with pytest.raises(EdgekitError, match="no valid input is loaded"):
            runner.run()
        expected = runner.infer(first)[0]
        bad = first.copy()
        bad.flat[7] = np.nan
        with pytest.raises(EdgekitError, match="contains NaN values"):
            runner.load(bad)
        with pytest.raises(EdgekitError, match="no valid input is loaded"):
            runner.run()  # the refused input never reaches the runtime
        with pytest.raises(EdgekitError, match="has no outputs for the loaded input"):
            runner.results()  # nor do the previous input's outputs pass for its
        runner.load(first)
        runner.run()
        np.testing.assert_array_equal(runner.results()[0], expected)
        runner.run()  # the loaded input stays loaded
        np.testing.assert_array_equal(runner.results()[0], expected)
        runner.load(second)
        runner.run()
        assert not np.array_equal(runner.results()[0], expected)


def test_openvino_dynamic_batch_loads_each_calls_shape(tiny_artifacts, onnx_file, tmp_path):
    if not available("openvino"):
        pytest.skip(BACKENDS.get("openvino").unavailable_reason())
    import openvino as ov

    model = ov.convert_model(str(onnx_file))
    model.reshape({model.inputs[0]: ov.PartialShape([-1, 3, 32, 32])})
    ov.save_model(model, str(tmp_path / "dynamic.xml"), compress_to_fp16=False)
    batch = np.random.default_rng(4).uniform(-1, 1, (3, 3, 32, 32)).astype(np.float32)
    with open_runner(tmp_path / "dynamic.xml") as dynamic, open_runner(tiny_artifacts["openvino"]) as fixed:
        assert dynamic.inputs[0].shape == [-1, 3, 32, 32]
        together = dynamic.infer(batch)[0]
        assert together.shape == (3, 10)
        one_by_one = np.concatenate([fixed.infer(batch[i:i + 1])[0] for i in range(3)])
        np.testing.assert_allclose(together, one_by_one, rtol=1e-5, atol=1e-6)
        assert dynamic.infer(batch[:1])[0].shape == (1, 10)  # the next call's own shape


@pytest.mark.parametrize("backend, kwargs, pattern", [
    ("tensorrt", {}, r"unknown backend 'tensorrt'.*Valid backends: .*litert.*openvino"),
    ("openvino", {"device": "TPU"}, r"unknown openvino device 'TPU'.*Valid openvino devices: AUTO, CPU, GPU"),
    ("openvino", {"device": "CPU", "hint": "fastest"}, r"unknown OpenVINO hint 'fastest'.*latency, throughput"),
    ("openvino", {"device": "CPU", "warp": 9}, r"backend 'openvino' has no option warp.*threads, hint"),
    ("litert", {"threads": 0}, r"threads must be a whole number of at least 1, got 0"),
    ("litert", {"device": "GPU"}, r"unknown litert device 'GPU'.*Valid litert devices: CPU"),
    ("onnxruntime", {"device": "CUDA"}, r"onnxruntime device 'CUDA' is not reachable on this host.*available: CPU"),
    ("litert", {"hint": "latency"}, r"backend 'litert' has no option hint"),
])
def test_unknown_backend_device_or_option_is_one_line(tiny_artifacts, backend, kwargs, pattern):
    path = tiny_artifacts.get(backend, tiny_artifacts["litert"])
    with pytest.raises(EdgekitError, match=pattern) as info:
        open_runner(path, backend, **kwargs)
    assert "\n" not in str(info.value)


def test_absent_openvino_device_lists_the_present_ones(tiny_artifacts):
    if not available("openvino"):
        pytest.skip(BACKENDS.get("openvino").unavailable_reason())
    import openvino as ov

    present = ov.Core().available_devices
    absent = next((d for d in ("NPU", "GPU") if d not in {p.split(".")[0] for p in present}), None)
    if absent is None:
        pytest.skip("this host has both a GPU and an NPU")
    with pytest.raises(EdgekitError, match=rf"openvino device '{absent}' is not reachable on this host.*"
                                           rf"available: {re.escape(', '.join(present))}"):
        open_runner(tiny_artifacts["openvino"], "openvino", absent)
    with pytest.raises(EdgekitError, match=rf"device '{absent}' is not reachable"):
        open_runner(tiny_artifacts["openvino"], "openvino", f"AUTO:{absent},CPU")


def test_coreml_is_honest_off_macos(tiny_artifacts):
    import sys

    if sys.platform == "darwin":
        pytest.skip("Core ML predicts on macOS; this checks the refusal elsewhere")
    assert BACKENDS.get("coreml").unavailable_reason() == "Core ML prediction needs macOS"


@pytest.mark.parametrize("make, pattern", [
    (lambda s: np.zeros(s[1:], np.float32), r"has rank 4 \(shape \[1, \d+, \d+, \d+\]\), got rank 3"),
    (lambda s: np.zeros((1, 31, 31, 31), np.float32), r"has shape \[1, \d+, \d+, \d+\], got \[1, 31, 31, 31\]"),
    (lambda s: np.zeros(s, np.int64), r"takes float32, got int64"),
    (lambda s: np.zeros(s, np.uint8), r"takes float32, got uint8.*Predictor.prepare"),
    (lambda s: np.full(s, np.nan, np.float32), r"contains NaN values"),
    (lambda s: np.where(np.arange(np.prod(s)).reshape(s) == 7, np.inf, 0).astype(np.float32), r"contains infinite"),
    (lambda s: [np.zeros(s, np.float32)] * 2, r"takes 1 input\(s\), got 2"),
    (lambda s: {"nope": np.zeros(s, np.float32)}, r"needs input\(s\) .*got nope"),
    (lambda s: s, r"must be a numpy array, got list"),
])
@pytest.mark.parametrize("backend", BACKENDS.names())
def test_bad_input_is_refused_before_the_runtime(tiny_formats, backend, make, pattern):
    with open_runner(artifact_for(backend, tiny_formats), backend) as runner:
        feeds = make(list(runner.inputs[0].shape))
        with pytest.raises(EdgekitError, match=pattern):
            runner.infer([feeds] if isinstance(feeds, list) and not isinstance(feeds[0], np.ndarray) else feeds)


@pytest.mark.slow  # converts three tiny models with edgekit.convert (minutes on a busy machine)
def test_quantized_input_takes_its_own_dtype_only(converted):
    with open_runner(converted["ssd"].with_name("ssd_int8.tflite")) as runner:
        assert runner.inputs[0].dtype == "uint8" and runner.inputs[0].quantization
        runner.infer(np.zeros((1, SIZE, SIZE, 3), np.uint8))        # as is
        runner.infer(np.zeros((1, SIZE, SIZE, 3), np.float32))      # quantized here
        with pytest.raises(EdgekitError, match=r"takes uint8, got int8.*already quantized.*float32"):
            runner.infer(np.zeros((1, SIZE, SIZE, 3), np.int8))


@pytest.mark.parametrize("fmt", ["tflite", "onnx", "openvino"])
@pytest.mark.parametrize("damage", ["truncate", "index"])
def test_corrupt_artifact_is_one_line_before_the_runtime(tiny_formats, tmp_path, fmt, damage):
    backend = FORMATS.get(fmt).backend
    source = artifact_for(backend, {fmt: tiny_formats[fmt]} if fmt in tiny_formats else {})
    target = tmp_path / source.name
    data = source.read_bytes()
    for companion in FORMATS.get(fmt).companions(source):   # intact: the damage is in the model file
        (tmp_path / companion.name).write_bytes(companion.read_bytes())
    if fmt == "openvino":
        text = data.decode()
        data = (text[: len(text) // 2] if damage == "truncate" else
                re.sub(r'to-port="(\d+)"', 'to-port="99"', text, count=1)).encode()
    elif damage == "truncate":
        data = data[: len(data) // 2]
    elif fmt == "tflite":   # point the first operator's first input at a tensor that does not exist
        import flatbuffers
        from tensorflow.lite.python import schema_py_generated as schema

        model = schema.ModelT.InitFromPackedBuf(data, 0)
        operator = model.subgraphs[0].operators[0]
        operator.inputs = [len(model.subgraphs[0].tensors) + 1000, *[int(i) for i in operator.inputs[1:]]]
        builder = flatbuffers.Builder(len(data) + 1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        data = bytes(builder.Output())
    else:   # a node input that no node produces
        import onnx

        model = onnx.load_from_string(data)
        model.graph.node[0].input[0] = "missing"
        data = model.SerializeToString()
    target.write_bytes(data)
    with pytest.raises(ModelFormatError) as info:
        open_runner(target, backend)
    assert "\n" not in str(info.value) and target.name in str(info.value)


# ------------------------------------------------------------------ edgekit predict

@pytest.fixture(scope="module")
def scene_file(tmp_path_factory) -> Path:
    import cv2

    path = tmp_path_factory.mktemp("predict") / "scene.png"
    cv2.imwrite(str(path), scene()[:, :, ::-1])
    return path


@pytest.mark.slow  # converts three tiny models with edgekit.convert (minutes on a busy machine)
def test_predict_cli_detection_json_and_table(run_cli, converted, scene_file):
    code, out, err = run_cli("predict", converted["yolo"].with_name("yolo_fp32.onnx"), scene_file,
                             "--score-threshold", "0.5", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["task"] == "detection" and data["backend"] == "onnxruntime"
    (image,) = data["images"]
    assert sorted(d["label"] for d in image["detections"]) == ["red", "white"]
    assert set(image["timings_ms"]) == {"preprocess", "infer", "postprocess"}
    code, out, err = run_cli("predict", converted["seg"].with_name("seg_fp32.xml"), scene_file)
    assert code == 0, err
    assert "96x128" in out and "background" in out and "white" in out


def test_predict_cli_classification_top_k(run_cli, tflite_float_file, photos_dir):
    image = sorted(photos_dir.iterdir())[0]
    code, out, err = run_cli("predict", tflite_float_file, image, "--top-k", "3", "--json")
    assert code == 0, err
    (result,) = json.loads(out)["images"]
    assert len(result["classes"]) == 3 and result["classes"][0]["score"] >= result["classes"][1]["score"]
    assert "no manifest" in err and "assumed from the model file" in err   # a bare .tflite: warned


@pytest.mark.parametrize("args, pattern", [
    (["{model}", "{missing}"], r"image .*nope\.png does not exist"),
    (["{model}", "{model}"], r"is not an image OpenCV can read"),
    (["{model}", "{image}", "--backend", "tensorflow"], r"unknown backend 'tensorflow'.*Valid backends"),
    (["{model}", "{image}", "--device", "GPU"], r"unknown litert device 'GPU'"),
    (["{image}", "{image}"], r"is a PNG image, not a model"),
])
def test_predict_cli_bad_input_is_one_line(run_cli, tiny_artifacts, scene_file, tmp_path, args, pattern):
    values = {"model": tiny_artifacts["litert"], "missing": tmp_path / "nope.png",
              "image": scene_file}
    code, out, err = run_cli("predict", *[a.format(**values) for a in args])
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err
    assert re.search(pattern, lines[0]), lines[0]
