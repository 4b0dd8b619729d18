"""A float TFLite detector ending in TFLite_Detection_PostProcess, to int8 with the op kept.

The TF Object Detection API (and AutoML, MediaPipe-style SSD exports) end their .tflite in the
custom op TFLite_Detection_PostProcess: box decoding against anchors, then NMS. On the route to
int8 (tflite → onnx → savedmodel → tflite), tf2onnx turns the op into ONNX NonMaxSuppression,
TopK and Gather and onnx2tf into float TF NMS ops that have no integer kernel, so the int8 model
is refused. Coral's own SSD models show the layout that works: an integer body, then DEQUANTIZE
and the op on the CPU.

So the float model is cut at the op's inputs (`split`): its body (outputs: box encodings and
class predictions) goes the usual route, and `splice` puts the original op back after the int8
body, with its anchors constant and options byte for byte, and the original outputs and signature
names. Uses LiteRT's generated flatbuffer schema classes (ai_edge_litert.schema_py_generated).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OP = b"TFLite_Detection_PostProcess"
CUSTOM = 32            # BuiltinOperator.CUSTOM
SHAPE_OPS = {22, 43, 70}   # RESHAPE, SQUEEZE, EXPAND_DIMS: they only reshape, and run on (u)int8 as is
DEQUANTIZE = 6


@dataclass
class PostprocessTail:
    """The post-processing ops of the original float model (bytes), and the body before them."""

    original: bytes              # the float model as given
    ops: list[int]               # tail operators of subgraph 0, in graph order: shape ops, then the custom op
    cut: list[int]               # tensors of the original that the body outputs (the tail's inputs from it)
    body: bytes                  # the model cut there

    def describe(self) -> str:
        return "TFLite_Detection_PostProcess (kept on the CPU after the int8 body, as in Coral's SSD models)"


def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def _load(data: bytes):
    return _schema().ModelT.InitFromPackedBuf(bytearray(data), 0)


def _pack(model, size_hint: int) -> bytes:
    import flatbuffers

    builder = flatbuffers.Builder(size_hint * 2 + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _code(model, op) -> int:
    code = model.operatorCodes[op.opcodeIndex]
    return max(code.builtinCode, code.deprecatedBuiltinCode)


def _has_data(model, tensor) -> bool:
    buffer = model.buffers[tensor.buffer] if tensor.buffer < len(model.buffers) else None
    return bool(tensor.buffer) and buffer is not None and buffer.data is not None and len(buffer.data) > 0


def _tail(model) -> tuple[list[int], list[int]] | None:
    """(tail operator indices in graph order, cut tensors) of subgraph 0: its one
    TFLite_Detection_PostProcess op, which must produce every output and read constant anchors, and
    the shape-only ops (RESHAPE, SQUEEZE, EXPAND_DIMS) that feed its box and score inputs alone.
    onnx2tf misplaces such a Reshape after tf2onnx's NHWC transposes (anchors come out in the wrong
    order), so they stay with the op: on (u)int8 tensors they are exact. None: no such tail."""
    graph = model.subgraphs[0]
    found = [i for i, op in enumerate(graph.operators) if model.operatorCodes[op.opcodeIndex].customCode == OP]
    if len(found) != 1:
        return None
    op = graph.operators[found[0]]
    if op.inputs is None or len(op.inputs) != 3 or sorted(graph.outputs) != sorted(op.outputs):
        return None
    if not _has_data(model, graph.tensors[op.inputs[2]]):
        return None
    producers = {int(t): i for i, o in enumerate(graph.operators) for t in (o.outputs if o.outputs is not None else [])}
    readers: dict[int, int] = {}
    for o in graph.operators:
        for t in (o.inputs if o.inputs is not None else []):
            readers[int(t)] = readers.get(int(t), 0) + 1
    ops, cut = [found[0]], []
    for tensor in (int(t) for t in op.inputs[:2]):
        while tensor in producers and _code(model, graph.operators[producers[tensor]]) in SHAPE_OPS \
                and readers.get(tensor, 0) == 1 and tensor not in graph.outputs:
            ops.append(producers[tensor])
            tensor = int(graph.operators[producers[tensor]].inputs[0])
        cut.append(tensor)
    return sorted(set(ops)), cut


def split(data: bytes) -> PostprocessTail | None:
    """DATA (a float .tflite) cut before its TFLite_Detection_PostProcess tail (see `_tail`), or
    None when it has no such tail."""
    model = _load(data)
    if not model.subgraphs:
        return None
    found = _tail(model)
    if found is None:
        return None
    ops, cut = found
    schema = _schema()
    graph = model.subgraphs[0]
    graph.operators = [op for i, op in enumerate(graph.operators) if i not in ops]
    graph.outputs = list(cut)
    for signature in model.signatureDefs or []:
        if signature.subgraphIndex == 0:
            signature.outputs = []
            for name, tensor in zip((b"box_encodings", b"class_predictions"), cut):
                entry = schema.TensorMapT()
                entry.name, entry.tensorIndex = name, tensor
                signature.outputs.append(entry)
    return PostprocessTail(original=data, ops=ops, cut=cut, body=_pack(model, len(data)))


def splice(int8: bytes, tail: PostprocessTail, samples: np.ndarray) -> bytes:
    """The int8 body INT8 with TAIL's ops appended: shape ops on the body's (u)int8 box encodings
    and class predictions (keeping their quantization), a DEQUANTIZE for each, then the op with the
    original anchors and options, whose outputs become the model's, under the original names and
    signature: the layout the TFLite converter writes for Coral's SSD models. Which body output is which is decided by running the float body
    and INT8 on SAMPLES (float32 [N, H, W, C], preprocessed): both may have the same shape, and
    converters reorder outputs."""
    schema = _schema()
    original = _load(tail.original)
    model = _load(int8)
    graph, source_graph = model.subgraphs[0], original.subgraphs[0]
    outputs = [int(t) for t in graph.outputs]
    if len(outputs) != len(tail.cut):
        raise ValueError(f"the int8 body has {len(outputs)} outputs, expected {len(tail.cut)} (box encodings and "
                         "class predictions)")
    order = _match(tail.body, int8, samples)
    mapped = {cut: outputs[position] for cut, position in zip(tail.cut, order)}

    def opcode(op) -> int:
        code = original.operatorCodes[op.opcodeIndex]
        for index, have in enumerate(model.operatorCodes):
            if (have.builtinCode, have.deprecatedBuiltinCode, have.customCode, have.version) == \
                    (code.builtinCode, code.deprecatedBuiltinCode, code.customCode, code.version):
                return index
        new = schema.OperatorCodeT()
        new.builtinCode, new.deprecatedBuiltinCode = code.builtinCode, code.deprecatedBuiltinCode
        new.customCode, new.version = code.customCode, code.version
        model.operatorCodes.append(new)
        return len(model.operatorCodes) - 1

    def tensor(index: int, like: int | None = None) -> int:
        """A copy of the original's tensor INDEX; LIKE: an int8 tensor whose type and quantization
        it takes (a shape op's output carries its input's)."""
        if index in mapped:
            return mapped[index]
        source = source_graph.tensors[index]
        new = schema.TensorT()
        new.name, new.type, new.shape = source.name, source.type, source.shape
        new.shapeSignature, new.hasRank, new.buffer = source.shapeSignature, source.hasRank, 0
        if like is not None:
            new.type, new.quantization = graph.tensors[like].type, graph.tensors[like].quantization
        if _has_data(original, source):
            buffer = schema.BufferT()
            buffer.data = np.asarray(original.buffers[source.buffer].data, np.uint8).copy()
            model.buffers.append(buffer)
            new.buffer = len(model.buffers) - 1
        graph.tensors.append(new)
        mapped[index] = len(graph.tensors) - 1
        return mapped[index]

    def dequantized(index: int) -> int:
        """A float32 copy of the int8 tensor INDEX through a DEQUANTIZE op (the kernel of
        TFLite_Detection_PostProcess decodes uint8 scores but left uint8 boxes at zero)."""
        source = graph.tensors[index]
        if source.type == 0:
            return index
        new = schema.TensorT()
        new.name = (source.name or b"") + b"_dequantized"
        new.type, new.shape, new.buffer = 0, source.shape, 0
        graph.tensors.append(new)
        op = schema.OperatorT()
        op.opcodeIndex = builtin(DEQUANTIZE, 2 if source.type == 9 else 1)   # int8 needs version 2
        op.inputs, op.outputs = [index], [len(graph.tensors) - 1]
        graph.operators.append(op)
        return len(graph.tensors) - 1

    def builtin(code: int, version: int) -> int:
        for index, have in enumerate(model.operatorCodes):
            if max(have.builtinCode, have.deprecatedBuiltinCode) == code and have.version == version:
                return index
        new = schema.OperatorCodeT()
        new.builtinCode, new.deprecatedBuiltinCode, new.version = code, code, version
        model.operatorCodes.append(new)
        return len(model.operatorCodes) - 1

    for index in tail.ops:
        op = source_graph.operators[index]
        new = schema.OperatorT()
        new.opcodeIndex = opcode(op)
        new.inputs = [tensor(int(t)) if int(t) >= 0 else -1 for t in op.inputs]
        shape_op = _code(original, op) in SHAPE_OPS
        if not shape_op:   # the post-processing op reads float, as the TFLite converter lays it out
            new.inputs = [dequantized(t) if t >= 0 else t for t in new.inputs]
        new.outputs = [tensor(int(t), like=new.inputs[0] if shape_op else None) for t in op.outputs]
        new.builtinOptionsType, new.builtinOptions = op.builtinOptionsType, op.builtinOptions
        new.customOptions, new.customOptionsFormat = op.customOptions, op.customOptionsFormat
        graph.operators.append(new)
    graph.outputs = [mapped[int(t)] for t in source_graph.outputs]
    source_signatures = {s.subgraphIndex: s for s in original.signatureDefs or []}
    for signature in model.signatureDefs or []:
        if signature.subgraphIndex == 0 and 0 in source_signatures:
            signature.outputs = []
            for entry in source_signatures[0].outputs or []:
                new = schema.TensorMapT()
                new.name, new.tensorIndex = entry.name, mapped[int(entry.tensorIndex)]
                signature.outputs.append(new)
    return _pack(model, len(int8) + len(tail.original))


def _match(body: bytes, int8: bytes, samples: np.ndarray) -> tuple[int, int]:
    """Positions of (box encodings, class predictions) among INT8's outputs: the pairing whose
    outputs agree best (cosine) with the float BODY's on SAMPLES."""
    float_out = _run(body, samples)
    int8_out = _run(int8, samples)

    def cosine(a, b) -> float:
        if a.shape != b.shape:
            return -1.0
        a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
        norms = np.linalg.norm(a) * np.linalg.norm(b)
        return float(a @ b / norms) if norms else 0.0

    straight = cosine(float_out[0], int8_out[0]) + cosine(float_out[1], int8_out[1])
    crossed = cosine(float_out[0], int8_out[1]) + cosine(float_out[1], int8_out[0])
    return (0, 1) if straight >= crossed else (1, 0)


def _run(data: bytes, samples: np.ndarray) -> list[np.ndarray]:
    """Outputs of the flatbuffer DATA on SAMPLES in real units, each [N, ...] (LiteRT, quantizing
    and dequantizing with the tensors' own parameters)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data)
    interpreter.allocate_tensors()
    (feed,), fetches = interpreter.get_input_details(), interpreter.get_output_details()
    results: list[list[np.ndarray]] = [[] for _ in fetches]
    for sample in samples[:8]:
        value = sample[None].astype(np.float32)
        scale, zero = feed["quantization"]
        if feed["dtype"] != np.float32 and scale:
            info = np.iinfo(feed["dtype"])
            value = np.clip(np.round(value / scale + zero), info.min, info.max)
        interpreter.set_tensor(feed["index"], value.astype(feed["dtype"]))
        interpreter.invoke()
        for position, fetch in enumerate(fetches):
            out = interpreter.get_tensor(fetch["index"]).astype(np.float32)
            scale, zero = fetch["quantization"]
            results[position].append((out - zero) * scale if scale else out)
    return [np.concatenate(r) for r in results]
