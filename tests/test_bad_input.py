"""Bad input: one clear line on stderr (`error: ...`), exit code 2, and nothing half-written in -o.

Most cases run the CLI in-process (conftest's `run_cli`); damaged model files and Ctrl-C run a real
`python -m edgekit` process, because there a native crash, a hang or a signal is what is tested.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

TIMEOUT = 120                 # seconds a bad-input subprocess may take before it counts as a hang
SEED = 1234
SIZE = 32                     # conftest's model input size
CUTS = {                      # where a model file is cut: name -> bytes kept, from the full size
    "16-bytes": lambda n: 16,
    "25pct": lambda n: n // 4,
    "50pct": lambda n: n // 2,
    "90pct": lambda n: n * 9 // 10,
}
MANIFEST = ".edgekit.json"
PACK = ".edgekit.ref.npz"   # the reference pack, published with its artifact, before the manifest
STAGING = ".edgekit-staging-*"


# ---------------------------------------------------------------- helpers


def assert_one_line_error(code: int, stderr: str, pattern: str) -> str:
    """Exit 2; stderr is `warning:` lines (and, stderr not being a terminal, the `progress:` lines
    of steps that had started) then exactly one `error: ` line matching `pattern`."""
    assert "Traceback" not in stderr, f"traceback on stderr:\n{stderr}"
    assert code == 2, f"exit code {code}, expected 2; stderr:\n{stderr}"
    lines = stderr.rstrip("\n").split("\n")
    *before, last = lines
    assert all(line.startswith(("warning:", "progress:")) for line in before), \
        f"stderr is not one error line:\n{stderr}"
    assert last.startswith("error: "), f"last stderr line is not 'error: ...':\n{stderr}"
    assert re.search(pattern, last, re.IGNORECASE), f"{pattern!r} not found in: {last}"
    return last


def assert_nothing_written(out_dir: Path) -> None:
    """No artifact, no manifest, no staging directory: -o is missing or empty."""
    if out_dir.exists():
        left = sorted(p.name for p in out_dir.iterdir())
        assert not left, f"bad input left files in {out_dir}: {left}"


def assert_no_partial_artifacts(out_dir: Path) -> None:
    """What an interrupted run may leave: only complete artifacts, each with a parseable manifest."""
    if not out_dir.exists():
        return
    from edgekit.formats import companion_files, sniff

    entries = {p.name: p for p in out_dir.iterdir()}
    assert not list(out_dir.glob(STAGING)), f"staging left in {out_dir}: {sorted(entries)}"
    companions = companion_files([p for name, p in entries.items() if not name.endswith(MANIFEST)])
    for name, path in entries.items():
        if name.endswith(PACK):
            assert name.removesuffix(PACK) + MANIFEST in entries, f"reference pack {name} without its manifest"
        elif name.endswith(MANIFEST):
            json.loads(path.read_text())                 # a torn manifest fails here
            assert name.removesuffix(MANIFEST) in entries, f"manifest {name} without its artifact"
        elif path not in companions:                     # e.g. OpenVINO weights belong to their .xml
            assert name + MANIFEST in entries, f"artifact {name} without its manifest"
            for companion in sniff(path).companions(path):
                assert companion.exists(), f"{name} without its {companion.name}"


def run_process(*args, timeout: float = TIMEOUT, cwd: Path | None = None) -> tuple[int, str, str]:
    """`python -m edgekit ARGS` in a child: must exit by itself (no hang) and not die of a signal."""
    command = [sys.executable, "-m", "edgekit", *map(str, args)]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=cwd,
                              stdin=subprocess.DEVNULL, env=dict(os.environ))
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(command)} hung for more than {timeout} s")
    assert proc.returncode >= 0, f"killed by signal {-proc.returncode}; stderr:\n{proc.stderr}"
    return proc.returncode, proc.stdout, proc.stderr


def random_bytes(size: int = 4096) -> bytes:
    return np.random.default_rng(SEED).integers(0, 256, size, dtype=np.uint8).tobytes()


def write_pngs(folder: Path, images: list[np.ndarray]) -> Path:
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(images):
        assert cv2.imwrite(str(folder / f"{index:02d}.png"), image)
    return folder


def rng_pixels(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.fixture()
def out_dir(tmp_path) -> Path:
    return tmp_path / "out"


@pytest.fixture()
def convert_fails(run_cli, out_dir):
    """Run `edgekit convert ARGS -o out_dir`, assert the one-line error and an untouched out_dir."""

    def run(pattern: str, *args) -> str:
        code, _, stderr = run_cli("convert", *args, "-o", out_dir)
        line = assert_one_line_error(code, stderr, pattern)
        assert_nothing_written(out_dir)
        return line

    return run


# ---------------------------------------------------------------- the model path


def test_nonexistent_path(convert_fails, tmp_path):
    convert_fails(r"no such file or directory.*check the path", tmp_path / "nope" / "model.onnx", "--to", "tflite")


@pytest.mark.parametrize("name", ["model.onnx", "model.tflite"])
def test_empty_file(convert_fails, tmp_path, name):
    model = tmp_path / name
    model.write_bytes(b"")
    convert_fails(rf"{re.escape(name)} is empty \(0 bytes\)", model, "--to", "openvino")


@pytest.mark.parametrize("cut", list(CUTS), ids=list(CUTS))
@pytest.mark.parametrize("fixture, suffix, pattern", [
    ("tflite_float_file", ".tflite", r"cut\.tflite is truncated or corrupt"),
    ("onnx_file", ".onnx", r"cut\.onnx (is not a valid ONNX model \(truncated or corrupt"
                           r"|parses as protobuf but holds no ONNX graph|fails the ONNX checker)"),
], ids=["tflite", "onnx"])
def test_truncated_model_exits_cleanly(request, tmp_path, fixture, suffix, pattern, cut):
    data = request.getfixturevalue(fixture).read_bytes()
    model = tmp_path / f"cut{suffix}"
    model.write_bytes(data[:CUTS[cut](len(data))])
    out = tmp_path / "out"
    code, _, stderr = run_process("convert", model, "--to", "openvino", "-o", out, cwd=tmp_path)
    assert_one_line_error(code, stderr, pattern)
    assert_nothing_written(out)


@pytest.mark.parametrize("suffix", [".tflite", ".onnx", ".pt", ".keras", ".h5"])
def test_random_bytes(convert_fails, tmp_path, suffix):
    model = tmp_path / f"noise{suffix}"
    model.write_bytes(random_bytes())
    convert_fails(rf"noise{re.escape(suffix)} is not a model edgekit recognises \(suffix '{re.escape(suffix)}'.*"
                  r"accepted: Keras", model, "--to", "openvino")


def test_jpeg_renamed_onnx(convert_fails, tmp_path):
    import cv2

    ok, encoded = cv2.imencode(".jpg", rng_pixels((48, 64, 3), SEED))
    assert ok
    model = tmp_path / "photo.onnx"
    model.write_bytes(encoded.tobytes())
    convert_fails(r"photo\.onnx is a JPEG image, not a model", model, "--to", "tflite")


def test_directory_that_is_not_a_savedmodel(convert_fails, tmp_path):
    folder = tmp_path / "not_a_model"
    folder.mkdir()
    (folder / "readme.txt").write_text("weights live elsewhere\n")
    convert_fails(r"not_a_model is a directory without saved_model\.pb.*SavedModel directory", folder,
                  "--to", "tflite")


def test_torch_state_dict(convert_fails, torch_module, tmp_path):
    import torch

    weights = tmp_path / "w.pt"
    torch.save(torch_module.state_dict(), weights)
    convert_fails(r"w\.pt is a PyTorch checkpoint.*not a self-contained model.*torch\.jit", weights,
                  "--to", "onnx", "--input-size", SIZE)


# ---------------------------------------------------------------- options


@pytest.mark.parametrize("given, suggestion", [("tflit", "tflite"), ("openvno", "openvino"), ("tflite,onnnx", "onnx"),
                                               ("banana", None)])
def test_unknown_target(convert_fails, onnx_file, given, suggestion):
    bad = given.split(",")[-1]
    suggest = rf".*did you mean '{suggestion}'\?" if suggestion else r"(?!.*did you mean)"
    convert_fails(rf"unknown target '{bad}'{suggest}.*valid targets: coreml, edgetpu, onnx, openvino, tflite$", onnx_file,
                  "--to", given)


@pytest.mark.parametrize("target, precision, offered", [
    ("onnx", "fp16", "fp32, int8"),
    ("openvino", "dynamic", "fp32, fp16, int8"),
])
def test_precision_the_target_lacks(convert_fails, onnx_file, target, precision, offered):
    convert_fails(rf"target '{target}'.*precision '{precision}'.*offers: {offered}", onnx_file,
                  "--to", target, "--precision", precision)


def test_int8_without_calibration(convert_fails, onnx_file):
    convert_fails(r"int8 needs calibration data.*range.*--calib synthetic", onnx_file,
                  "--to", "openvino", "--precision", "int8")


def test_input_size_garbage(run_cli, onnx_file, out_dir):
    code, _, stderr = run_cli("convert", onnx_file, "--to", "tflite", "--input-size", "abc", "-o", out_dir)
    assert "Traceback" not in stderr
    assert code == 2, stderr
    assert re.search(r"Invalid value for '--input-size'.*'abc' is not HEIGHT,WIDTH", stderr), stderr
    assert_nothing_written(out_dir)


def test_input_size_that_contradicts_a_static_model(convert_fails, onnx_file):
    convert_fails(rf"--input-size 24,24 contradicts onnx model .*tiny\.onnx, whose input is {SIZE}x{SIZE}\. "
                  rf"drop --input-size or pass --input-size {SIZE},{SIZE}$", onnx_file, "--to", "onnx",
                  "--input-size", "24")


def test_missing_optional_dependency(convert_fails, onnx_file, monkeypatch):
    import edgekit.deps

    real_find_spec = edgekit.deps.importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name == "openvino" or name.startswith("openvino."):
            return None
        return real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(edgekit.deps.importlib.util, "find_spec", find_spec)
    convert_fails(r"openvino.*(not installed|unavailable).*pip install 'edgekit-vision\[openvino\]'", onnx_file,
                  "--to", "openvino")


# ---------------------------------------------------------------- calibration data


def _calib_rgba(tmp_path: Path) -> str:
    return str(write_pngs(tmp_path / "rgba", [rng_pixels((40, 40, 4), i) for i in range(4)]))


def _calib_gray(tmp_path: Path) -> str:
    return str(write_pngs(tmp_path / "gray", [rng_pixels((40, 40), i) for i in range(4)]))


def _calib_empty(tmp_path: Path) -> str:
    (tmp_path / "empty").mkdir()
    return str(tmp_path / "empty")


def _calib_missing(tmp_path: Path) -> str:
    return str(tmp_path / "no_such_photos")


def _calib_npy_4_channels(tmp_path: Path) -> str:
    np.save(tmp_path / "calib.npy", rng_pixels((8, SIZE, SIZE, 4), SEED))
    return str(tmp_path / "calib.npy")


def _calib_npy_float_wrong_size(tmp_path: Path) -> str:
    np.save(tmp_path / "calib.npy", np.zeros((8, 3, SIZE // 2, SIZE // 2), np.float32))
    return str(tmp_path / "calib.npy")


@pytest.mark.parametrize("make, pattern", [
    (_calib_rgba, r"calibration image .*\.png has 4 channel.*takes 3.*drop alpha"),
    (_calib_gray, r"calibration image .*\.png has 1 channel.*takes 3"),
    (_calib_empty, r"calibration folder .*empty has no images"),
    (_calib_missing, r"calibration data .*no_such_photos does not exist.*synthetic"),
    (_calib_npy_4_channels, r"calib\.npy has shape \(8, 32, 32, 4\).*expected N x H x W x 3"),
    (_calib_npy_float_wrong_size, r"calib\.npy holds float samples of size \(16, 16\).*takes \(32, 32\)"),
], ids=["rgba-png", "grayscale-png", "empty-folder", "nonexistent", "npy-4-channels", "npy-float-wrong-size"])
def test_bad_calibration_data(convert_fails, onnx_file, tmp_path, make, pattern):
    convert_fails(pattern, onnx_file, "--to", "openvino", "--precision", "int8", "--calib", make(tmp_path))


# ---------------------------------------------------------------- inspect


def _inspect_missing(tmp_path: Path, onnx_file: Path) -> Path:
    return tmp_path / "gone.tflite"


def _inspect_noise(tmp_path: Path, onnx_file: Path) -> Path:
    (tmp_path / "noise.tflite").write_bytes(random_bytes())
    return tmp_path / "noise.tflite"


def _inspect_truncated_onnx(tmp_path: Path, onnx_file: Path) -> Path:
    data = onnx_file.read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 2])
    return tmp_path / "cut.onnx"


@pytest.mark.parametrize("make, pattern", [
    (_inspect_missing, r"gone\.tflite: no such file or directory"),
    (_inspect_noise, r"noise\.tflite is not a model edgekit recognises \(suffix '\.tflite'"),
    (_inspect_truncated_onnx, r"cut\.onnx is not a valid ONNX model \(truncated or corrupt"),
], ids=["nonexistent", "random-bytes-tflite", "truncated-onnx"])
def test_inspect_bad_artifact(run_cli, onnx_file, tmp_path, make, pattern):
    code, stdout, stderr = run_cli("inspect", make(tmp_path, onnx_file))
    assert_one_line_error(code, stderr, pattern)
    assert not stdout.strip(), f"a failed inspect printed a report:\n{stdout}"


# ---------------------------------------------------------------- Ctrl-C


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("moment", [STAGING, "*" + MANIFEST], ids=["once-staging", "after-first-artifact"])
def test_ctrl_c_leaves_no_partial_artifact(onnx_file, photos_dir, tmp_path, moment):
    """SIGINT to the whole process group, as a terminal's Ctrl-C sends it (converter children too),
    once the run has staged something, or once it has published its first artifact."""
    out = tmp_path / "out"
    command = [sys.executable, "-m", "edgekit", "convert", str(onnx_file), "--to", "tflite,openvino",
               "--precision", "fp32,int8", "--calib", str(photos_dir), "-o", str(out)]
    log = tmp_path / "stderr.txt"
    with open(log, "w") as err:   # a file, not a pipe: a chatty converter can never block on a full pipe
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, cwd=tmp_path,
                                stdin=subprocess.DEVNULL, env=dict(os.environ), start_new_session=True)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not list(out.glob(moment)):
            assert proc.poll() is None, f"convert ended (exit {proc.returncode}) before {moment} appeared"
            assert time.monotonic() < deadline, f"no {moment} in {out} after {TIMEOUT} s"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"convert did not stop within {TIMEOUT} s of SIGINT")
        deadline = time.monotonic() + 10
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _group_alive(proc.pid), "a converter child outlived the interrupted convert"
    finally:
        if _group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    stderr = log.read_text()
    assert "Traceback" not in stderr, stderr
    assert_no_partial_artifacts(out)
    assert proc.returncode in (130, 2), f"exit code {proc.returncode} after SIGINT; stderr:\n{stderr}"
    assert re.search(r"interrupted", stderr.strip().splitlines()[-1], re.IGNORECASE), stderr
