"""Rewrite a float .tflite so that every weight is a plain dense float32 constant.

tf2onnx's TFLite reader takes each buffer as dense data of the tensor's own type. Real models
store weights otherwise, and LiteRT runs them all:
  - sparse tensors (SparsityParameters, read through DENSIFY), as pruned models ship (MediaPipe's
    face_detection_full_range_sparse): tf2onnx failed with "cannot reshape array of size 77 into
    shape (8,1,1,32)";
  - int4 weights behind DEQUANTIZE: tf2onnx failed with "KeyError: 17" (TensorType INT4);
  - fp16 and int8 weights behind DEQUANTIZE (float16 post-training quantization, weight-only);
  - buffers stored after the flatbuffer (Buffer.offset/size, the >2 GiB layout): tf2onnx failed
    with "Cannot find node with output 'arith.constant1'" (it sees them empty).
Here each DENSIFY or DEQUANTIZE whose input is a constant is evaluated once (exactly as LiteRT's
kernels do) and its output becomes a float32 constant; the op is dropped. The graph is otherwise
unchanged, so the rewritten file computes the same function in float32.

Uses LiteRT's generated flatbuffer schema classes (ai_edge_litert.schema_py_generated).
"""
from __future__ import annotations

import numpy as np

_NUMPY = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 7: np.int16, 9: np.int8}
_INT4 = 17


def needs_rewrite(model) -> bool:
    """MODEL (edgekit.tflite_model.TFLiteModel) has sparse, int4, dequantized or external weights."""
    if any(buffer.external for buffer in model.buffers):
        return True
    for graph in model.subgraphs:
        if any(t.sparse or t.dtype == "int4" for t in graph.tensors):
            return True
        constants = {t.index for t in graph.tensors if 0 < t.buffer < len(model.buffers) and model.buffers[t.buffer].size}
        if any(op.name in ("DEQUANTIZE", "DENSIFY") and op.inputs and op.inputs[0] in constants for op in graph.operators):
            return True
    return False


def plain_float_weights(data: bytes) -> bytes:
    """The flatbuffer DATA with constant DENSIFY/DEQUANTIZE folded into dense float32 weights."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    for buffer in model.buffers:   # external data back into the flatbuffer's own vectors
        if buffer.offset > 1:
            buffer.data = np.frombuffer(data[buffer.offset:buffer.offset + buffer.size], np.uint8).copy()
            buffer.offset, buffer.size = 0, 0
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    fold = {schema.BuiltinOperator.DEQUANTIZE, schema.BuiltinOperator.DENSIFY}
    for graph in model.subgraphs:
        kept = []
        for op in graph.operators:
            source = graph.tensors[op.inputs[0]] if op.inputs is not None and len(op.inputs) else None
            if codes[op.opcodeIndex] in fold and source is not None and _has_data(model, source):
                values = _values(model, source)
                target = graph.tensors[op.outputs[0]]
                model.buffers.append(schema.BufferT())
                model.buffers[-1].data = values.astype(np.float32).reshape(-1).view(np.uint8)
                # the folded input too: no reader should meet its sparse/int4 encoding, even unused
                for tensor in (target, source):
                    tensor.buffer, tensor.type, tensor.quantization = len(model.buffers) - 1, 0, None
                    tensor.sparsity = None
                continue
            kept.append(op)
        graph.operators = kept
    builder = flatbuffers.Builder(len(data) * 2 + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _has_data(model, tensor) -> bool:
    buffer = model.buffers[tensor.buffer] if tensor.buffer < len(model.buffers) else None
    return bool(tensor.buffer) and buffer is not None and buffer.data is not None and len(buffer.data) > 0


def _values(model, tensor) -> np.ndarray:
    """The dense float values a DEQUANTIZE/DENSIFY of this constant produces."""
    raw = np.asarray(model.buffers[tensor.buffer].data, np.uint8).tobytes()
    shape = [int(d) for d in tensor.shape]
    if tensor.type == _INT4:   # two's-complement nibbles, low nibble first
        packed = np.frombuffer(raw, np.uint8)
        nibbles = np.stack([packed & 0x0F, packed >> 4], axis=1).reshape(-1).astype(np.int8)
        stored = np.where(nibbles > 7, nibbles - 16, nibbles)[: int(np.prod(shape))]
    else:
        stored = np.frombuffer(raw, _NUMPY[tensor.type])
    if tensor.sparsity is not None:
        stored = _densify(stored, shape, tensor.sparsity)
    values = stored.astype(np.float32).reshape(shape)
    quant = tensor.quantization
    if quant is not None and quant.scale is not None and len(quant.scale):
        scale = np.asarray(quant.scale, np.float32)
        zero = np.asarray(quant.zeroPoint if quant.zeroPoint is not None else [0], np.float32)
        if scale.size > 1:   # per channel along quantizedDimension
            axis = [1] * len(shape)
            axis[quant.quantizedDimension] = -1
            scale, zero = scale.reshape(axis), zero.reshape(axis) if zero.size > 1 else zero
        values = (values - zero) * scale
    return values


def _densify(stored: np.ndarray, shape: list[int], sparsity) -> np.ndarray:
    """SparsityParameters -> the dense array (tensorflow/lite/kernels/internal/utils/sparsity_format_converter.cc)."""
    order = list(sparsity.traversalOrder)
    block_map = list(sparsity.blockMap) if sparsity.blockMap is not None else []
    metadata = sparsity.dimMetadata
    rank = len(shape)
    block_size = {d: metadata[order.index(rank + j)].denseSize for j, d in enumerate(block_map)}
    dense = np.zeros(shape, stored.dtype)
    coords = [0] * len(order)

    def visit(level: int, parent: int) -> None:
        meta = metadata[level]
        if meta.format == 0:   # DENSE
            children = [(i, parent * meta.denseSize + i) for i in range(meta.denseSize)]
        else:                  # SPARSE_CSR
            segments, indices = meta.arraySegments.values, meta.arrayIndices.values
            children = [(indices[k], k) for k in range(segments[parent], segments[parent + 1])]
        for coordinate, index in children:
            coords[order[level]] = coordinate
            if level + 1 == len(order):
                position = []
                for d in range(rank):
                    value = coords[d]
                    if d in block_size:
                        value = value * block_size[d] + coords[rank + block_map.index(d)]
                    position.append(value)
                dense[tuple(position)] = stored[index]
            else:
                visit(level + 1, index)

    visit(0, 0)
    return dense
