"""OpenVINO runtime: CPU, GPU, NPU or AUTO (also GPU.1, AUTO:GPU,CPU, HETERO:...), with a
latency or throughput hint (`hint`) and the CPU thread count (`threads`)."""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from ..errors import BadInput, UnknownNameError, summary
from ..formats import sniff
from ..formats.openvino import port_info
from ..manifest import Quantization, TensorInfo, read_manifest
from .base import BACKENDS, Runner

HINTS = {"latency": "LATENCY", "throughput": "THROUGHPUT"}
VIRTUAL = ("AUTO", "HETERO", "MULTI")  # devices that dispatch to the real ones listed after ':'


@BACKENDS.register("openvino")
class OpenVINORunner(Runner):
    backend = "openvino"
    formats = ("openvino", "onnx", "tflite")
    requires = ("openvino",)
    options = ("threads", "hint")
    device_kinds = ("CPU", "GPU", "NPU", *VIRTUAL)
    probe_in_child = True  # the IR has no native structural check before the plugin parses it
    _core: ClassVar = None

    @classmethod
    def core(cls):
        if cls._core is None:
            import openvino as ov

            cls._core = ov.Core()
        return cls._core

    @classmethod
    def available_devices(cls) -> list[str]:
        return [*cls.core().available_devices, *VIRTUAL]

    @classmethod
    def check_device(cls, device: str | None) -> str | None:
        if device and device.split(":", 1)[0] in VIRTUAL and ":" in device:
            for candidate in device.split(":", 1)[1].split(","):
                super().check_device(candidate.strip())
        return super().check_device(device)

    def __init__(self, path: Path, device: str | None = None, threads: int | None = None,
                 hint: str | None = None):
        super().__init__(path, device or "CPU")
        if hint is not None and hint.lower() not in HINTS:
            raise UnknownNameError("OpenVINO hint", hint, HINTS)
        if threads is not None and not self.device.startswith("CPU"):
            raise BadInput(f"threads applies to the OpenVINO CPU device, not '{self.device}'",
                           "drop --threads or use --device CPU")
        self.config = {"PERFORMANCE_HINT": HINTS[(hint or "latency").lower()]}
        if self.device.startswith("CPU"):
            # The CPU plugin runs fp32 IRs in bf16 on CPUs with native bf16 (AVX512-BF16, AMX):
            # EfficientNet-Lite0 fp32 then scores cosine 0.998 against PyTorch instead of 1.0000.
            # Run the artifact at the precision it was converted and verified at.
            self.config["INFERENCE_PRECISION_HINT"] = "f32"
        if threads is not None:
            self.config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            self.compiled = self.core().compile_model(str(self.path), self.device, self.config)
        except Exception as exc:  # RuntimeError, OpConversionFailure, ...: all one line
            reason = next((line.strip() for line in str(exc).splitlines() if "No translator" in line),
                          summary(exc, last=True))
            raise BadInput(f"OpenVINO could not compile {self.path.name} for {self.device}: {reason}",
                           "try another backend (--backend)" if "No translator" in reason else None) from None
        self.request = self.compiled.create_infer_request()
        self._output_count = len(self.compiled.outputs)
        # static inputs are copied into the request's own tensors: handing infer() a new array
        # each call made it rebind the input and cost ~4 % of an EfficientNet-Lite0 int8 call
        self._static = all(port.get_partial_shape().is_static for port in self.compiled.inputs)
        self.inputs = _with_quantization([port_info(p) for p in self.compiled.inputs], self.path, "inputs")
        self.outputs = _with_quantization([port_info(p) for p in self.compiled.outputs], self.path, "outputs")

    def _load(self, arrays: list[np.ndarray]) -> None:
        request = self.request
        for index, array in enumerate(arrays):
            if self._static:
                np.copyto(request.get_input_tensor(index).data, array, casting="no")
            else:  # a dynamic input takes each call's shape: a new tensor (a copy of the array)
                from openvino import Tensor

                request.set_input_tensor(index, Tensor(np.ascontiguousarray(array)))

    def _run(self) -> None:
        self.request.infer()

    def _results(self) -> list[np.ndarray]:
        return [np.array(self.request.get_output_tensor(index).data) for index in range(self._output_count)]


def _with_quantization(infos: list[TensorInfo], path: Path, side: str) -> list[TensorInfo]:
    """OpenVINO reports a quantized TFLite's u8/i8 I/O without scale and zero point; the
    manifest has them, so quantize/dequantize stay right when OpenVINO runs a .tflite."""
    manifest = read_manifest(path)
    recorded = getattr(manifest, side, []) if manifest else []
    if len(recorded) == len(infos):
        for info, known in zip(infos, recorded):
            if info.quantization is None and known.quantization and info.dtype == known.dtype:
                info.quantization = known.quantization
    elif sniff(path).name == "tflite":
        from ..tflite_model import read_tflite

        model = read_tflite(path)
        tensors = model.inputs() if side == "inputs" else model.outputs()
        if len(tensors) == len(infos):
            for info, tensor in zip(infos, tensors):
                quant = tensor.quantization
                if info.quantization is None and quant and quant.scale and info.dtype == tensor.dtype:
                    info.quantization = Quantization.from_params(quant.scale, quant.zero_point,
                                                                 quant.quantized_dimension)
    return infos
