"""Run tf2onnx in a child process (it imports TensorFlow and may abort on odd graphs)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from ..deps import tool_env
from ..errors import ConversionError

OPSET = 17


def run_tf2onnx(source_args: list[str], output: Path, timeout: float = 1800) -> None:
    cmd = [sys.executable, "-m", "tf2onnx.convert", *source_args, "--output", str(output),
           "--opset", str(OPSET)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                              env=tool_env(TF_CPP_MIN_LOG_LEVEL="3"))
    except subprocess.TimeoutExpired:
        raise ConversionError(f"tf2onnx did not finish in {timeout:.0f} s", "try a smaller model") from None
    if proc.returncode != 0 or not output.exists():
        lines = [l for l in proc.stderr.splitlines() if l.strip()]
        raise ConversionError(f"tf2onnx failed: {lines[-1][:240] if lines else proc.returncode}",
                              "the model uses ops tf2onnx cannot express in ONNX")
    _plain_io_names(output)


def _plain_io_names(path: Path) -> None:
    """TensorFlow names graph inputs like 'serving_default_input_0:0'; onnx2tf mangles ':' and
    '/' and then cannot match them to its keep-layout options. Use plain identifiers."""
    import onnx

    model = onnx.load(str(path))
    renames = {}
    for value in [*model.graph.input, *model.graph.output]:
        clean = re.sub(r"\W", "_", value.name).strip("_") or "tensor"
        if clean != value.name:
            renames[value.name] = clean
            value.name = clean
    if not renames:
        return
    for node in model.graph.node:
        node.input[:] = [renames.get(name, name) for name in node.input]
        node.output[:] = [renames.get(name, name) for name in node.output]
    onnx.save(model, str(path))
