"""Every subprocess edgekit starts finds its tools through the running interpreter's environment,
never the caller's PATH (issue 13 section 5): `.venv/bin/python -m edgekit` with PATH stripped to
/usr/bin:/bin still converts through onnx2tf, whose worker needs `onnxsim` from the venv's bin/."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig

import pytest

from edgekit.deps import tool_env

from . import models


def test_tool_env_puts_the_interpreters_scripts_first(monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    path = tool_env(EXTRA="1")["PATH"].split(os.pathsep)
    assert path[0] == sysconfig.get_path("scripts")
    assert path[-2:] == ["/usr/bin", "/bin"]
    assert tool_env(EXTRA="1")["EXTRA"] == "1"


@pytest.mark.skipif(shutil.which("onnxsim", path=sysconfig.get_path("scripts")) is None,
                    reason="onnxsim is not installed beside this interpreter (edgekit[torch])")
def test_convert_through_onnx2tf_without_the_venv_on_path(tmp_path):
    pytest.importorskip("onnx2tf")
    model = models.onnx_mul_add(tmp_path)
    env = {**os.environ, "PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"}
    assert shutil.which("onnxsim", path=env["PATH"]) is None
    proc = subprocess.run([sys.executable, "-m", "edgekit", "convert", str(model), "--to", "tflite",
                           "--mean", "0", "--std", "1", "--no-verify",
                           "-o", str(tmp_path / "out")], env=env, capture_output=True, text=True, timeout=900,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-600:]
    assert (tmp_path / "out" / "onnx_mul_add_fp32.tflite").stat().st_size > 0



@pytest.mark.skipif(shutil.which("onnxsim", path=sysconfig.get_path("scripts")) is None,
                    reason="onnxsim is not installed beside this interpreter (edgekit[torch])")
def test_tool_env_finds_scripts_of_packages_imported_from_another_prefix(tmp_path):
    """A venv that imports this environment's packages through a .pth file (as the wheel test's
    venv does, or --system-site-packages) has no onnxsim in its own bin/: the script is found
    through onnxsim's RECORD. The CI wheel demo failed on exactly this."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "outer.pth").write_text(sysconfig.get_paths()["purelib"] + "\n" + os.getcwd() + "\n")
    assert not (venv / "bin" / "onnxsim").exists()
    code = "import shutil; from edgekit.deps import tool_env; print(shutil.which('onnxsim', path=tool_env()['PATH']))"
    done = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-600:]
    assert done.stdout.strip() == shutil.which("onnxsim", path=sysconfig.get_path("scripts"))

def test_onnx_node_names_become_tensorflow_scope_names(tmp_path):
    """onnx2tf names Keras layers after ONNX nodes; tf2onnx names nodes after TFLite tensors, which
    join names with ';'. The bridge renames such nodes before onnx2tf sees them."""
    onnx = pytest.importorskip("onnx")
    from edgekit.bridges.onnx_to_savedmodel import _SCOPE_SAFE, _scope_safe_node_names

    path = models.onnx_mul_add(tmp_path)
    model = onnx.load(str(path))
    names = ["model_1/conv;model_1/bn", "_leading", "conv/BiasAdd", "model_1/conv_model_1/bn"]
    for node, name in zip(model.graph.node, names):
        node.name = name
    onnx.save(model, str(path))
    _scope_safe_node_names(path)
    renamed = [node.name for node in onnx.load(str(path)).graph.node][:4]
    assert all(_SCOPE_SAFE.match(name) for name in renamed)
    assert renamed[2] == "conv/BiasAdd" and len(set(renamed)) == 4
    onnx.checker.check_model(onnx.load(str(path)))
