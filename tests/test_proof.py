"""Proof that travels: the reference pack beside each artifact, `edgekit verify` on this host,
`edgekit remote verify` and `deploy --verify-on-device` on the real sshd "board" of the deploy
tests (this machine; its python is the one running these tests, with numpy and ai-edge-litert).

Oracles are independent of edgekit's verify: the source framework (Keras) on the pack's own
inputs, and the raw LiteRT interpreter on them.
"""
from __future__ import annotations

import ast
import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import sshd as sshd_helper
from test_deploy import Board, artifact, cli, compiled_lookalike  # noqa: F401  (fixtures)

from edgekit import parity
from edgekit.manifest import ReferenceInfo, manifest_path, read_manifest
from edgekit.reference import DEFAULT_BUDGET, load_reference, pack_path, write_reference

pytest.importorskip("ai_edge_litert")


@pytest.fixture(scope="module")
def packed(keras_file, photos_dir, tmp_path_factory) -> dict[str, Path]:
    """The tiny Keras classifier as fp32 and int8 TFLite, verified on real photos, as `edgekit
    convert` publishes them: artifact, manifest and reference pack side by side."""
    from edgekit.convert import ConvertRequest, convert

    out = tmp_path_factory.mktemp("packed")
    result = convert(str(keras_file), ConvertRequest(targets=["tflite"], precisions=["fp32", "int8"], out_dir=out,
                                                     calib=str(photos_dir), calib_samples=24, mean=[127.5],
                                                     std=[127.5], task="classification", name="tiny"))
    assert [a.verify.status for a in result.artifacts] == ["pass", "pass"]
    return {a.precision: Path(a.path) for a in result.artifacts}


def _copy(artifact: Path, folder: Path) -> Path:
    """The artifact with its manifest and pack, copied as a user would carry them to another host."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in (artifact, manifest_path(artifact), pack_path(artifact)):
        shutil.copy(path, folder / path.name)
    return folder / artifact.name


def _interpreter_outputs(model: Path, inputs: np.ndarray) -> np.ndarray:
    """The raw LiteRT interpreter on each [k:k+1] feed: float outputs, dequantized by hand."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model))
    interpreter.allocate_tensors()
    feed, fetch = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    outputs = []
    for k in range(len(inputs)):
        interpreter.set_tensor(feed["index"], inputs[k:k + 1])
        interpreter.invoke()
        raw = interpreter.get_tensor(fetch["index"])
        scale, zero = fetch["quantization"]
        outputs.append((raw.astype(np.float32) - zero) * scale if scale else raw)
    return np.concatenate(outputs)


# ------------------------------------------------------------------ the pack

def test_pack_round_trips_with_its_checksum_and_the_sources_outputs(packed, keras_model):
    for precision, artifact in packed.items():
        manifest = read_manifest(artifact)
        pack = load_reference(artifact, manifest)       # the sha256 the manifest records
        assert pack.path == pack_path(artifact) and manifest.reference.file == pack.path.name
        assert manifest.reference.sha256 == pack.sha256 and manifest.reference.size_bytes == pack.path.stat().st_size
        assert pack.path.stat().st_size <= DEFAULT_BUDGET
        meta = pack.meta
        assert (meta["artifact"], meta["artifact_sha256"], meta["precision"]) == (
            artifact.name, manifest.artifact_sha256, precision)
        assert meta["gates"] == parity.gate_limits(precision, True) and meta["decisive_margin"] == parity.DECISIVE_MARGIN
        assert meta["outputs"] == [t.name for t in manifest.outputs] and meta["classification"] is True
        assert meta["samples"] == manifest.reference.samples == pack.samples == 24   # 24 tiny samples fit 2 MB
        assert meta["real"] and meta["data"].endswith("(calibration data)")
        # as the runtime is fed: float NHWC for fp32, already quantized uint8 for the int8 model
        assert pack.inputs[0].dtype == (np.float32 if precision == "fp32" else np.uint8)
        assert pack.inputs[0].shape == (24, 32, 32, 3) and pack.expected[0].shape == (24, 10)

    fp32, int8 = (load_reference(packed[p], read_manifest(packed[p])) for p in ("fp32", "int8"))
    # the source framework itself on the pack's inputs gives the pack's expected outputs
    np.testing.assert_allclose(keras_model(fp32.inputs[0]).numpy(), fp32.expected[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(int8.expected[0], fp32.expected[0], rtol=1e-6, atol=1e-6)   # the same source
    # the int8 inputs are the float ones quantized with the model's own input parameters: within half a step
    quant = read_manifest(packed["int8"]).inputs[0].quantization
    restored = (int8.inputs[0].astype(np.float32) - quant.zero_point[0]) * quant.scale[0]
    assert np.abs(restored - fp32.inputs[0]).max() <= quant.scale[0] / 2 + 1e-6


def test_k_is_what_fits_the_budget_decisive_samples_first(packed, tmp_path):
    artifact = _copy(packed["fp32"], tmp_path / "small")
    manifest = read_manifest(artifact)
    full = load_reference(artifact, manifest)
    budget = 5 * (full.inputs[0][0].nbytes + full.expected[0][0].nbytes)   # five samples uncompressed
    info = write_reference(artifact, manifest, full.inputs[0], full.expected, "photos", True, budget=budget)
    meta, inputs, expected = parity.read_pack(str(pack_path(artifact)))
    assert info.size_bytes == pack_path(artifact).stat().st_size <= budget
    assert 5 <= info.samples == meta["samples"] == len(inputs[0]) < len(full.inputs[0])   # compression buys more
    clear = parity.decisive(full.expected[0])
    assert clear.sum() >= info.samples and clear[meta["indices"]].all()   # the samples the top-1 gate counts
    np.testing.assert_array_equal(inputs[0], full.inputs[0][meta["indices"]])
    np.testing.assert_array_equal(expected[0], full.expected[0][meta["indices"]])
    info = write_reference(artifact, manifest, full.inputs[0], full.expected, "photos", True, budget=1)
    assert info.samples == 1                                    # never empty


def test_parity_module_travels_python37_numpy_only():
    """The bundle vendors parity.py: it must parse on a board's Python 3.7 and import no edgekit."""
    source = Path(parity.__file__).read_text()
    tree = ast.parse(source, feature_version=(3, 7))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported == {"__future__", "json", "typing", "numpy"}
    assert "from __future__ import annotations" in source


def test_board_gates_per_channel_group_like_the_host():
    """What the board runner does with a pack (parity.py alone): a YOLO-like int8 head [1, 4 + C, A]
    whose boxes in pixels dominate the pooled cosine while every score row collapsed to two int8
    levels fails on its worst row and on its coarse step, as `edgekit convert` fails it."""
    rng = np.random.default_rng(13)
    boxes = rng.uniform(20, 300, (6, 4, 32))
    scores = rng.uniform(0.4, 0.6, (6, 3, 32))
    source = np.concatenate([boxes, scores], axis=1).astype(np.float32)
    step = 320 / 255
    board = (np.round(source / step) * step).astype(np.float32)   # one int8 tensor, dequantized
    meta = {"precision": "int8", "gates": dict(parity.gate_limits("int8", False), detection_recall=0.9, later_key=1),
            "inputs": [{"layout": "NHWC"}]}                     # a pack's gates may hold keys the board cannot gate
    results, problem = parity.match([source], [board], ["output0"], False, parity.pack_layout(meta),
                                    parity.int8_steps(meta["precision"], [None], [board]))
    assert problem is None and results[0]["cosine"] > 0.9999     # the pooled cosine alone would pass
    assert results[0]["group_name"] == "row" and results[0]["worst_group"] in (4, 5, 6)
    assert results[0]["quantization_step"] == pytest.approx(step, rel=1e-3)
    failed, _ = parity.gate_failures(results, meta["gates"])
    assert "coarser than the spread of its row" in failed[0]
    assert any(re.search(r"output0: row [456] .* cosine 0\.\d+ < 0\.98", line) for line in failed)
    healthy, _ = parity.match([source], [source + np.float32(1e-4)], ["output0"], False, "NHWC", [None])
    assert parity.gate_failures(healthy, meta["gates"]) == ([], [])


# ------------------------------------------------------------------ edgekit verify on this host

def test_verify_passes_on_the_artifact_with_its_own_pack(packed):
    fp32 = load_reference(packed["fp32"], read_manifest(packed["fp32"]))
    # oracle: the raw interpreter reproduces the source's outputs stored in the pack
    np.testing.assert_allclose(_interpreter_outputs(packed["fp32"], fp32.inputs[0]), fp32.expected[0],
                               rtol=1e-4, atol=1e-4)
    code, out, err = cli("verify", packed["fp32"], packed["int8"], "--json")
    assert code == 0, err
    report = json.loads(out)
    assert (report["passed"], report["failed"]) == (2, 0)
    for check, precision in zip(report["artifacts"], ("fp32", "int8")):
        manifest = read_manifest(packed[precision])
        assert check["backend"] == "litert" and check["artifact_intact"] and check["verify"]["status"] == "pass"
        assert check["verify"]["samples"] == 24 and check["verify"]["gate"] == parity.gate_limits(precision, True)
        # the same runtime on the same inputs as at conversion: the same numbers
        assert check["verify"]["cosine"] == pytest.approx(manifest.verify.cosine, abs=1e-9)
    code, out, err = cli("verify", packed["int8"])
    assert code == 0 and "tiny_int8.tflite" in out and "pass" in out


def test_verify_of_an_artifact_with_more_outputs_than_inputs_names_its_outputs(photos_dir, tmp_path):
    """A detector-like ONNX model, one input and two outputs: `edgekit verify` fed the pack by the
    input names and took the output names from the inputs too (IndexError on the second output)."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    from edgekit.convert import ConvertRequest, convert

    weights = np.random.default_rng(5).normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["images", "w"], ["features"], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Sigmoid", ["features"], ["scores"]),
             helper.make_node("GlobalAveragePool", ["features"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["embedding"])]
    graph = helper.make_graph(nodes, "two_outputs",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 4, 8, 8]),
                               helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor("w", TensorProto.FLOAT, weights.shape, weights.ravel())])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    source = tmp_path / "two_outputs.onnx"
    onnx.save(model, str(source))
    result = convert(str(source), ConvertRequest(targets=["onnx"], out_dir=tmp_path / "out", calib=str(photos_dir),
                                                 mean=[127.5], std=[127.5], task="other"))
    artifact = Path(result.artifacts[0].path)
    pack = load_reference(artifact, read_manifest(artifact))
    session = ort.InferenceSession(str(artifact), providers=["CPUExecutionProvider"])
    raw = session.run(None, {"images": pack.inputs[0][:1]})   # oracle: ONNX Runtime, no edgekit in between
    for got, expected in zip(raw, pack.expected):
        np.testing.assert_allclose(got, expected[:1], rtol=1e-5, atol=1e-5)
    code, out, err = cli("verify", artifact, "--json")
    assert code == 0, err
    check = json.loads(out)["artifacts"][0]
    assert check["verify"]["status"] == "pass"
    assert [o["name"] for o in check["verify"]["outputs"]] == ["scores", "embedding"]


def test_verify_fails_a_damaged_artifact_with_the_same_name(packed, tmp_path):
    artifact = _copy(packed["fp32"], tmp_path / "damaged")
    data = bytearray(artifact.read_bytes())
    weights = len(data) // 2
    data[weights:weights + 256] = bytes(b ^ 0x21 for b in data[weights:weights + 256])   # flipped weight bits
    artifact.write_bytes(bytes(data))
    code, out, err = cli("verify", artifact, "--json")
    assert code == 1 and "error: verify failed for tiny_fp32.tflite. see the notes above" in err
    check = json.loads(out)["artifacts"][0]
    assert check["artifact_intact"] is False and check["verify"]["status"] == "fail"
    assert check["verify"]["notes"][0].startswith("not the artifact that was converted: sha256 ")

    swapped = _copy(packed["int8"], tmp_path / "swapped")           # another model under the int8 model's name
    shutil.copy(packed["fp32"], swapped)
    code, out, err = cli("verify", swapped)
    assert code == 1 and "not the artifact that was converted" in out and "takes float32, got uint8" in out


def test_verify_fails_a_truncated_artifact_with_the_same_name(packed, tmp_path):
    # a damaged file that no longer parses is still "not the artifact that was converted" (exit 1),
    # not bad input (exit 2): choosing the backend must not trip over it before the sha256 check
    artifact = _copy(packed["int8"], tmp_path / "truncated")
    artifact.write_bytes(artifact.read_bytes()[:5000])
    code, out, err = cli("verify", artifact, "--json")
    assert code == 1 and "error: verify failed for tiny_int8.tflite. see the notes above" in err
    check = json.loads(out)["artifacts"][0]
    assert check["artifact_intact"] is False and check["verify"]["status"] == "fail"
    assert check["verify"]["notes"][0].startswith("not the artifact that was converted: sha256 ")
    assert "litert could not run it: " in check["verify"]["notes"][1]


def test_verify_refuses_a_pack_from_another_model(packed, tmp_path):
    artifact = _copy(packed["int8"], tmp_path / "other")
    shutil.copy(pack_path(packed["fp32"]), pack_path(artifact))
    code, out, err = cli("verify", artifact)
    assert code == 2 and out == ""
    assert err == ("error: tiny_int8.tflite.edgekit.ref.npz is the reference pack of another model (tiny_fp32.tflite, "
                   f"sha256 {read_manifest(packed['fp32']).artifact_sha256[:12]}), not of tiny_int8.tflite (sha256 "
                   f"{read_manifest(packed['int8']).artifact_sha256[:12]} in tiny_int8.tflite.edgekit.json). use the "
                   "tiny_int8.tflite.edgekit.ref.npz that `edgekit convert` wrote with it\n")
    code, _, err = cli("verify", packed["int8"], "--reference", pack_path(packed["fp32"]))   # named explicitly
    assert code == 2 and "is the reference pack of another model (tiny_fp32.tflite" in err
    pack_path(artifact).write_bytes(b"PK\x03\x04 not a pack")
    code, _, err = cli("verify", artifact)
    assert code == 2 and "is not the reference pack of tiny_int8.tflite: not a readable reference pack" in err
    pack_path(artifact).unlink()
    code, _, err = cli("verify", artifact)
    assert code == 2 and err.startswith("error: the reference pack ") and "is missing. copy" in err


def test_verify_without_a_pack_or_a_runtime_is_one_line(stream_model, packed):
    code, _, err = cli("verify", stream_model)   # converted with --no-verify: no pack
    assert code == 2 and err == ("error: tiny_int8.tflite has no reference pack: its manifest records none (converted "
                                 "with --no-verify or --reference-mb 0, or by an edgekit before packs). convert the "
                                 "model again: edgekit convert ... writes tiny_int8.tflite.edgekit.ref.npz\n")
    code, _, err = cli("verify", packed["fp32"], "--backend", "edgetpu")
    assert code == 2 and len(err.splitlines()) == 1 and "cannot run tiny_fp32.tflite: needs libedgetpu" in err


def _coreml_artifact(keras_file: Path, out: Path) -> Path:
    """The tiny Keras classifier as a Core ML fp32 artifact with its manifest and pack."""
    from edgekit.convert import ConvertRequest, convert
    from edgekit.targets.base import TARGETS

    reason = TARGETS.get("coreml").unavailable_reason()
    if reason:
        pytest.skip(reason)
    result = convert(str(keras_file), ConvertRequest(targets=["coreml"], precisions=["fp32"], out_dir=out,
                                                     mean=[127.5], std=[127.5], task="classification", name="tiny",
                                                     verify_samples=8))
    assert result.artifacts[0].verify.status == "structure-only"   # numerics need macOS; the pack travels there
    return Path(result.artifacts[0].path)


@pytest.mark.skipif(sys.platform == "darwin", reason="Core ML runs on macOS: the answer is a parity report there")
def test_coreml_verify_on_linux_says_needs_macos(keras_file, tmp_path):
    artifact = _coreml_artifact(keras_file, tmp_path)
    pack = load_reference(artifact, read_manifest(artifact))
    assert pack.samples == 8 and pack.inputs[0].dtype == np.float32 and pack.meta["target"] == "coreml"
    code, out, err = cli("verify", artifact)
    assert code == 2 and out == ""
    assert err.splitlines() == [
        "error: this host (Linux x86_64) cannot run tiny_fp32.mlpackage: Core ML prediction needs macOS. run "
        "`edgekit verify` where its runtime is; copy the artifact with its tiny_fp32.mlpackage.edgekit.json and "
        "tiny_fp32.mlpackage.edgekit.ref.npz"]


@pytest.mark.skipif(sys.platform == "darwin", reason="Core ML runs on macOS: the answer is a parity report there")
def test_verify_of_several_skips_the_one_this_host_cannot_run(keras_file, packed, tmp_path):
    """`edgekit verify out/*` on Linux: the .tflite is verified, the .mlpackage reported as not run
    here with its reason, and the exit is 1 (not everything was verified), not 2."""
    coreml = _coreml_artifact(keras_file, tmp_path / "coreml")
    folder = tmp_path / "out"   # what a user copies: every artifact with its manifest and pack
    _copy(packed["fp32"], folder)
    for path in (coreml, manifest_path(coreml), pack_path(coreml)):
        (shutil.copytree if path.is_dir() else shutil.copy)(path, folder / path.name)
    everything = sorted(folder.iterdir())   # `out/*`: manifests and packs come along
    assert len(everything) == 6
    for given in ([packed["fp32"], coreml], everything, [folder]):
        code, out, err = cli("verify", *given, "--json")
        report = json.loads(out)
        checks = {Path(a["artifact"]).name: a["verify"] for a in report["artifacts"]}
        assert code == 1 and {name: v["status"] for name, v in checks.items()} == {
            "tiny_fp32.tflite": "pass", "tiny_fp32.mlpackage": "skipped"}, err
        assert (report["passed"], report["failed"], report["skipped"]) == (1, 0, 1)
        assert "Core ML prediction needs macOS" in checks["tiny_fp32.mlpackage"]["notes"][0]
        assert err.splitlines() == ["error: not verified on this host: tiny_fp32.mlpackage. run those on a host with "
                                    "their runtime (see the notes above)"]


# ------------------------------------------------------------------ on the board

@pytest.fixture(scope="module")
def board(tmp_path_factory):
    if sshd_helper.unavailable_reason():
        pytest.skip(sshd_helper.unavailable_reason())
    key = sshd_helper.keygen(tmp_path_factory.mktemp("proof-client") / "id_ed25519")
    instance = Board(tmp_path_factory.mktemp("proof-board"), key).start()
    yield instance
    instance.server.stop()


def _disagreeing(artifact: Path, folder: Path) -> Path:
    """The artifact with a pack whose source outputs it does not reproduce (noise of 5 % of their
    spread: cosine about 0.999, under fp32's 0.9999), recorded in its manifest like any pack: what
    a board whose runtime computes differently from the host's would see."""
    copy = _copy(artifact, folder)
    manifest = read_manifest(copy)
    meta, inputs, expected = parity.read_pack(str(pack_path(copy)))
    noise = np.random.default_rng(0).normal(0, 0.05 * expected[0].std(), expected[0].shape)
    parity.write_pack(str(pack_path(copy)), meta, inputs, [expected[0] + noise.astype(np.float32)])
    from edgekit.fsutil import sha256_of

    manifest.reference = ReferenceInfo(pack_path(copy).name, sha256_of(pack_path(copy)), len(inputs[0]),
                                       pack_path(copy).stat().st_size)
    manifest_path(copy).write_text(manifest.to_json())
    return copy


def test_remote_verify_runs_the_pack_on_the_board_and_records_it(board, packed):
    code, out, err = cli("deploy", packed["int8"], "--host", board.target, *board.options(), "--name", "proof", "--json")
    assert code == 0, err
    version = json.loads(out)["version"]
    bundled = board.model_dir("proof") / version
    assert (bundled / "tiny_int8.tflite.edgekit.ref.npz").read_bytes() == pack_path(packed["int8"]).read_bytes()
    assert (bundled / "parity.py").read_bytes() == Path(parity.__file__).read_bytes()   # vendored verbatim
    assert json.loads((bundled / "bundle.json").read_text())["reference"] == "tiny_int8.tflite.edgekit.ref.npz"

    code, out, err = cli("remote", "verify", board.target, *board.options(), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert (report["status"], report["runtime"], report["device"], report["version"]) == ("pass", "litert", "cpu", version)
    assert report["samples"] == 24 and report["gate"] == parity.gate_limits("int8", True) and report["notes"] == []
    # the board's LiteRT on the pack's inputs: the same numbers as this host's own verify and the raw interpreter
    host = json.loads(cli("verify", packed["int8"], "--json")[1])["artifacts"][0]["verify"]["outputs"][0]
    for key in ("cosine", "max_abs_error", "top1_agreement", "top1_agreement_decisive", "decisive_samples"):
        assert report["outputs"][0][key] == pytest.approx(host[key], abs=1e-9), key
    pack = load_reference(packed["int8"], read_manifest(packed["int8"]))
    raw = _interpreter_outputs(packed["int8"], pack.inputs[0])
    assert report["outputs"][0]["max_abs_error"] == pytest.approx(float(np.abs(raw - pack.expected[0]).max()), abs=1e-5)
    assert report["at_conversion"]["status"] == "pass"

    code, out, err = cli("remote", "verify", board.target, *board.options())
    assert code == 0 and "reference pack rerun on" in out and "litert" in out and "pass" in out
    code, out, err = cli("remote", "status", board.target, *board.options(), "--name", "proof", "--json")
    assert code == 0, err
    events = json.loads(out)["history"]
    assert [e["event"] for e in events] == ["deploy", "verify", "verify"]
    assert events[1]["version"] == version and events[1]["verify"]["status"] == "pass"
    assert events[1]["verify"]["cosine"] == pytest.approx(report["outputs"][0]["cosine"])
    code, out, err = cli("remote", "status", board.target, *board.options(), "--name", "proof")
    assert code == 0 and "deploy history" in out and "pack pass on litert" in out


def test_deploy_verify_on_device_switches_only_when_the_pack_passes(board, packed, tmp_path):
    options = [*board.options(), "--name", "gated", "--verify-on-device", "--json"]
    code, out, err = cli("deploy", packed["fp32"], "--host", board.target, *options)
    assert code == 0, err
    good = json.loads(out)["results"][0]
    assert good["status"] == "ok" and good["verify"]["status"] == "pass" and good["current"] == good["version"]
    assert board.current("gated") == good["version"]

    bad = _disagreeing(packed["fp32"], tmp_path / "bad")
    code, _, err = cli("verify", bad)                       # this host's verdict on the same pack...
    assert code == 1 and "verify failed for tiny_fp32.tflite" in err
    code, out, err = cli("deploy", bad, "--host", board.target, *options)
    assert code == 1, err                                   # ...is the board's: the version never becomes current
    result = json.loads(out)["results"][0]
    assert result["status"] == "failed" and result["verify"]["status"] == "fail"
    assert result["current"] == good["version"] and board.current("gated") == good["version"]
    assert not (board.model_dir("gated") / result["version"]).exists()   # the failed version is not kept
    cosine = result["verify"]["outputs"][0]["cosine"]
    assert cosine < 0.9999
    output = result["verify"]["outputs"][0]["name"]
    assert err == (f"error: {board.target}: version {result['version']} failed its reference pack on litert "
                   f"({output}: cosine {cosine:.5f} < 0.9999); {good['version']} stays current\n")

    code, out, err = cli("deploy", bad, "--host", board.target, *options[:-1])   # the table says it too
    assert code == 1 and "FAIL" in out and f"{good['version']} stays current" in err, (out, err)
    events = json.loads(cli("remote", "status", board.target, *board.options(), "--name", "gated", "--json")[1])["history"]
    assert [(e["event"], e["switched"], e["verify"]["status"]) for e in events] == [
        ("deploy", True, "pass"), ("deploy", False, "fail"), ("deploy", False, "fail")]

    code, out, err = cli("deploy", packed["fp32"], "--host", board.target, *options)   # the good one again: unchanged
    assert code == 0, err
    again = json.loads(out)["results"][0]
    assert again["unchanged"] and again["verify"]["status"] == "pass" and board.current("gated") == good["version"]


def test_verify_on_device_needs_a_pack_before_anything_is_sent(board, stream_model):
    code, _, err = cli("deploy", stream_model, "--host", board.target, *board.options(), "--name", "nopack",
                       "--verify-on-device")
    assert code == 2 and "tiny_int8.tflite has no reference pack" in err and len(err.splitlines()) == 1
    assert not board.model_dir("nopack").exists()
    code, _, err = cli("remote", "verify", board.target, *board.options(), "--name", "nopack")
    assert code == 2 and "no deployed bundle at" in err


def test_a_compiled_edgetpu_model_ships_its_int8_models_manifest_and_pack(packed, compiled_lookalike, tmp_path, board):
    """edgetpu_compiler keeps the int8 model's input and output tensors, so the model convert
    compiled beside it travels with that model's manifest and reference pack (the manifest's
    `edgetpu.compiled` names it): `remote verify` then compares the Edge TPU with the source."""
    from dataclasses import asdict

    from edgekit.deploy.bundle import build_bundle
    from edgekit.edgetpu.report import EdgeTPUReport
    from edgekit.manifest import EdgeTPUCompiled, EdgeTPUInfo

    ready = _copy(packed["int8"], tmp_path / "out")
    compiled = ready.with_name("tiny_int8_edgetpu.tflite")
    shutil.copy(compiled_lookalike, compiled)
    manifest = json.loads(manifest_path(ready).read_text())
    manifest["edgetpu"] = asdict(EdgeTPUInfo(
        predicted=EdgeTPUReport("predicted", ready.name),
        compiled=EdgeTPUCompiled(artifact=compiled.name, compiler="edgetpu_compiler", compiler_version="16.0",
                                 min_runtime_version=14, report=EdgeTPUReport("compiler", compiled.name))))
    manifest_path(ready).write_text(json.dumps(manifest))
    bundle = build_bundle(compiled, need_reference=True)
    files = {f.name: f for f in bundle.files}
    assert bundle.model == compiled.name and bundle.edgetpu and bundle.min_runtime_version == 14
    assert files["tiny_int8.tflite.edgekit.ref.npz"].sha256 == read_manifest(ready).reference.sha256
    info = json.loads(files["bundle.json"].data)
    assert (info["manifest"], info["reference"]) == ("tiny_int8.tflite.edgekit.json", "tiny_int8.tflite.edgekit.ref.npz")
    assert info["frames"] is not None   # `remote run` preprocesses frames for it too
    # this board has no Edge TPU: refused before anything is sent, as for any Edge TPU model
    code, _, err = cli("deploy", compiled, "--host", board.target, *board.options(), "--name", "tpu",
                       "--verify-on-device")
    assert code == 2 and "libedgetpu is not installed" in err and not board.model_dir("tpu").exists()
