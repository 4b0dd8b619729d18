"""Predict what edgetpu_compiler will do with a TFLite model, without the compiler.

Reads the flatbuffer with edgekit's pure-Python reader (no TensorFlow) and applies Coral's
documented rules: int8/uint8 tensors only, static shapes and batch 1, at most the 3 innermost
dimensions > 1, the supported-op table with its per-op limitations, op versions the compiler
rejects, and the single-partition rule: the compiler maps one contiguous run of operators; the
first unsupported op after it has started sends every later op to the CPU.
"""
from __future__ import annotations

import struct
from pathlib import Path

from ..errors import BadInput, ModelFormatError
from ..tflite_model import Operator, SubGraph, TFLiteModel, postprocess_tail, read_tflite
from . import ops as tpu
from .report import EdgeTPUReport, group_rows

DEFAULT_MIN_RUNTIME = 14     # what edgetpu_compiler 16 targets unless given -m
DEFAULT_COMPILER = 16        # the last edgetpu_compiler release (16.0.384591198), what users install
INTEGER_TYPES = ("int8", "uint8")
EDGETPU_CUSTOM_OP = "edgetpu-custom-op"
_FLOAT = ("float32", "float16", "float64", "bfloat16")
_IO_CONVERSIONS = ("QUANTIZE", "DEQUANTIZE")

Problem = tuple[str, str, str]   # (compiler status, reason, suggestion)


def analyze(model: TFLiteModel | str | Path, min_runtime: int = DEFAULT_MIN_RUNTIME,
            compiler: int = DEFAULT_COMPILER) -> EdgeTPUReport:
    """The predicted compiler report for MODEL, for edgetpu_compiler major version COMPILER
    (op-version rules differ between releases, see ops.max_version); raises BadInput with a
    one-line diagnosis for models the compiler would refuse outright (float, dynamic shapes,
    batch > 1, not TFLite)."""
    if not 10 <= min_runtime <= 16:
        raise BadInput(f"Edge TPU runtime version {min_runtime} does not exist", "choose 10..16 (default 14)")
    if not isinstance(model, TFLiteModel):
        model = read_tflite(model)
    name = Path(model.path).name
    graph = _validate(model, name)
    checker = _Checker(model, graph, min_runtime, compiler)
    entries, placement, split = [], [], None
    started = False
    tail = postprocess_tail(graph)
    for op in graph.operators:
        if op.index in tail:   # Coral's SSD layout: the op runs on the CPU after the Edge TPU segment
            reason = ("post-processing: runs on the CPU after the Edge TPU segment" if op.name != "DEQUANTIZE"
                      else "feeds the post-processing op on the CPU")
            entries.append((op.index, op.name, tpu.UNSUPPORTED_TYPE, reason, ""))
            placement.append("cpu")
            continue
        problem = checker.problem(op)
        if split is not None:
            status, reason, suggestion = problem or (
                tpu.MULTIPLE_SUBGRAPHS, f"after {split['op']} (op {split['index']}) ended the Edge TPU segment",
                f"fix {split['cause']} at op {split['cause_index']} first")
            entries.append((op.index, op.name, status, reason, suggestion))
            placement.append("cpu")
        elif problem is None:
            started = True
            caveat = checker.size_caveat(op)
            entries.append((op.index, op.name, *(caveat or (tpu.MAPPED, "", ""))))
            placement.append("tpu")
        else:
            entries.append((op.index, op.name, *problem))
            placement.append("cpu")
            if started and not checker.is_output_conversion(op):
                cause = checker.cause(op)
                split = {"index": op.index, "op": op.name, "status": problem[0], "reason": problem[1],
                         "cause_index": cause.index, "cause": cause.name}
    report = EdgeTPUReport(kind="predicted", model=name, ops_total=len(placement),
                           ops_on_tpu=placement.count("tpu"), ops_on_cpu=placement.count("cpu"),
                           partitions=1 if "tpu" in placement else 0, rows=group_rows(entries), split=split,
                           placement=placement, min_runtime_version=min_runtime)
    params = checker.parameter_bytes([op for op, where in zip(graph.operators, placement) if where == "tpu"])
    report.parameter_bytes = params
    report.on_chip_bytes = min(params, tpu.ON_CHIP_USABLE_BYTES)
    report.off_chip_bytes = max(0, params - tpu.ON_CHIP_USABLE_BYTES)
    report.on_chip_remaining_bytes = max(0, tpu.ON_CHIP_USABLE_BYTES - params)
    if report.off_chip_bytes:
        report.notes.append(f"parameters ({params / 2**20:.2f} MiB) exceed the ~{tpu.ON_CHIP_USABLE_BYTES / 2**20:.2f} "
                            "MiB on-chip cache: the rest is streamed from host memory on every inference; "
                            "use a smaller model or --segments to pipeline it over several Edge TPUs")
    uncertain = sorted({row.op for row in report.rows if row.status == tpu.MAY_NOT_MAP})
    if uncertain:
        report.notes.append(f"{', '.join(uncertain)}: the compiler decides by tensor size whether to map these "
                            "(Coral documents no exact limit); counted as mapped")
    if len(model.subgraphs) > 1:
        report.notes.append(f"{len(model.subgraphs) - 1} control-flow subgraph(s) were not analyzed; "
                            "the compiler runs them on the CPU")
    return report


def is_compiled(model: TFLiteModel) -> bool:
    return any(op.builtin == "CUSTOM" and op.name == EDGETPU_CUSTOM_OP
               for graph in model.subgraphs for op in graph.operators)


def _validate(model: TFLiteModel, name: str) -> SubGraph:
    """The main subgraph, or the one-line reason the compiler would refuse the whole model."""
    if not model.subgraphs or not model.subgraphs[0].operators:
        raise ModelFormatError(f"{name} has no operators", "re-export the model")
    if is_compiled(model):
        raise BadInput(f"{name} is already compiled for the Edge TPU ({EDGETPU_CUSTOM_OP})",
                       "check the uncompiled int8 model instead")
    graph = model.subgraphs[0]
    for tensor in (graph.tensors[i] for i in graph.inputs):
        signature = tensor.shape_signature or tensor.shape
        if signature[:1] == [-1] and tensor.shape[:1] == [1]:
            signature = signature[1:]   # a free batch runs as the batch 1 it was built with
        if any(d < 0 for d in signature):
            raise BadInput(f"{name} has dynamic shapes: input '{tensor.name}' is {signature}",
                           "the Edge TPU needs static shapes; re-export with a fixed input shape, batch 1")
        if len(tensor.shape) > 1 and tensor.shape[0] != 1:
            raise BadInput(f"{name} has batch size {tensor.shape[0]} (input '{tensor.name}' is {tensor.shape})",
                           "the Edge TPU runs batch 1; re-export with batch size 1")
    if model.has_dynamic_shapes():   # sizes computed at run time (a free batch is not one)
        tensor = model.dynamic_tensors()[0]
        raise BadInput(f"{name} has dynamic shapes: tensor '{tensor.name}' is {tensor.shape_signature}",
                           "the Edge TPU needs static shapes; re-export with a fixed input shape, batch 1")
    floats = []   # (tensor index, first op index) of float activations and weights
    quantized_compute = False
    for op in graph.operators:
        used = [i for i in (*op.inputs, *op.outputs) if i >= 0]
        floats.extend((i, op.index) for i in used if graph.tensors[i].dtype in _FLOAT)
        if op.name not in _IO_CONVERSIONS and used and all(
                graph.tensors[i].dtype in INTEGER_TYPES or graph.tensors[i].dtype == "int32"
                for i in used) and any(graph.tensors[i].dtype in INTEGER_TYPES for i in used):
            quantized_compute = True
    if not quantized_compute:
        distinct = {i for i, _ in floats}
        first = min((op_index for _, op_index in floats), default=0)
        op = graph.operators[first]
        raise BadInput(f"{name} is not fully integer-quantized: {len(distinct)} float tensors, first at op "
                       f"{first} {op.name}",
                       "the Edge TPU compiler answers 'Model not quantized'; convert with "
                       "`edgekit convert MODEL --to edgetpu --calib IMAGES` (full-integer int8)")
    return graph


def _elements(shape: list[int]) -> int:
    count = 1
    for d in shape:
        count *= max(d, 1)
    return count


class _Checker:
    """Coral's per-op rules over one subgraph."""

    def __init__(self, model: TFLiteModel, graph: SubGraph, min_runtime: int, compiler: int = DEFAULT_COMPILER):
        self.model, self.graph, self.min_runtime, self.compiler = model, graph, min_runtime, compiler
        self.outputs = set(graph.outputs)
        self.consumers: dict[int, list[Operator]] = {}
        for op in graph.operators:
            for i in op.inputs:
                self.consumers.setdefault(i, []).append(op)

    def const(self, index: int) -> bool:
        tensor = self.graph.tensors[index]
        return 0 < tensor.buffer < len(self.model.buffers) and self.model.buffers[tensor.buffer].size > 0

    def const_ints(self, index: int) -> list[int] | None:
        if index < 0 or not self.const(index):
            return None
        tensor, data = self.graph.tensors[index], self.model.buffer_bytes(self.graph.tensors[index].buffer)
        code = {"int32": "i", "int64": "q"}.get(tensor.dtype)
        if code is None or len(data) % struct.calcsize(code):
            return None
        return list(struct.unpack(f"<{len(data) // struct.calcsize(code)}{code}", data))

    def is_output_conversion(self, op: Operator) -> bool:
        """QUANTIZE/DEQUANTIZE writing a model output: the compiler leaves it on the CPU, no split."""
        return op.name in _IO_CONVERSIONS and all(o in self.outputs for o in op.outputs)

    def cause(self, op: Operator) -> Operator:
        """A DEQUANTIZE ends the segment because of the float op that consumes it: name that op."""
        if op.name == "DEQUANTIZE":
            for out in op.outputs:
                for consumer in self.consumers.get(out, []):
                    if consumer.name not in _IO_CONVERSIONS:
                        return consumer
        return op

    def problem(self, op: Operator) -> Problem | None:
        for rule in (self._dtype, self._support, self._version, self._rank, self._limitations):
            found = rule(op)
            if found:
                return found
        return None

    def _activations(self, op: Operator):
        return [(i, self.graph.tensors[i]) for i in (*op.inputs, *op.outputs) if i >= 0 and not self.const(i)]

    def _dtype(self, op: Operator) -> Problem | None:
        bad = [(i, t) for i, t in self._activations(op) if t.dtype not in INTEGER_TYPES]
        bad += [(i, self.graph.tensors[i]) for i in op.inputs
                if i >= 0 and self.const(i) and self.graph.tensors[i].dtype in _FLOAT]
        if not bad:
            return None
        _, tensor = bad[0]
        if op.name == "QUANTIZE" and tensor.dtype in _FLOAT:
            return (tpu.UNSPECIFIED, f"converts the {tensor.dtype} input '{tensor.name}' to integer",
                    "use uint8/int8 model inputs (edgekit's default --int8-io uint8)")
        if op.name == "DEQUANTIZE":
            consumer = self.cause(op)
            if consumer is not op:
                return (tpu.UNSUPPORTED_TYPE, f"converts to float for {consumer.name} (op {consumer.index}), "
                        "which has no int8 kernel", tpu.SUGGESTIONS.get(consumer.name, tpu.SUGGESTIONS["DEQUANTIZE"]))
            return (tpu.UNSUPPORTED_TYPE, "converts the int8 output to float",
                    "use uint8/int8 model outputs (edgekit's default --int8-io uint8)")
        return (tpu.UNSUPPORTED_TYPE, f"tensor '{tensor.name}' is {tensor.dtype}",
                tpu.SUGGESTIONS.get(op.name, "quantize this op to int8 (full-integer post-training quantization)"))

    def _support(self, op: Operator) -> Problem | None:
        support = tpu.SUPPORTED.get(op.name)
        if support is None:
            return (tpu.NOT_SUPPORTED, "not in the Edge TPU's supported-operations table",
                    tpu.SUGGESTIONS.get(op.name, f"replace {op.name} with supported ops or move it after the "
                                                 "last Edge TPU op"))
        if support.runtime > self.min_runtime:
            return (tpu.NOT_SUPPORTED, f"mapped only from Edge TPU runtime {support.runtime}; compiling for "
                                       f"runtime {self.min_runtime}", f"compile with --min-runtime {support.runtime}")
        return None

    def _version(self, op: Operator) -> Problem | None:
        if op.name == "FULLY_CONNECTED" and op.options.get("keep_num_dims"):
            return (tpu.VERSION_NOT_SUPPORTED, "FULLY_CONNECTED with keep_num_dims (Dense on a >2-D input)",
                    "flatten or reshape to 2-D before the Dense layer")
        limit = tpu.max_version(op.name, self.compiler)
        if limit is not None and op.version > limit:
            return (tpu.VERSION_NOT_SUPPORTED, f"op version {op.version}; edgetpu_compiler {self.compiler} knows up "
                    f"to {limit}", tpu.VERSION_ADVICE.get(op.name, "re-export with an older TensorFlow converter"))
        return None

    def size_caveat(self, op: Operator) -> Problem | None:
        """(MAY_NOT_MAP, documented limit, advice) for a supported op whose mapping the compiler
        decides by tensor size; Coral gives the rule but no numbers."""
        if op.name in tpu.SIZE_DEPENDENT:
            out = self.graph.tensors[op.outputs[0]] if op.outputs and op.outputs[0] >= 0 else None
            large = out is not None and _elements(out.shape) >= tpu.LARGE_TENSOR_ELEMENTS
            if op.name.startswith("RESIZE_") or large:
                return (tpu.MAY_NOT_MAP, tpu.SUPPORTED[op.name].limitation,
                        "check the compiler's log; upsample by 2x steps or with a transposed convolution"
                        if op.name.startswith("RESIZE_") else "reshape smaller tensors, or check the compiler's log")
        return None

    def _rank(self, op: Operator) -> Problem | None:
        for _, tensor in self._activations(op):
            if sum(1 for d in tensor.shape if d > 1) > 3:
                return (tpu.UNSUPPORTED_RANK, f"tensor '{tensor.name}' is {tensor.shape}: more than the 3 innermost "
                        "dimensions are > 1", "avoid 5-D reshapes and batch > 1: keep tensors within [1, H, W, C]"
                        if len(tensor.shape) > 4 else "keep tensors within [1, H, W, C]")
        return None

    def _limitations(self, op: Operator) -> Problem | None:
        name, options = op.name, op.options
        unspecified = tpu.UNSPECIFIED
        if name in ("AVERAGE_POOL_2D", "MAX_POOL_2D", "CONCATENATION") and \
                options.get("fused_activation_function", "NONE") != "NONE":
            return (unspecified, f"fused {options['fused_activation_function']} activation",
                    "apply the activation as a separate layer")
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D") and \
                options.get("dilation_w_factor", 1) != options.get("dilation_h_factor", 1):
            return (unspecified, "different dilation in x and y", "use the same dilation rate in both dimensions")
        if name == "SOFTMAX":
            shape = self.graph.tensors[op.inputs[0]].shape
            size = 1
            for d in shape:
                size *= d
            if sum(1 for d in shape if d > 1) > 1 or size > 16000:
                return (unspecified, f"input {shape}: only a 1-D input of at most 16,000 elements maps",
                        "apply softmax on the CPU, or over a flattened vector")
        if name == "STRIDED_SLICE" and len(op.inputs) > 3:
            strides = self.const_ints(op.inputs[3])
            if strides is None or any(s != 1 for s in strides):
                return (tpu.NON_UNIT_STRIDES, f"strides {strides}", "slice with unit strides")
        if name in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN") and len(op.inputs) > 1:
            axes = self.const_ints(op.inputs[1]) or []
            rank = len(self.graph.tensors[op.inputs[0]].shape)
            if any(a % max(rank, 1) == 0 for a in axes) and rank > 1:
                return (unspecified, "reduces over the batch dimension", "reduce over height/width/channels only")
        if name == "PAD" and len(op.inputs) > 1:
            paddings = self.const_ints(op.inputs[1]) or []
            if any(paddings[:2]):
                return (unspecified, "pads the batch dimension", "pad height/width/channels only")
        if name == "CONCATENATION":
            constants = [i for i in op.inputs if i >= 0 and self.const(i)]
            if constants and (len(op.inputs) != 2 or any(self.model.buffer_bytes(self.graph.tensors[i].buffer).strip(b"\0")
                                                         for i in constants)):
                return (unspecified, "concatenates a non-zero constant",
                        "only a 2-input concatenation with an all-zero constant (zero padding) maps")
        return None

    def parameter_bytes(self, mapped: list[Operator]) -> int:
        """Bytes of the constant tensors (weights, biases) the mapped ops read, each buffer once."""
        buffers = {self.graph.tensors[i].buffer for op in mapped for i in op.inputs if i >= 0 and self.const(i)}
        return sum(self.model.buffers[b].size for b in buffers)
