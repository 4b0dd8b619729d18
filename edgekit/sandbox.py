"""Load untrusted model files in a child process first: native loaders may crash or hang on
malformed input, and that must never take the CLI down with it."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .deps import tool_env
from .errors import REMEDY_REEXPORT, ModelFormatError

_PROBES = {
    "torchscript": "import torch; torch.jit.load(p, map_location='cpu')",
    "torch-export": "import torch; torch.export.load(p)",
    "keras": "import keras; keras.models.load_model(p, compile=False, safe_mode=True)",
    "keras-h5": "import keras; keras.models.load_model(p, compile=False, safe_mode=True)",
    "savedmodel": "import tensorflow as tf; tf.saved_model.load(p)",
}


def probe_load(kind: str, path: Path, timeout: float = 300.0) -> None:
    """Raise ModelFormatError if loading `path` as `kind` crashes, hangs or fails in a child."""
    code = _PROBES.get(kind)
    if code is None:
        return
    script = f"import sys; p = sys.argv[1]; {code}"
    try:
        proc = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL, env=tool_env())
    except subprocess.TimeoutExpired:
        raise ModelFormatError(f"loading {path} as {kind} did not finish in {timeout:.0f} s",
                               REMEDY_REEXPORT) from None
    if proc.returncode < 0:
        raise ModelFormatError(f"{path} crashed the {kind} loader (signal {-proc.returncode}); "
                               "the file is corrupt or malicious", REMEDY_REEXPORT)
    if proc.returncode != 0:
        lines = [l for l in proc.stderr.strip().splitlines() if l.strip()]
        last = lines[-1][:200] if lines else f"exit code {proc.returncode}"
        raise ModelFormatError(f"{path} could not be loaded as {kind}: {last}", REMEDY_REEXPORT)
