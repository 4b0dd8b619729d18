"""Small pieces: registry lookups, manifest round trip, calibration loaders, verify metrics."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgekit.calibration import load_samples
from edgekit.errors import UnknownNameError
from edgekit.manifest import Manifest, OutputParity, Preprocess, Quantization, TensorInfo, VerifyReport
from edgekit.targets.base import TARGETS
from edgekit.verify import align, compare, gate

PRE = Preprocess(input_size=[32, 32], mean=[127.5] * 3, std=[127.5] * 3)


def test_unknown_target_suggests_closest():
    with pytest.raises(UnknownNameError, match=r"unknown target 'openvno'.*did you mean 'openvino'.*coreml, edgetpu, onnx"):
        TARGETS.get("openvno")


def test_every_target_module_is_registered():
    folder = Path(__file__).resolve().parents[1] / "edgekit" / "targets"
    modules = {p.stem for p in folder.glob("*.py")} - {"__init__", "base"}
    assert modules == set(TARGETS.names())


def test_manifest_round_trip():
    manifest = Manifest(artifact="m_int8.tflite", target="tflite", precision="int8", task="classification",
                        labels=["a", "b"], preprocess=PRE, inputs=[TensorInfo("x", [1, 32, 32, 3], "uint8",
                                                                          Quantization([0.1], [3]))],
                        verify=VerifyReport(status="pass", outputs=[OutputParity("y", 0.99, 0.1, 0.01, 1.0)]))
    again = Manifest.from_dict(__import__("json").loads(manifest.to_json()))
    assert again == manifest and again.verify.cosine == 0.99


def test_manifest_from_the_future_is_refused():
    from edgekit.errors import ModelFormatError

    with pytest.raises(ModelFormatError, match=r"^this manifest has schema version 99, which is not supported\. "
                                               r"this edgekit reads versions 1 to 2; upgrade edgekit"):
        Manifest.from_dict({"schema_version": 99, "artifact": "x", "target": "t", "precision": "fp32"})


V1 = Path(__file__).resolve().parent / "fixtures" / "manifest_v1"   # written by edgekit at commit c973773


def test_schema_1_manifest_is_read_as_schema_2(tmp_path):
    """A real schema-1 manifest (options.int8_io, options.edgetpu, bare quantization dicts) is
    converted on load, and a later stage that reads its quantization uses it: OpenVINO running
    the .tflite takes scale and zero point from the manifest (it reports none itself), so its
    outputs match LiteRT's raw interpreter fed the same pixels, quantized with the JSON's numbers."""
    import json

    from edgekit.edgetpu.report import EdgeTPUReport
    from edgekit.manifest import SCHEMA_VERSION, manifest_path, read_manifest

    folder = tmp_path / "v1"
    shutil.copytree(V1, folder)
    artifact = folder / "tiny_int8_edgetpu_ready.tflite"
    raw = json.loads(manifest_path(artifact).read_text())
    assert raw["schema_version"] == 1 and set(raw["options"]) == {"int8_io", "edgetpu"}

    manifest = read_manifest(artifact)
    assert manifest.schema_version == SCHEMA_VERSION == 2 and manifest.options == {}
    assert manifest.int8_io == "uint8" and manifest.detection is None
    assert manifest.inputs[0].quantization == Quantization(raw["inputs"][0]["quantization"]["scale"],
                                                          raw["inputs"][0]["quantization"]["zero_point"], None)
    assert manifest.edgetpu.predicted == EdgeTPUReport.from_dict(raw["options"]["edgetpu"]["predicted"])
    assert manifest.edgetpu.compiled is None and manifest.edgetpu.min_runtime_version is None
    assert manifest.edgetpu.compiler_note == raw["options"]["edgetpu"]["compiler_note"]
    assert (manifest.task, manifest.preprocess.mean, manifest.verify.status) == ("classification", [127.5] * 3, "pass")
    assert Manifest.from_dict(json.loads(manifest.to_json())) == manifest      # rewritten as schema 2

    pytest.importorskip("openvino")
    pytest.importorskip("ai_edge_litert")
    from ai_edge_litert.interpreter import Interpreter

    from edgekit.runtime import open_runner

    pixels = np.random.default_rng(0).integers(0, 256, (1, 16, 16, 3)).astype(np.float32)
    x = (pixels - 127.5) / 127.5
    q_in, q_out = raw["inputs"][0]["quantization"], raw["outputs"][0]["quantization"]
    interpreter = Interpreter(model_path=str(artifact))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"],
                           np.clip(np.round(x / q_in["scale"][0] + q_in["zero_point"][0]), 0, 255).astype(np.uint8))
    interpreter.invoke()
    got_raw = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    expected = (got_raw.astype(np.float32) - q_out["zero_point"][0]) * q_out["scale"][0]
    with open_runner(artifact, "openvino") as runner:
        assert runner.inputs[0].quantization == manifest.inputs[0].quantization
        np.testing.assert_allclose(runner.infer(x)[0], expected, atol=2 * q_out["scale"][0])


def test_schema_1_compiled_edgetpu_detection_and_per_channel_fields():
    """The schema-1 keys no real manifest above has: a compiled Edge TPU model (the dict
    targets/edgetpu.py wrote), detection options, and a per-channel quantization."""
    import json

    from edgekit.manifest import DetectionSpec

    data = json.loads((V1 / "tiny_int8_edgetpu_ready.tflite.edgekit.json").read_text())
    report = data["options"]["edgetpu"]["predicted"]
    data["options"]["edgetpu"]["compiled"] = {
        "artifact": "tiny_int8_edgetpu.tflite", "compiler": "edgetpu_compiler", "compiler_version": "16.0.384591198",
        "min_runtime_version": 14, "report": {**report, "kind": "compiler", "min_runtime_version": 14}}
    data["options"].update(detection_format="yolo", score_threshold=0.4, max_detections=20, image_input=True)
    data["outputs"][0]["quantization"] = {"scale": [0.1, 0.2, 0.3], "zero_point": [0, 0, 0]}
    manifest = Manifest.from_dict(data)
    assert manifest.edgetpu.compiled.compiler_version == "16.0.384591198"
    assert manifest.edgetpu.min_runtime_version == 14 and manifest.edgetpu.compiled.report.kind == "compiler"
    assert manifest.detection == DetectionSpec(format="yolo", score_threshold=0.4, max_detections=20)
    assert manifest.options == {"image_input": True}              # descriptive facts stay in options
    assert manifest.outputs[0].quantization == Quantization([0.1, 0.2, 0.3], [0, 0, 0], axis=1)
    scale, _ = manifest.outputs[0].quantization.broadcast(2)
    assert scale.shape == (1, 3)


def test_manifest_from_a_newer_edgekit_is_refused_in_one_line(run_cli, tmp_path):
    import json

    folder = tmp_path / "v3"
    shutil.copytree(V1, folder)
    sidecar = folder / "tiny_int8_edgetpu_ready.tflite.edgekit.json"
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "schema_version": 3}))
    code, out, err = run_cli("inspect", folder / "tiny_int8_edgetpu_ready.tflite")
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        f"error: manifest {sidecar} has schema version 3, which is not supported. this edgekit reads versions 1 to 2; "
        "upgrade edgekit, or convert the model again"]


def test_error_branches_carry_their_exit_codes():
    """Bad input exits 2, a failure of an upstream step on accepted input exits 1 (errors.py)."""
    from edgekit import errors

    for cls in (errors.BadInput, errors.ModelFormatError, errors.UnknownNameError, errors.MissingDependencyError,
                errors.UnsupportedRouteError, errors.CalibrationError):
        assert issubclass(cls, errors.BadInput) and cls.exit_code == 2
    for cls in (errors.RuntimeFailure, errors.ConversionError, errors.VerifyFailed):
        assert issubclass(cls, errors.RuntimeFailure) and cls.exit_code == 1
    assert errors.EdgekitError.exit_code == 2          # a bare EdgekitError counts as bad input
    error = errors.ModelFormatError("m.onnx is empty (0 bytes)", errors.REMEDY_REEXPORT)
    assert error.remedy == "re-export or re-download the model"
    assert str(error) == error.one_line() == "m.onnx is empty (0 bytes). re-export or re-download the model"
    assert errors.BadInput("no hosts given").one_line() == "no hosts given"


def test_calibration_from_folder_npy_and_synthetic(photos_dir, tmp_path):
    images = load_samples(photos_dir, PRE, limit=10)
    assert images.samples.shape == (10, 32, 32, 3) and images.real
    assert -1.0 <= images.samples.min() and images.samples.max() <= 1.0
    pixels = np.random.default_rng(0).integers(0, 256, (6, 40, 50, 3), dtype=np.uint8)
    np.save(tmp_path / "pixels.npy", pixels)
    assert load_samples(tmp_path / "pixels.npy", PRE).samples.shape == (6, 32, 32, 3)
    synthetic = load_samples("synthetic", PRE, limit=4)
    assert synthetic.samples.shape == (4, 32, 32, 3) and not synthetic.real


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg (installed by .ci/run)")
def test_calibration_from_video(tmp_path):
    video = tmp_path / "clip.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=96x64:rate=10",
                    "-t", "3", "-pix_fmt", "yuv420p", str(video)], check=True)
    samples = load_samples(video, PRE, limit=8)
    assert samples.kind == "video" and samples.samples.shape == (8, 32, 32, 3)
    assert samples.samples.std() > 0.1  # real decoded frames, not blanks


@pytest.mark.parametrize("mode", ["stretch", "letterbox", "center-crop"])
def test_resize_modes_produce_the_input_size(mode):
    from edgekit.frames import preprocess_image

    pre = Preprocess(input_size=[32, 48], resize=mode)
    image = np.full((60, 200, 3), 200, np.uint8)
    out = preprocess_image(image, pre)
    assert out.shape == (1, 32, 48, 3)
    if mode == "letterbox":  # padding rows keep the grey pad value
        assert np.isclose(out[0, 0, 0, 0], 114 / 255)


def test_bgr_flips_channels():
    from edgekit.frames import preprocess_image

    image = np.zeros((8, 8, 3), np.uint8)
    image[..., 0] = 255
    pre = Preprocess(input_size=[8, 8], color_order="BGR")
    assert preprocess_image(image, pre)[0, 0, 0].tolist() == [0.0, 0.0, 1.0]


def test_align_moves_channels_and_compare_metrics():
    reference = np.random.default_rng(0).standard_normal((2, 4, 5, 6)).astype(np.float32)
    assert np.array_equal(align(reference, reference.transpose(0, 2, 3, 1)), reference)
    assert align(reference, np.zeros((2, 7))) is None
    logits = np.array([[1.0, 5.0, 0.0], [3.0, 1.0, 0.0]])
    flipped = np.array([[1.0, 5.0, 0.0], [1.0, 3.0, 0.0]])
    parity = compare("y", logits, flipped, classification=True)
    assert parity.top1_agreement == 0.5 and parity.max_abs_error == 2.0
    report = gate(VerifyReport(status="pass", outputs=[parity]), "int8", classification=True)
    assert report.status == "fail" and any("top-1 agreement 50.0% < 95%" in n for n in report.notes)


def test_top1_gate_counts_only_samples_where_the_source_is_decisive():
    # sample 0: the source leads clearly and the candidate agrees; sample 1: a near tie
    # (0.50 vs 0.45 in probability) that the candidate flips; sample 2: clear, and flipped
    reference = np.array([[0.9, 0.05, 0.05], [0.50, 0.45, 0.05], [0.1, 0.8, 0.1]])
    near_tie_flipped = np.array([[0.9, 0.05, 0.05], [0.45, 0.50, 0.05], [0.1, 0.8, 0.1]])
    parity = compare("probs", reference, near_tie_flipped, classification=True)
    assert parity.top1_agreement == pytest.approx(2 / 3)
    assert parity.decisive_samples == 2 and parity.top1_agreement_decisive == 1.0
    assert gate(VerifyReport(status="pass", outputs=[parity]), "int8", classification=True).status == "pass"
    clear_flipped = near_tie_flipped.copy()
    clear_flipped[2] = [0.8, 0.1, 0.1]
    parity = compare("probs", reference, clear_flipped, classification=True)
    assert parity.top1_agreement_decisive == 0.5
    report = gate(VerifyReport(status="pass", outputs=[parity]), "int8", classification=True)
    assert report.status == "fail" and any("on the 2 samples where the source is decisive" in n for n in report.notes)
    # logits go through a softmax first: 0.94 vs 0.05 is decisive, 0.49 vs 0.44 is not
    logits = np.array([[4.0, 1.0, 0.0], [2.0, 1.9, 0.0]])
    parity = compare("logits", logits, logits[:, [1, 0, 2]], classification=True)
    assert parity.decisive_samples == 1 and parity.top1_agreement_decisive == 0.0
