"""LiteRT (TFLite) on the CPU, with the XNNPACK thread count settable (`threads`)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import REMEDY_REEXPORT, BadInput, ModelFormatError, summary
from ..manifest import Quantization, TensorInfo
from ..tflite_model import read_tflite
from .base import BACKENDS, Runner


class InterpreterSteps:
    """load/run/results on a LiteRT Interpreter: shared by the CPU and Edge TPU runners."""
    interpreter: Any

    def _describe_tensors(self) -> None:
        inputs, outputs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        self._in_index = [d["index"] for d in inputs]
        self._out_index = [d["index"] for d in outputs]
        self.inputs = [_info(d) for d in inputs]
        self.outputs = [_info(d) for d in outputs]

    def _load(self, arrays: list[np.ndarray]) -> None:
        for index, array in zip(self._in_index, arrays):
            self.interpreter.set_tensor(index, array)

    def _run(self) -> None:
        self.interpreter.invoke()

    def _results(self) -> list[np.ndarray]:
        return [self.interpreter.get_tensor(index) for index in self._out_index]  # get_tensor copies


@BACKENDS.register("litert")
class LiteRTRunner(InterpreterSteps, Runner):
    backend = "litert"
    formats = ("tflite",)
    requires = ("ai_edge_litert",)
    options = ("threads",)
    device_kinds = ("CPU",)
    # The bounds-checked reader is not enough: the fuzz test found bit flips that pass it and
    # still crash the interpreter (SIGSEGV), so a new file is first opened in a child.
    probe_in_child = True

    def __init__(self, path: Path, device: str | None = None, threads: int | None = None):
        super().__init__(path, device or "CPU")
        model = read_tflite(self.path)  # bounds-checked before the native interpreter sees the bytes
        if any(op.name == "edgetpu-custom-op" for sg in model.subgraphs for op in sg.operators):
            raise BadInput(f"{self.path.name} is compiled for the Edge TPU: LiteRT alone cannot resolve its "
                           "custom op 'edgetpu-custom-op'",
                           "run it with --backend edgetpu on a host with libedgetpu and a Coral device, "
                           "or run the uncompiled int8 model on the CPU")
        from ai_edge_litert.interpreter import Interpreter

        self.threads = threads
        try:
            self.interpreter = Interpreter(model_path=str(self.path), num_threads=threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelFormatError(f"LiteRT cannot load {self.path}: {summary(exc)}", REMEDY_REEXPORT) from None
        self._describe_tensors()

    def resize_inputs(self, shapes: list[list[int]]) -> None:
        """Give each input the static shape in SHAPES (in input order), within what the model's
        signature leaves free (LiteRT's `resize_tensor_input(strict=True)`), and re-plan the
        interpreter. Raises BadInput when the model cannot take a shape."""
        try:
            for index, shape in zip(self._in_index, shapes):
                self.interpreter.resize_tensor_input(index, [int(d) for d in shape], strict=True)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise BadInput(f"{self.path.name} cannot take input shapes {shapes}: {summary(exc)}",
                           "pass a size the model allows") from None
        self._describe_tensors()
        self._accepted = None


def _info(detail) -> TensorInfo:
    params = detail.get("quantization_parameters", {})
    quant = (Quantization.from_params(params["scales"], params["zero_points"], params.get("quantized_dimension", 0))
             if len(params.get("scales", [])) else None)
    return TensorInfo(detail["name"], [int(d) for d in detail["shape"]], np.dtype(detail["dtype"]).name, quant)
