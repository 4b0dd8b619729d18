"""Run tf2onnx in a child process (it imports TensorFlow and may abort on odd graphs)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ..errors import ConversionError

OPSET = 17


def run_tf2onnx(source_args: list[str], output: Path, timeout: float = 1800) -> None:
    cmd = [sys.executable, "-m", "tf2onnx.convert", *source_args, "--output", str(output),
           "--opset", str(OPSET)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    except subprocess.TimeoutExpired:
        raise ConversionError(f"tf2onnx did not finish in {timeout:.0f} s", "try a smaller model") from None
    if proc.returncode != 0 or not output.exists():
        lines = [l for l in proc.stderr.splitlines() if l.strip()]
        raise ConversionError(f"tf2onnx failed: {lines[-1][:240] if lines else proc.returncode}",
                              "the model uses ops tf2onnx cannot express in ONNX")
