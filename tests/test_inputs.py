"""Inputs of every common shape and preprocessing found in the graph (issue 13 §1, §2).

Each conversion is compared with the source framework's own output through the raw LiteRT
interpreter (the oracle), never with edgekit's verify report.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgekit.convert import ConvertRequest, convert
from edgekit.errors import BadInput, CalibrationError
from edgekit.sources.base import load_source

from field import models   # tests/ is on sys.path (rootdir conftest), as in test_edgetpu.py

tf = pytest.importorskip("tensorflow")
FP32_TOL = dict(rtol=1e-4, atol=1e-4)


def _litert(path: Path, feeds: list[np.ndarray]) -> tuple[list[dict], list[np.ndarray]]:
    """The artifact through LiteRT itself: its input details and its outputs for FEEDS (in input order)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    details = interpreter.get_input_details()
    for detail, feed in zip(details, feeds):
        interpreter.set_tensor(detail["index"], feed.astype(detail["dtype"]))
    interpreter.invoke()
    return details, [interpreter.get_tensor(o["index"]) for o in interpreter.get_output_details()]


def _convert(path: Path, out: Path, *, precision: str = "fp32", **options):
    request = ConvertRequest(targets=["tflite"], precisions=[precision], out_dir=out, **options)
    result = convert(path, request)
    artifact = Path(result.artifacts[0].path)
    manifest = json.loads(Path(result.artifacts[0].manifest).read_text())
    return artifact, manifest


def _keras(path: Path):
    import keras

    return keras.models.load_model(path, compile=False)


def _predict_matches_luminance(artifact: Path, shape: tuple, tmp_path: Path) -> None:
    """`predict` on a grey RGB photo at the model size (its luma is each pixel's value, so the
    input is known without edgekit's own code) gives LiteRT's softmax on that input."""
    import cv2

    from edgekit.predict import predict_images

    grey = np.random.default_rng(7).integers(0, 256, (models.SIZE if len(shape) == 4 else 28,) * 2, dtype=np.uint8)
    photo = tmp_path / "grey.png"
    cv2.imwrite(str(photo), np.repeat(grey[:, :, None], 3, axis=2))
    _, (logits,) = _litert(artifact, [((grey.astype(np.float32) - 127.5) / 127.5).reshape(shape)])
    expected = np.exp(logits[0] - logits[0].max())
    expected /= expected.sum()
    top = predict_images(artifact, [photo], top_k=3).predictions[0][1].classes
    np.testing.assert_allclose([c.score for c in top], np.sort(expected)[::-1][:3], rtol=1e-4, atol=1e-5)
    assert [c.index for c in top] == list(np.argsort(-expected)[:3])


def test_greyscale_input_records_one_channel_and_matches_keras(tmp_path):
    path = models.keras_grey(tmp_path)
    artifact, manifest = _convert(path, tmp_path / "out", mean=[127.5], std=[127.5], task="classification")
    assert manifest["preprocess"]["channels"] == 1
    assert manifest["verify"]["status"] == "pass"   # verify fed luminance photos, not RGB
    x = np.random.default_rng(0).uniform(-1, 1, (1, models.SIZE, models.SIZE, 1)).astype(np.float32)
    details, (got,) = _litert(artifact, [x])
    assert list(details[0]["shape"]) == [1, models.SIZE, models.SIZE, 1]
    np.testing.assert_allclose(got, np.asarray(_keras(path)(x)), **FP32_TOL)
    _predict_matches_luminance(artifact, (1, models.SIZE, models.SIZE, 1), tmp_path)


def test_channelless_input_is_a_greyscale_image(tmp_path):
    path = models.keras_channelless(tmp_path)
    artifact, manifest = _convert(path, tmp_path / "out", mean=[127.5], std=[127.5], task="classification")
    assert (manifest["preprocess"]["layout"], manifest["preprocess"]["channels"]) == ("HW", 1)
    assert manifest["input_specs"][0]["kind"] == "image"
    x = np.random.default_rng(1).uniform(-1, 1, (1, 28, 28)).astype(np.float32)
    _, (got,) = _litert(artifact, [x])
    np.testing.assert_allclose(got, np.asarray(_keras(path)(x)), **FP32_TOL)
    _predict_matches_luminance(artifact, (1, 28, 28), tmp_path)


def test_input_size_fixes_a_free_size_keras_input(tmp_path):
    path = models.keras_free_size(tmp_path)
    artifact, manifest = _convert(path, tmp_path / "out", input_size=[16, 24], mean=[127.5], std=[127.5])
    assert manifest["preprocess"]["input_size"] == [16, 24]
    x = np.random.default_rng(2).uniform(-1, 1, (1, 16, 24, 3)).astype(np.float32)
    details, (got,) = _litert(artifact, [x])
    assert list(details[0]["shape"]) == [1, 16, 24, 3]
    np.testing.assert_allclose(got, np.asarray(_keras(path)(x)), **FP32_TOL)


def test_batch_4_is_pinned_to_1_with_a_recorded_warning(tmp_path):
    path = models.keras_batch4(tmp_path)
    artifact, manifest = _convert(path, tmp_path / "out", mean=[127.5], std=[127.5], verify=False)
    assert any("batch of 4: pinned to 1" in w for w in manifest["warnings"]), manifest["warnings"]
    assert manifest["input_specs"][0]["batch_pinned_from"] == 4
    x = np.random.default_rng(3).uniform(-1, 1, (1, models.SIZE, models.SIZE, 3)).astype(np.float32)
    details, (got,) = _litert(artifact, [x])
    assert details[0]["shape"][0] == 1
    reference = np.asarray(_keras(path)(np.repeat(x, 4, axis=0)))[:1]
    np.testing.assert_allclose(got, reference, **FP32_TOL)


@pytest.fixture(scope="module")
def two_inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("two_inputs")
    path = models.keras_two_inputs(folder)
    rng = np.random.default_rng(4)
    sensors = rng.normal(size=(8, 6)).astype(np.float32)
    np.save(folder / "sensors.npy", sensors)
    images = rng.uniform(-1, 1, (8, models.SIZE, models.SIZE, 3)).astype(np.float32)
    np.savez(folder / "both.npz", image=images, sensors=sensors)
    return path, folder


def test_two_inputs_int8_calibrates_on_a_folder_and_an_npy_per_input(two_inputs, photos_dir, tmp_path):
    path, folder = two_inputs
    artifact, manifest = _convert(path, tmp_path / "out", precision="int8", mean=[127.5], std=[127.5],
                                  calib=[f"image={photos_dir}", f"sensors={folder / 'sensors.npy'}"], verify=False)
    assert sorted((s["source_name"], s["kind"]) for s in manifest["input_specs"]) == [("image", "image"),
                                                                                       ("sensors", "tensor")]
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(artifact))
    assert [d["dtype"] for d in interpreter.get_input_details()] == [np.uint8, np.uint8]   # full integer


def test_two_inputs_fp32_from_an_npz_matches_keras(two_inputs, tmp_path, run_cli):
    path, folder = two_inputs
    artifact, manifest = _convert(path, tmp_path / "out", mean=[127.5], std=[127.5], task="classification",
                                  verify_data=[str(folder / "both.npz")])
    assert manifest["verify"]["status"] == "pass"
    data = np.load(folder / "both.npz")
    image, sensors = data["image"][:1], data["sensors"][:1]
    by_kind = {s["name"]: s["source_name"] for s in manifest["input_specs"]}
    feeds = [image if by_kind[t["name"]] == "image" else sensors for t in manifest["inputs"]]
    _, (got,) = _litert(artifact, feeds)
    np.testing.assert_allclose(got, np.asarray(_keras(path)([image, sensors])), **FP32_TOL)
    # bench takes the same .npz (one array per source input name); a single .npy names the inputs
    np.savez(tmp_path / "one.npz", image=image, sensors=sensors)
    code, out, err = run_cli("bench", artifact, "--input", tmp_path / "one.npz", "--runs", "3", "--warmup", "1", "--json")
    assert code == 0, err
    record = json.loads(out)["results"][0]
    assert record["status"] == "ok" and len(record["samples_ms"]) == 3, record
    from edgekit.predict import predict_images

    top = predict_images(artifact, [tmp_path / "one.npz"], top_k=2).predictions[0][1].classes
    expected = np.exp(got[0] - got[0].max())
    expected /= expected.sum()
    assert [c.index for c in top] == list(np.argsort(-expected)[:2])
    np.testing.assert_allclose([c.score for c in top], np.sort(expected)[::-1][:2], rtol=1e-4, atol=1e-5)
    np.save(tmp_path / "one.npy", image)
    code, _, err = run_cli("bench", artifact, "--input", tmp_path / "one.npy", "--runs", "3")
    assert code != 0 and "takes 2 inputs (" in err and "pass a .npz with one array per input name" in err
    # an image, or a .npz of several samples, is one clear line naming the inputs as the .npz keys them
    import cv2

    cv2.imwrite(str(tmp_path / "photo.png"), np.zeros((40, 40, 3), np.uint8))
    code, _, err = run_cli("predict", artifact, tmp_path / "photo.png")
    assert code == 2 and "takes 2 inputs (" in err and "image" in err and "sensors" in err, err
    code, _, err = run_cli("predict", artifact, folder / "both.npz")
    assert code == 2 and "holds 8 samples, and the model takes one" in err, err
    # the reference pack carries both inputs as the artifact takes them, and reruns as it passed
    from edgekit.parity import read_pack

    meta, inputs, expected = read_pack(str(artifact) + ".edgekit.ref.npz")
    assert [i["name"] for i in meta["inputs"]] == [t["name"] for t in manifest["inputs"]]
    fed = dict(zip([by_kind[i["name"]] for i in meta["inputs"]], inputs))
    np.testing.assert_array_equal(fed["sensors"], data["sensors"][meta["indices"]])
    np.testing.assert_allclose(fed["image"], data["image"][meta["indices"]], rtol=1e-6)
    np.testing.assert_allclose(expected[0], np.asarray(_keras(path)([fed["image"], fed["sensors"]])), **FP32_TOL)
    code, out, err = run_cli("verify", artifact, "--json")
    assert code == 0, err
    assert json.loads(out)["artifacts"][0]["verify"]["status"] == "pass"


def test_several_inputs_refuse_one_unnamed_folder(two_inputs, photos_dir, tmp_path):
    path, _ = two_inputs
    with pytest.raises(CalibrationError, match=r"the model has 2 inputs \(image, sensors\), so data .* cannot say"):
        _convert(path, tmp_path / "out", precision="int8", mean=[127.5], std=[127.5], calib=[str(photos_dir)])


def test_rescaling_layer_means_raw_pixels_and_no_second_normalization(tmp_path):
    path = models.keras_rescaling(tmp_path)
    source = load_source(path)
    assert source.facts.preprocess["normalization"] == "graph"
    assert (source.facts.preprocess["mean"], source.facts.preprocess["std"]) == ([0.0] * 3, [1.0] * 3)
    with pytest.raises(BadInput, match=r"--mean/--std contradict .* normalizes its input itself .* raw 0-255 pixels"):
        _convert(path, tmp_path / "bad", mean=[127.5], std=[127.5])
    artifact, manifest = _convert(path, tmp_path / "out")
    pre = manifest["preprocess"]
    assert (pre["mean"], pre["std"], pre["normalization"]) == ([0.0] * 3, [1.0] * 3, "graph")
    assert not any("preprocessing assumed" in n for n in manifest["verify"]["notes"]) or pre["assumed"]
    # an edgekit artifact as source reuses its manifest's facts
    again = load_source(artifact)
    assert again.facts.preprocess["normalization"] == "manifest"
    assert again.facts.preprocess["std"] == [1.0] * 3


def test_onnx_sub_div_at_the_entry_is_found(tmp_path):
    source = load_source(models.onnx_sub_div(tmp_path))
    facts = source.facts.preprocess
    assert (facts["normalization"], facts["mean"], facts["std"]) == ("graph", [0.0] * 3, [1.0] * 3)
    graph = facts["graph_normalization"]
    np.testing.assert_allclose(graph.mean, [123.7, 116.3, 103.5], rtol=1e-5)
    np.testing.assert_allclose(graph.std, [58.4, 57.1, 57.4], rtol=1e-5)


def test_assumed_preprocessing_is_said_in_the_verify_report(tmp_path):
    path = models.keras_grey(tmp_path)
    _, manifest = _convert(path, tmp_path / "out")
    assert manifest["preprocess"]["normalization"] == "assumed"
    assert any(n.startswith("preprocessing assumed, not verified") for n in manifest["verify"]["notes"])


@pytest.mark.parametrize("build", ["onnx_mul_add", "tflite_entry_norm"])
def test_constant_mul_add_at_the_entry_means_raw_pixels(build, tmp_path):
    """Mul(1/127.5) then Add(-1) is (x - 127.5) / 127.5: the model takes raw 0-255 pixels."""
    facts = load_source(getattr(models, build)(tmp_path)).facts.preprocess
    assert (facts["normalization"], facts["mean"], facts["std"]) == ("graph", [0.0] * 3, [1.0] * 3)
    np.testing.assert_allclose(facts["graph_normalization"].mean, [127.5] * 3, rtol=1e-5)
    np.testing.assert_allclose(facts["graph_normalization"].std, [127.5] * 3, rtol=1e-5)


@pytest.mark.parametrize("build, expected", [
    ("keras_grey", [("image", "GRAYSCALE", [models.SIZE, models.SIZE])]),
    ("keras_channelless", [("image", "GRAYSCALE", [28, 28])]),          # [1, H, W]: reshaped inside
    ("keras_two_inputs", [("image", "RGB", [models.SIZE, models.SIZE]), ("sensors", "array", [1, 6])]),
    ("keras_audio", [("waveform", "array", [1, 4000])]),
])
def test_coreml_takes_greyscale_channelless_and_tensor_inputs(build, expected, photos_dir, tmp_path):
    """Core ML has a GRAYSCALE ImageType and TensorType inputs: such models convert (they were
    refused as 'one colour image input'). Core ML cannot predict on Linux, so the proof here is
    the program handed to coremltools, fed each verify sample through the ImageType's own
    scale/bias, against the source framework (the intermediate step edgekit gates like fp32)."""
    ct = pytest.importorskip("coremltools")
    path = getattr(models, build)(tmp_path)
    rng = np.random.default_rng(5)
    if build == "keras_two_inputs":
        np.savez(tmp_path / "both.npz", image=rng.uniform(0, 255, (8, models.SIZE, models.SIZE, 3)).astype(np.uint8),
                 sensors=rng.normal(size=(8, 6)).astype(np.float32))
        data = [str(tmp_path / "both.npz")]
    elif build == "keras_audio":
        np.save(tmp_path / "audio.npy", rng.normal(0, 0.3, (8, 4000)).astype(np.float32))
        data = [str(tmp_path / "audio.npy")]
    else:
        data = [str(photos_dir)]
    norm = {} if build == "keras_audio" else dict(mean=[127.5], std=[127.5])
    request = ConvertRequest(targets=["coreml"], precisions=["fp32"], out_dir=tmp_path / "out", verify_data=data,
                             **norm)
    artifact = convert(path, request).artifacts[0]
    spec = ct.models.MLModel(str(artifact.path), skip_model_load=True).get_spec()
    layouts = {10: "GRAYSCALE", 20: "RGB", 30: "BGR"}
    got = []
    for feature in spec.description.input:
        if feature.type.WhichOneof("Type") == "imageType":
            t = feature.type.imageType
            got.append((feature.name, layouts[t.colorSpace], [int(t.height), int(t.width)]))
        else:
            got.append((feature.name, "array", [int(d) for d in feature.type.multiArrayType.shape]))
    assert got == expected
    verify = artifact.verify
    assert verify.status == "structure-only" and verify.steps, verify
    step = verify.steps[-1]
    assert step.step.endswith("coremltools" + (" (with the ImageType's scale/bias)" if build != "keras_audio" else ""))
    assert step.status == "pass" and step.samples >= 8 and step.cosine >= 0.9999, step
    manifest = json.loads(Path(artifact.manifest).read_text())
    assert [t["name"] for t in manifest["inputs"]] == [name for name, _, _ in expected]
    assert [s["kind"] for s in manifest["input_specs"]] == ["tensor" if k == "array" else "image"
                                                            for _, k, _ in expected]
    if expected[0][1] == "GRAYSCALE":
        assert manifest["inputs"][0]["shape"] == [1, 1, *expected[0][2]]


def test_coreml_runner_feeds_a_greyscale_picture():
    """The macOS runner turns the normalized [1, 1, H, W] input back into an "L" picture."""
    from edgekit.manifest import Preprocess
    from edgekit.runtime.coreml import CoreMLRunner

    runner = CoreMLRunner.__new__(CoreMLRunner)   # no package: Core ML cannot load one off macOS
    runner.manifest = type("M", (), {"preprocess": Preprocess(mean=[127.5], std=[127.5], channels=1)})()
    pixels = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    picture = runner._image(((pixels.astype(np.float32) - 127.5) / 127.5)[None, None])
    assert picture.mode == "L" and np.array_equal(np.asarray(picture), pixels)
