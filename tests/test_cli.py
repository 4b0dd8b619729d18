"""The CLI surface: --json on every command, inspect, doctor, help, lazy imports."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from edgekit.targets.base import TARGETS


def test_help_lists_commands_with_examples(run_cli):
    code, out, _ = run_cli("--help")
    assert code == 0
    for command in ("convert", "inspect", "doctor", "demo"):
        assert command in out
    code, out, _ = run_cli("convert", "--help")
    assert code == 0 and "Examples:" in out and "--calib" in out and "--json" in out


def test_cli_start_imports_no_framework():
    """`edgekit --help` stays fast because frameworks are imported only where used."""
    code = ("import sys; from edgekit.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('tensorflow', 'torch', 'openvino', 'coremltools', 'onnx', 'onnxruntime', 'cv2', 'nncf')"
            " if m in sys.modules]\nprint('HEAVY=' + ','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "HEAVY="


def test_convert_json_schema(run_cli, onnx_file, photos_dir, tmp_path):
    code, out, err = run_cli("convert", onnx_file, "--to", "onnx", "--precision", "fp32,int8", "--calib", photos_dir,
                             "--calib-samples", "24", "--mean", "127.5", "--std", "127.5", "-o", tmp_path, "--json")
    assert code == 0, err
    artifacts = json.loads(out)
    assert [a["precision"] for a in artifacts] == ["fp32", "int8"]
    for artifact in artifacts:
        assert {"target", "precision", "path", "size_bytes", "route", "verify"} <= set(artifact)
        assert {"status", "cosine", "max_abs_error", "top1_agreement"} <= set(artifact["verify"])
        assert artifact["verify"]["status"] == "pass" and artifact["size_bytes"] > 0


def test_upstream_converter_failure_exits_1_with_one_line(run_cli, tmp_path):
    """torch.onnx.export has no ONNX kernel for SVD: the converter failed on a model edgekit
    accepted, a runtime failure (exit 1), not bad input (exit 2); nothing is left in -o."""
    torch = pytest.importorskip("torch")

    class Svd(torch.nn.Module):
        def forward(self, x):
            return torch.linalg.svd(x.mean(dim=1))[1]

    model = tmp_path / "svd.pt"
    torch.jit.save(torch.jit.script(Svd().eval()), str(model))
    code, out, err = run_cli("convert", model, "--to", "onnx", "--input-size", "8", "-o", tmp_path / "out",
                             "--mean", "0", "--std", "255", "--task", "other", "--no-verify")
    assert code == 1 and out == ""
    assert [line for line in err.strip().splitlines() if not line.startswith("warning:")] == [
        "error: torch.onnx.export failed: UnsupportedOperatorError: Exporting the operator 'aten::linalg_svd' to "
        "ONNX opset version 17 is not supported. check that the model exports with torch.onnx.export on its own"]
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_verify_failure_exits_nonzero_with_table(run_cli, onnx_file, tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("edgekit.verify", fromlist=["GATES"]).GATES, "fp32", {"cosine": 1.01})
    code, out, err = run_cli("convert", onnx_file, "--to", "onnx", "-o", tmp_path, "--mean", "0", "--std", "255")
    assert code == 1
    assert "FAIL" in out and "tiny_fp32.onnx" in out
    assert "verify gate failed for tiny_fp32.onnx" in err
    code, _, _ = run_cli("convert", onnx_file, "--to", "onnx", "-o", tmp_path / "b", "--no-verify")
    assert code == 0


def test_inspect_tflite_shows_quantization_ops_and_manifest(run_cli, onnx_file, photos_dir, tmp_path):
    if TARGETS.get("tflite").unavailable_reason():
        pytest.skip(TARGETS.get("tflite").unavailable_reason())
    code, _, err = run_cli("convert", onnx_file, "--to", "tflite", "--precision", "int8", "--calib", photos_dir,
                           "--calib-samples", "16", "--mean", "127.5", "--std", "127.5", "-o", tmp_path)
    assert code == 0, err
    code, out, _ = run_cli("inspect", tmp_path / "tiny_int8.tflite", "--json")
    report = json.loads(out)
    assert report["format"] == "tflite" and report["size_bytes"] > 0
    assert report["inputs"][0]["dtype"] == "uint8" and report["inputs"][0]["quantization"]["scale"]
    assert report["ops"].get("CONV_2D") == 2 and report["details"]["fully integer"] is True
    assert report["manifest"]["precision"] == "int8" and report["manifest"]["verify"]["status"] == "pass"
    code, out, _ = run_cli("inspect", tmp_path / "tiny_int8.tflite")
    assert code == 0 and "CONV_2D" in out and "manifest" in out


@pytest.mark.parametrize("target, suffix", [("onnx", "onnx"), ("openvino", "xml")])
def test_inspect_other_formats(run_cli, onnx_file, tmp_path, target, suffix):
    if TARGETS.get(target).unavailable_reason():
        pytest.skip(TARGETS.get(target).unavailable_reason())
    code, _, err = run_cli("convert", onnx_file, "--to", target, "-o", tmp_path, "--mean", "0", "--std", "255")
    assert code == 0, err
    code, out, _ = run_cli("inspect", tmp_path / f"tiny_fp32.{suffix}", "--json")
    report = json.loads(out)
    assert report["inputs"][0]["shape"] == [1, 3, 32, 32] and report["ops"]
    assert report["manifest"]["target"] == target


def test_doctor_reports_targets_runtimes_and_route_matrix(run_cli):
    code, out, _ = run_cli("doctor", "--json")
    assert code == 0
    report = json.loads(out)
    assert {t["name"] for t in report["targets"]} == set(TARGETS.names())
    assert {"litert", "openvino", "onnxruntime", "coreml"} <= {r["name"] for r in report["runtimes"]}
    routes = report["routes"]
    assert routes["torch"]["tflite"] == "torch → onnx → savedmodel → tflite"
    assert routes["tflite"]["coreml"] == "tflite → onnx → savedmodel → coreml"
    assert not any(route.startswith("refused") for row in routes.values() for route in row.values())
    assert "edgetpu_compiler" in report["tools"]
    code, out, _ = run_cli("doctor")
    assert code == 0 and "routes" in out


def test_doctor_says_edge_tpu_without_compiler_is_not_ready(run_cli, monkeypatch, tmp_path):
    """Without edgetpu_compiler, the Edge TPU target makes the int8 model and the offline report
    only: doctor says so, never "ready"."""
    from edgekit.edgetpu.compiler import find_compiler

    monkeypatch.delenv("EDGEKIT_EDGETPU_COMPILER", raising=False)
    if find_compiler():
        pytest.skip("edgetpu_compiler is installed here")
    limited = "int8 + offline report; compile needs edgetpu_compiler"
    code, out, _ = run_cli("doctor", "--json")
    (edgetpu,) = [t for t in json.loads(out)["targets"] if t["name"] == "edgetpu"]
    assert code == 0 and edgetpu["status"] == "limited" and edgetpu["limited"] == limited
    code, out, _ = run_cli("doctor")
    (row,) = [line for line in out.splitlines() if line.split("│")[1:2] == [" edgetpu  "]]
    assert limited in row and "ready" not in row
    monkeypatch.setenv("EDGEKIT_EDGETPU_COMPILER", str(tmp_path / "missing"))   # configured, but wrong
    code, out, _ = run_cli("doctor", "--json")
    (edgetpu,) = [t for t in json.loads(out)["targets"] if t["name"] == "edgetpu"]
    assert edgetpu["status"] == "limited" and "is not an executable file" in edgetpu["limited"]


def test_long_steps_print_start_and_end_lines_in_logs(run_cli, onnx_file, photos_dir, tmp_path, monkeypatch):
    """stderr is not a terminal here (as in CI): each long step says when it starts and ends.
    These steps are short, so EDGEKIT_PROGRESS_AFTER=0 announces every one."""
    import re

    monkeypatch.setenv("EDGEKIT_PROGRESS_AFTER", "0")
    code, out, err = run_cli("convert", onnx_file, "--to", "onnx", "--precision", "int8", "--calib", photos_dir,
                             "--calib-samples", "16", "--mean", "127.5", "--std", "127.5", "-o", tmp_path, "--json")
    assert code == 0, err
    json.loads(out)   # stdout stays the JSON alone
    lines = [line for line in err.splitlines() if line.startswith("progress: ")]
    for step in ("calibration images", "onnx int8", r"onnx int8 conversion \(onnx → onnx\)", "onnx int8 verify"):
        assert any(re.fullmatch(f"progress: {step} started", line) for line in lines), (step, lines)
        assert any(re.fullmatch(rf"progress: {step} done in \d+\.\d s", line) for line in lines), (step, lines)


def test_short_steps_stay_silent_in_logs(run_cli, onnx_file, photos_dir, tmp_path, monkeypatch):
    """A step is announced only once it has run EDGEKIT_PROGRESS_AFTER seconds (default 1): a
    bench on a tiny model shorter than that prints no `progress:` lines around its JSON, and its
    steps were real (the run took place). The threshold is raised here because each bench row
    runs in its own process, which alone can take a second to start on a loaded 2-core host."""
    monkeypatch.setenv("EDGEKIT_PROGRESS_AFTER", "120")
    code, out, err = run_cli("bench", onnx_file, "--runs", "3", "--warmup", "0", "--json")
    assert code == 0, err
    assert json.loads(out) and not [line for line in err.splitlines() if line.startswith("progress: ")], err


def test_verify_on_few_samples_warns_with_the_counts(run_cli, onnx_file, photos_dir, tmp_path):
    """6 verify images: the verdict stands, but a warning says it rests on 6 samples (and on
    fewer than 8 decisive ones for top-1). The "also on" column is explained under the table."""
    import shutil

    few = tmp_path / "few"
    few.mkdir()
    for photo in sorted(p for p in photos_dir.rglob("*") if p.is_file())[:6]:
        shutil.copy(photo, few / photo.name)
    args = ("convert", onnx_file, "--to", "onnx", "--precision", "fp32", "--verify-data", few, "--task",
            "classification", "--mean", "127.5", "--std", "127.5")
    code, out, err = run_cli(*args, "-o", tmp_path / "json", "--json")
    assert code == 0, err
    (artifact,) = json.loads(out)
    warned = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert any("verified on only 6 samples (fewer than 16)" in line for line in warned), err
    decisive = [line for line in warned if "decisive samples (fewer than 8" in line]
    assert len(decisive) == 1 and re.search(r"rests on only [0-6] decisive samples", decisive[0])
    assert any(n.startswith("verified on only 6 samples") for n in artifact["verify"]["notes"])
    code, out, err = run_cli(*args, "-o", tmp_path / "table")
    assert code == 0 and "also on: cosine against the source of the same artifact on the other runtimes" in " ".join(
        out.split())
