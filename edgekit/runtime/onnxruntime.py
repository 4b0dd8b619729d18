"""ONNX Runtime: the reference backend. CPU by default; another execution provider this
ONNX Runtime build has (CUDA, OpenVINO, ...) is picked with `device`; `threads` sets intra-op threads."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import REMEDY_REEXPORT, ModelFormatError, summary
from ..manifest import TensorInfo
from ..sources.onnx import load_checked
from .base import BACKENDS, Runner

_ORT_TYPES = {"tensor(float)": "float32", "tensor(uint8)": "uint8", "tensor(int8)": "int8",
              "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(float16)": "float16",
              "tensor(bool)": "bool", "tensor(double)": "float64"}
PROVIDERS = {"CPU": "CPUExecutionProvider", "CUDA": "CUDAExecutionProvider", "TensorRT": "TensorrtExecutionProvider",
             "OpenVINO": "OpenVINOExecutionProvider", "CoreML": "CoreMLExecutionProvider",
             "DirectML": "DmlExecutionProvider", "QNN": "QNNExecutionProvider"}


@BACKENDS.register("onnxruntime")
class OnnxRuntimeRunner(Runner):
    backend = "onnxruntime"
    formats = ("onnx",)
    requires = ("onnxruntime",)
    options = ("threads",)
    device_kinds = tuple(PROVIDERS)
    probe_in_child = True  # the checker validates the graph, not every kernel's view of it

    @classmethod
    def available_devices(cls) -> list[str]:
        import onnxruntime as ort

        present = set(ort.get_available_providers())
        return [name for name, provider in PROVIDERS.items() if provider in present]

    def __init__(self, path: Path, device: str | None = None, threads: int | None = None):
        super().__init__(path, device or "CPU")
        load_checked(self.path)  # the checker runs before the native session parses the file
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        # x86 CPUs without VNNI add u8*s8 products pairwise in int16 (pmaddubsw), which saturates
        # on ReLU6-fed convolutions: EfficientNet-Lite0 int8 fell to cosine 0.89 against fp32.
        # This makes ORT widen to int32 first (0.98); it changes nothing on VNNI or ARM CPUs.
        options.add_session_config_entry("session.x64quantprecision", "1")
        if threads is not None:
            options.intra_op_num_threads = int(threads)
        providers = [PROVIDERS[self.device.split(":", 1)[0]]]
        if providers[0] != "CPUExecutionProvider":
            providers.append("CPUExecutionProvider")  # ops the accelerator lacks fall back to the CPU
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
            raise ModelFormatError(f"ONNX Runtime cannot load {self.path}: {summary(exc)}", REMEDY_REEXPORT) from None
        self.inputs = [_info(a) for a in self.session.get_inputs()]
        self.outputs = [_info(a) for a in self.session.get_outputs()]
        self._names = [t.name for t in self.inputs]

    def _infer(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None, dict(zip(self._names, arrays)))


def _info(arg) -> TensorInfo:
    shape = [d if isinstance(d, int) else 1 for d in arg.shape]
    return TensorInfo(arg.name, shape, _ORT_TYPES.get(arg.type, "float32"))
