"""frames.py, the one pre/postprocessing module, and host/board parity.

The parity tests run the board runner from a deploy bundle built by edgekit (the runner and the
frames.py copy the bundle vendors, in a child process, as on a board) next to the host Predictor,
on real photos (scikit-image) and tiny real TFLite models built here, through LiteRT on both
sides: every input tensor must be bit-identical and every result (labels, probabilities, boxes,
masks) equal, for classification (float and int8 input), SSD-style, YOLO-style, the
TFLite_Detection_PostProcess op and segmentation, under stretch, letterbox and centre crop.
"""
from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgekit import frames

SIZE = (48, 64)           # model input height, width: not square, so the three resize modes differ
CELL = 8                  # detector grid: 6 x 8 cells
N = (SIZE[0] // CELL) * (SIZE[1] // CELL)
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "camera")   # 300x451 ... 512x512, one greyscale
LABELS = ["bright", "red"]
CLASSES = [f"class{i}" for i in range(10)]


# ------------------------------------------------------------------ frames.py on its own

def test_frames_needs_only_numpy_and_reads_as_python_3_7():
    """The board has Python 3.7 and numpy: the vendored file may import nothing else."""
    source = Path(frames.__file__).read_text()
    tree = ast.parse(source, feature_version=(3, 7))   # no walrus, no positional-only parameters, ...
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported == {"__future__", "math", "dataclasses", "typing", "numpy"}
    assert all(node.level == 0 for node in ast.walk(tree) if isinstance(node, ast.ImportFrom))
    assert "from __future__ import annotations" in source   # 3.7 evaluates no annotation
    from edgekit.deploy.bundle import RUNNER

    ast.parse(RUNNER.read_text(), feature_version=(3, 7))   # the runner that imports it travels too


@pytest.mark.parametrize("size", [(224, 224), (100, 50), (600, 900), (33, 47)])
def test_numpy_resampling_is_within_one_level_of_opencv(size):
    """Area averaging when shrinking, bilinear when enlarging: what OpenCV's INTER_AREA and
    INTER_LINEAR compute (their fixed-point rounding differs by at most one level)."""
    cv2 = pytest.importorskip("cv2")
    pytest.importorskip("skimage")
    from edgekit.photos import photo

    image = photo("coffee")   # 400 x 600
    ours = frames.resample(image, size).astype(int)
    interpolation = cv2.INTER_AREA if size[0] < image.shape[0] else cv2.INTER_LINEAR
    theirs = cv2.resize(image, (size[1], size[0]), interpolation=interpolation).astype(int)
    assert ours.shape == theirs.shape and np.abs(ours - theirs).max() <= 1
    assert np.abs(ours - theirs).mean() < 0.2


def test_letterbox_pad_and_geometry_are_one_definition():
    spec = frames.FrameSpec.of({"input_size": [48, 64], "resize": "letterbox"})
    image = np.full((300, 200, 3), 10, np.uint8)   # portrait: bars left and right
    pixels = frames.model_pixels(image, spec)
    meta = frames.frame_meta(image.shape[:2], spec)
    top, left, height, width = frames.letterbox_box(image.shape[:2], spec.input_size)
    assert (top, left, height, width) == (0, 16, 48, 32) and meta.offset == (0.0, 16.0)
    assert meta.scale == (48 / 300, 32 / 200)
    assert (pixels[:, :left] == frames.LETTERBOX_PAD).all() and (pixels[:, left + width:] == frames.LETTERBOX_PAD).all()
    assert (pixels[:, left:left + width] == 10).all()
    back = frames.boxes_to_original(np.array([[left, 0, left + width, 48]], np.float32), meta)
    assert back[0].tolist() == pytest.approx([0, 0, 200, 300])


def test_one_channel_models_take_bt601_luma():
    image = np.zeros((4, 4, 3), np.uint8)
    image[0, :] = (255, 0, 0)
    image[1, :] = (0, 255, 0)
    image[2, :] = (0, 0, 255)
    image[3, :] = 255
    spec = frames.FrameSpec.of({"input_size": None}, input_shape=[1, 4, 4, 1])   # channels from the model
    assert spec.channels == 1 and spec.mean == (0.0,) and spec.std == (255.0,)
    pixels = frames.model_pixels(image, spec)
    assert pixels.shape == (4, 4, 1) and pixels[:, 0, 0].tolist() == [76, 150, 29, 255]   # 0.299, 0.587, 0.114
    assert frames.model_pixels(image[:, :, ::-1], spec, order="BGR").tolist() == pixels.tolist()
    grey = frames.prepare(image[:, :, 1], spec)[0]        # a greyscale picture is taken as it is
    assert grey.shape == (1, 4, 4, 1) and grey[0, 1, 0, 0] == 1.0


def test_bad_pictures_and_specs_are_refused_with_a_remedy():
    spec = frames.FrameSpec.of({"input_size": [8, 8]})
    with pytest.raises(frames.FrameError, match=r"image has 4 channel\(s\) \(shape \(5, 5, 4\)\); the model takes 3") as info:
        frames.prepare(np.zeros((5, 5, 4), np.uint8), spec)
    assert "drop alpha" in info.value.remedy
    with pytest.raises(frames.FrameError, match="unknown resize mode 'squash'"):
        frames.FrameSpec.of({"input_size": [8, 8], "resize": "squash"})
    with pytest.raises(frames.FrameError, match=r"shape \[1, 10\]\) is not an image size"):
        frames.FrameSpec.of({}, input_shape=[1, 10])
    with pytest.raises(frames.FrameError, match="cannot read detections"):
        frames.decode([np.zeros((1, 3), np.float32)], frames.frame_meta((8, 8), spec), frames.DecodeSpec("detection"))


def test_logits_become_probabilities():
    meta = frames.FrameMeta((1, 1), (1, 1))
    prediction = frames.decode([np.array([[2.0, -1.0, 0.5]], np.float32)], meta, frames.DecodeSpec("classification"))
    scores = [c.score for c in prediction.classes]
    assert [c.index for c in prediction.classes] == [0, 2, 1] and sum(scores) == pytest.approx(1.0)
    assert scores[0] == pytest.approx(np.exp(2) / (np.exp(2) + np.exp(-1) + np.exp(0.5)))


# ------------------------------------------------------------------ tiny real models

def _colour_logits(tf, pooled):
    """'bright' fires on bright cells, 'red' on red ones (logits, [..., 2])."""
    bright = 20 / 3 * tf.reduce_sum(pooled, -1, keepdims=True) - 12
    red = pooled[..., :1] * 20 - (pooled[..., 1:2] + pooled[..., 2:]) * 10 - 5
    return tf.concat([bright, red], -1)


def _grid():
    cy, cx = np.meshgrid((np.arange(SIZE[0] // CELL) + 0.5) * CELL, (np.arange(SIZE[1] // CELL) + 0.5) * CELL,
                         indexing="ij")
    return cx.ravel().astype(np.float32), cy.ravel().astype(np.float32)


def _heads(tf):
    """name -> (tf.function over a [1, 48, 64, 3] image in 0..1, task, labels)."""
    rng = np.random.default_rng(0)
    dense = tf.constant(rng.normal(0, 1.5, (N * 3, len(CLASSES))).astype(np.float32))
    jitter = tf.constant(rng.normal(0, 2.0, (3, 4)).astype(np.float32))
    cx, cy = _grid()

    def pooled(image):
        return tf.nn.avg_pool2d(image, CELL, CELL, "VALID")   # [1, 6, 8, 3]

    def boxes_xywh(image):
        nudge = tf.reshape(tf.tensordot(pooled(image), jitter, 1), [1, N, 4])
        return tf.stack([cx, cy, np.full(N, 12.0, np.float32), np.full(N, 10.0, np.float32)], 1)[None] + nudge

    def classify(image):
        return tf.matmul(tf.reshape(pooled(image), [1, N * 3]), dense)          # logits [1, 10]

    def yolo(image):
        scores = tf.sigmoid(tf.reshape(_colour_logits(tf, pooled(image)), [1, N, 2]))
        return tf.concat([boxes_xywh(image), scores], -1)                      # [1, N, 6], input pixels

    def ssd(image):
        xywh = boxes_xywh(image)[0]
        corners = tf.stack([xywh[:, 1] - xywh[:, 3] / 2, xywh[:, 0] - xywh[:, 2] / 2,
                            xywh[:, 1] + xywh[:, 3] / 2, xywh[:, 0] + xywh[:, 2] / 2], 1)
        scale = np.array([SIZE[0], SIZE[1], SIZE[0], SIZE[1]], np.float32)
        logits = tf.reshape(_colour_logits(tf, pooled(image)), [1, N, 2])
        scores = tf.nn.softmax(tf.concat([tf.zeros([1, N, 1]), logits], -1))
        return (corners / scale)[None], scores                                  # [1,N,4] normalized, [1,N,3]

    def segment(image):
        cells = tf.nn.avg_pool2d(image, 4, 4, "VALID")                          # [1, 12, 16, 3]
        return tf.concat([tf.zeros_like(cells[..., :1]), _colour_logits(tf, cells)], -1)

    return {"classify": (classify, "classification", CLASSES), "yolo": (yolo, "detection", LABELS),
            "ssd": (ssd, "detection", LABELS), "segment": (segment, "segmentation", ["background", *LABELS])}


def _convert(tf, function, int8_photos=None, custom=False) -> bytes:
    class Model(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, *SIZE, 3], tf.float32, name="image")])
        def serve(self, image):
            return function(image)

    module = Model()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.serve.get_concrete_function()], module)
    converter.allow_custom_ops = custom
    if int8_photos is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([p] for p in int8_photos)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type, converter.inference_output_type = tf.uint8, tf.int8
    return converter.convert()


def _postprocess_op(tf):
    """SSD boxes and scores into the TFLite_Detection_PostProcess custom op (as the TF Object
    Detection API exports it: experimental_implements, legalized by the converter)."""
    cx, cy = _grid()
    anchors = np.stack([cy / SIZE[0], cx / SIZE[1], np.full(N, 0.25), np.full(N, 0.2)], 1).astype(np.float32)
    attrs = {"max_detections": "i: 10", "max_classes_per_detection": "i: 1", "use_regular_nms": "b: false",
             "nms_score_threshold": "f: 0.3", "nms_iou_threshold": "f: 0.5", "y_scale": "f: 10.0",
             "x_scale": "f: 10.0", "h_scale": "f: 5.0", "w_scale": "f: 5.0", "num_classes": "i: 2"}
    signature = " ".join(['name: "TFLite_Detection_PostProcess"'] +
                         [f'attr {{ key: "{k}" value {{ {v} }} }}' for k, v in attrs.items()])
    kernel = np.random.default_rng(1).normal(0, 0.05, (1, 1, 3, 4)).astype(np.float32)

    @tf.function(experimental_implements=signature)
    def op(box_encodings, class_predictions, anchors):
        zero = tf.constant(0.0)
        return zero, zero, zero, zero   # the converter replaces this body with the op

    def head(image):
        pooled = tf.nn.avg_pool2d(image, CELL, CELL, "VALID")
        logits = tf.reshape(_colour_logits(tf, pooled), [1, N, 2])
        scores = tf.nn.softmax(tf.concat([tf.zeros([1, N, 1]), logits], -1))
        encodings = tf.reshape(tf.nn.conv2d(pooled, kernel, 1, "SAME"), [1, N, 4])
        return op(encodings, scores, tf.constant(anchors))

    return head


@pytest.fixture(scope="session")
def photo_folder(tmp_path_factory) -> Path:
    """PNG files (lossless: host and board decode the same pixels) of real photos, several shapes."""
    cv2 = pytest.importorskip("cv2")
    pytest.importorskip("skimage")
    from edgekit.photos import photo

    folder = tmp_path_factory.mktemp("parity_photos")
    for index, name in enumerate(PHOTOS):
        image = photo(name)
        if index % 2:   # and a portrait crop, for bars on the other axis
            image = image[:, : image.shape[1] // 2]
        cv2.imwrite(str(folder / f"{index}_{name}.png"), np.ascontiguousarray(image[:, :, ::-1]))
    return folder


@pytest.fixture(scope="session")
def parity_models(tmp_path_factory, photo_folder) -> dict[str, tuple[Path, str, list[str], dict]]:
    """name -> (TFLite file, task, labels, preprocess), converted once per session."""
    tf = pytest.importorskip("tensorflow")
    pytest.importorskip("ai_edge_litert")
    import cv2

    folder = tmp_path_factory.mktemp("parity_models")
    heads = _heads(tf)
    built = {}
    plain = {"mean": [0.0] * 3, "std": [255.0] * 3}
    for name, (function, task, labels) in heads.items():
        (folder / f"{name}.tflite").write_bytes(_convert(tf, function))
        built[name] = (folder / f"{name}.tflite", task, labels, plain)
    (folder / "postprocess.tflite").write_bytes(_convert(tf, _postprocess_op(tf), custom=True))
    built["postprocess"] = (folder / "postprocess.tflite", "detection", LABELS, plain)
    # int8 with a uint8 input: the pixel-table path on both sides, and int8 outputs dequantized
    symmetric = {"mean": [127.5] * 3, "std": [127.5] * 3}
    spec = frames.FrameSpec.of({"input_size": list(SIZE), **symmetric})
    calibration = [frames.preprocess_image(cv2.imread(str(p))[:, :, ::-1], spec) for p in sorted(photo_folder.iterdir())]
    int8 = _convert(tf, lambda image: heads["classify"][0](image * 0.5 + 0.5), int8_photos=calibration)
    (folder / "classify_int8.tflite").write_bytes(int8)
    built["classify_int8"] = (folder / "classify_int8.tflite", "classification", CLASSES, symmetric)
    return built


CASES = [("classify", "stretch"), ("classify", "letterbox"), ("classify", "center-crop"),
         ("classify_int8", "letterbox"), ("classify_int8", "center-crop"),
         ("yolo", "letterbox"), ("yolo", "center-crop"), ("ssd", "stretch"), ("ssd", "letterbox"),
         ("postprocess", "letterbox"), ("segment", "letterbox"), ("segment", "center-crop")]

BOARD = """
import os
import sys
import numpy as np
bundle, photos, out = sys.argv[1:4]
sys.path.insert(0, bundle)
import edgekit_runner as runner            # the bundle's own copy, which imports its vendored frames.py
code = runner.main(["run", "--source", photos, "--top-k", "3"])   # JSON lines on stdout
model = runner.BoardModel(bundle)
for path, _, image in runner.feed_frames(photos, None, None):   # (file, stream_ms, RGB image)
    np.save(out + "/" + os.path.basename(path) + ".npy", model.prepare(image)[0])
sys.exit(code)
"""


def _artifact(model: tuple, resize: str, folder: Path) -> Path:
    """The model with a manifest that records RESIZE (written as `edgekit convert` writes one)."""
    from edgekit.manifest import Manifest, Preprocess, manifest_path
    from edgekit.runtime import open_runner

    path, task, labels, norm = model
    folder.mkdir(parents=True)
    artifact = folder / path.name
    shutil.copy(path, artifact)
    with open_runner(artifact) as runner:
        inputs, outputs = runner.inputs, runner.outputs
    manifest = Manifest(artifact=artifact.name, target="tflite", precision="int8" if "int8" in path.name else "fp32",
                        task=task, labels=labels, inputs=inputs, outputs=outputs,
                        preprocess=Preprocess(input_size=list(SIZE), resize=resize, **norm))
    manifest_path(artifact).write_text(manifest.to_json())
    return artifact


def _board(bundle: Path, photos: Path, tensors: Path) -> list[dict]:
    tensors.mkdir()
    proc = subprocess.run([sys.executable, "-c", BOARD, str(bundle), str(photos), str(tensors)],
                          capture_output=True, text=True, timeout=300, cwd=tensors)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("name, resize", CASES)
def test_board_runner_and_host_predictor_agree_bit_for_bit(parity_models, photo_folder, tmp_path, name, resize):
    import cv2

    from edgekit.deploy.bundle import build_bundle
    from edgekit.runtime.predictor import open_predictor

    artifact = _artifact(parity_models[name], resize, tmp_path / "model")
    bundle = build_bundle(artifact).save(tmp_path / "bundle")
    assert (bundle / "frames.py").read_bytes() == Path(frames.__file__).read_bytes()
    lines = _board(bundle, photo_folder, tmp_path / "tensors")
    photos = sorted(photo_folder.iterdir())
    assert [Path(line["file"]).name for line in lines] == [p.name for p in photos]   # frames.FrameRecord

    found = 0
    with open_predictor(artifact, top_k=3) as predictor:
        for path, line in zip(photos, lines):
            image = np.ascontiguousarray(cv2.imread(str(path))[:, :, ::-1])
            tensor, _ = predictor.prepare(image)
            board_tensor = np.load(tmp_path / "tensors" / f"{path.name}.npy")
            assert tensor.dtype == board_tensor.dtype and np.array_equal(tensor, board_tensor), path.name
            host = json.loads(json.dumps(predictor(image).to_dict()))   # as `edgekit predict --json` writes it
            board = line["results"]
            assert set(host["timings_ms"]) == set(board["timings_ms"]) == {"preprocess", "infer", "postprocess"}
            host.pop("timings_ms"), board.pop("timings_ms")
            assert board == host, path.name
            found += len(host.get("classes", [])) + len(host.get("detections", [])) + ("mask" in host)
            if "mask" in host:
                assert host["mask"]["shape"] == list(image.shape[:2])   # at the photo's own size
            if "classes" in host:   # probabilities, not logits, on both sides
                assert 0 < sum(c["score"] for c in host["classes"]) <= 1 + 1e-6
    assert found > 0, "nothing was found in any photo: the comparison would prove nothing"
