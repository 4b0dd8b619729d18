"""Multi-target convert runs (issue 13 §5): one target that is refused does not stop the others,
the summary names it with its one-line reason, and the exit code says what happened:

    0  every requested artifact was built and passed its gates
    1  some target was refused or failed, or some gate failed (what was built stays written)
    2  bad input meant nothing could be built (every target refused)

The refusal comes from the real TFLite converter (bicubic resize has no TFLite builtin kernel);
the artifact that was built is checked against Keras with raw ONNX Runtime by the field
oracle (np.testing.assert_allclose), never with edgekit's own verify report.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.field import harness, models, oracle
from tests.field.corpus import BY_NAME, NORM

REFUSAL = (r"TFLite has no builtin kernel for the TensorFlow op ResizeBicubic \(at [\w/]+\)\. use bilinear resize "
           r"\(Keras UpSampling2D/Resizing interpolation='bilinear'\), or convert to onnx")


@pytest.fixture(scope="module")
def bicubic(tmp_path_factory):
    """(the keras_bicubic field model's .keras file, the field data folders)."""
    pytest.importorskip("tensorflow")
    folder = tmp_path_factory.mktemp("bicubic")
    return models.keras_bicubic(folder), harness.prepare_data(folder)


def _convert(model: Path, data: dict, out: Path, targets: str, precisions: str = "fp32"):
    """`edgekit convert --json` in a child process: (exit code, --json records, stderr lines)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "COLUMNS": "100"}
    proc = subprocess.run([sys.executable, "-m", "edgekit", "convert", str(model), "--to", targets, "--precision",
                           precisions, "-o", str(out), "--json", "--verify-data", str(data["photos"]), *NORM],
                          capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=600)
    assert "Traceback" not in proc.stdout + proc.stderr and "unexpected" not in proc.stderr, proc.stderr[-3000:]
    records = json.loads(proc.stdout[proc.stdout.index("["):]) if "[" in proc.stdout else []
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    return proc.returncode, records, errors


def test_a_refused_target_does_not_stop_the_others_and_exits_1(bicubic, tmp_path):
    import re

    model, data = bicubic
    code, records, errors = _convert(model, data, tmp_path / "out", "tflite,onnx")
    assert code == 1
    by_target = {r["target"]: r for r in records}
    refused, built = by_target["tflite"], by_target["onnx"]
    assert refused["status"] == "refused" and refused["error"] == "UnsupportedRouteError"
    assert re.fullmatch(REFUSAL, refused["reason"]), refused["reason"]
    assert built["status"] == "built" and built["verify"]["status"] == "pass"
    assert errors == ["error: 1 artifact(s) built; tflite fp32 refused. see the table; each target's reason is "
                      "its own"], errors   # the reason is in the --json record (and the table) once
    assert not list((tmp_path / "out").glob("*.tflite"))
    # the ONNX model that was built equals Keras on real photos (raw ONNX Runtime, per-channel tolerance)
    oracle.check(BY_NAME["keras_bicubic"], model, Path(built["path"]), "fp32", data)


def test_a_single_refused_target_is_bad_input_exit_2_and_writes_nothing(bicubic, tmp_path):
    import re

    model, data = bicubic
    code, records, errors = _convert(model, data, tmp_path / "out", "tflite")
    assert code == 2 and [(r["target"], r["status"]) for r in records] == [("tflite", "refused")]   # --json lists it
    assert re.fullmatch(REFUSAL, records[0]["reason"])
    assert len(errors) == 1 and re.fullmatch("error: " + REFUSAL, errors[0]), errors
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_every_target_refused_is_exit_2_naming_each(bicubic, tmp_path):
    import re

    model, data = bicubic
    code, records, errors = _convert(model, data, tmp_path / "out", "tflite", "fp32,fp16")
    assert code == 2
    assert [(r["target"], r["precision"], r["status"]) for r in records] == [("tflite", "fp32", "refused"),
                                                                             ("tflite", "fp16", "refused")]
    assert len(errors) == 1 and re.match(r"error: nothing was built: tflite fp32: TFLite has no builtin kernel .*; "
                                         r"tflite fp16: TFLite has no builtin kernel", errors[0]), errors
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
