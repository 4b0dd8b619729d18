"""Pure-Python, bounds-checked reader for TFLite model files (flatbuffer identifier ``TFL3``).

Needs neither TensorFlow nor the flatbuffers package. Every offset and length is checked
against the file before use, so a damaged file raises ModelFormatError, never IndexError,
struct.error or a hang. Vtable slots follow tensorflow/lite/schema/schema.fbs (TF 2.19):
  Model: 0 version, 1 operator_codes, 2 subgraphs, 3 description, 4 buffers, 6 metadata,
         7 signature_defs
  OperatorCode: 0 deprecated_builtin_code:int8, 1 custom_code, 2 version, 3 builtin_code:int32
  SubGraph: 0 tensors, 1 inputs, 2 outputs, 3 operators, 4 name
  Tensor: 0 shape, 1 type:int8, 2 buffer, 3 name, 4 quantization, 5 is_variable, 6 sparsity,
          7 shape_signature
  QuantizationParameters: 2 scale:[float], 3 zero_point:[long], 6 quantized_dimension
  Operator: 0 opcode_index, 1 inputs, 2 outputs, 3/4 builtin_options (union), 5 custom_options,
            9 large_custom_options_offset, 10 large_custom_options_size
  Buffer: 0 data, 1 offset:uint64, 2 size:uint64 (offset/size: data stored after the
          flatbuffer, used by models over 2 GiB)
  Metadata: 0 name, 1 buffer;  SignatureDef: 0 inputs, 1 outputs, 2 signature_key,
            4 subgraph_index;  TensorMap: 0 name, 1 tensor_index
"""
from __future__ import annotations

import os
import struct
from pathlib import Path
from collections import Counter
from dataclasses import dataclass, field

from edgekit.errors import ModelFormatError

_HINT = "re-export or re-download the model"

# BuiltinOperator names indexed by code (schema.fbs of TF 2.19, codes 0..209).
_OPS = tuple((
    "ADD AVERAGE_POOL_2D CONCATENATION CONV_2D DEPTHWISE_CONV_2D DEPTH_TO_SPACE DEQUANTIZE "
    "EMBEDDING_LOOKUP FLOOR FULLY_CONNECTED HASHTABLE_LOOKUP L2_NORMALIZATION L2_POOL_2D "
    "LOCAL_RESPONSE_NORMALIZATION LOGISTIC LSH_PROJECTION LSTM MAX_POOL_2D MUL RELU "
    "RELU_N1_TO_1 RELU6 RESHAPE RESIZE_BILINEAR RNN SOFTMAX SPACE_TO_DEPTH SVDF TANH "
    "CONCAT_EMBEDDINGS SKIP_GRAM CALL CUSTOM EMBEDDING_LOOKUP_SPARSE PAD "
    "UNIDIRECTIONAL_SEQUENCE_RNN GATHER BATCH_TO_SPACE_ND SPACE_TO_BATCH_ND TRANSPOSE MEAN SUB "
    "DIV SQUEEZE UNIDIRECTIONAL_SEQUENCE_LSTM STRIDED_SLICE BIDIRECTIONAL_SEQUENCE_RNN EXP "
    "TOPK_V2 SPLIT LOG_SOFTMAX DELEGATE BIDIRECTIONAL_SEQUENCE_LSTM CAST PRELU MAXIMUM ARG_MAX "
    "MINIMUM LESS NEG PADV2 GREATER GREATER_EQUAL LESS_EQUAL SELECT SLICE SIN TRANSPOSE_CONV "
    "SPARSE_TO_DENSE TILE EXPAND_DIMS EQUAL NOT_EQUAL LOG SUM SQRT RSQRT SHAPE POW ARG_MIN "
    "FAKE_QUANT REDUCE_PROD REDUCE_MAX PACK LOGICAL_OR ONE_HOT LOGICAL_AND LOGICAL_NOT UNPACK "
    "REDUCE_MIN FLOOR_DIV REDUCE_ANY SQUARE ZEROS_LIKE FILL FLOOR_MOD RANGE "
    "RESIZE_NEAREST_NEIGHBOR LEAKY_RELU SQUARED_DIFFERENCE MIRROR_PAD ABS SPLIT_V UNIQUE CEIL "
    "REVERSE_V2 ADD_N GATHER_ND COS WHERE RANK ELU REVERSE_SEQUENCE MATRIX_DIAG QUANTIZE "
    "MATRIX_SET_DIAG ROUND HARD_SWISH IF WHILE NON_MAX_SUPPRESSION_V4 NON_MAX_SUPPRESSION_V5 "
    "SCATTER_ND SELECT_V2 DENSIFY SEGMENT_SUM BATCH_MATMUL PLACEHOLDER_FOR_GREATER_OP_CODES "
    "CUMSUM CALL_ONCE BROADCAST_TO RFFT2D CONV_3D IMAG REAL COMPLEX_ABS HASHTABLE "
    "HASHTABLE_FIND HASHTABLE_IMPORT HASHTABLE_SIZE REDUCE_ALL CONV_3D_TRANSPOSE VAR_HANDLE "
    "READ_VARIABLE ASSIGN_VARIABLE BROADCAST_ARGS RANDOM_STANDARD_NORMAL BUCKETIZE "
    "RANDOM_UNIFORM MULTINOMIAL GELU DYNAMIC_UPDATE_SLICE RELU_0_TO_1 UNSORTED_SEGMENT_PROD "
    "UNSORTED_SEGMENT_MAX UNSORTED_SEGMENT_SUM ATAN2 UNSORTED_SEGMENT_MIN SIGN BITCAST "
    "BITWISE_XOR RIGHT_SHIFT STABLEHLO_LOGISTIC STABLEHLO_ADD STABLEHLO_DIVIDE "
    "STABLEHLO_MULTIPLY STABLEHLO_MAXIMUM STABLEHLO_RESHAPE STABLEHLO_CLAMP "
    "STABLEHLO_CONCATENATE STABLEHLO_BROADCAST_IN_DIM STABLEHLO_CONVOLUTION STABLEHLO_SLICE "
    "STABLEHLO_CUSTOM_CALL STABLEHLO_REDUCE STABLEHLO_ABS STABLEHLO_AND STABLEHLO_COSINE "
    "STABLEHLO_EXPONENTIAL STABLEHLO_FLOOR STABLEHLO_LOG STABLEHLO_MINIMUM STABLEHLO_NEGATE "
    "STABLEHLO_OR STABLEHLO_POWER STABLEHLO_REMAINDER STABLEHLO_RSQRT STABLEHLO_SELECT "
    "STABLEHLO_SUBTRACT STABLEHLO_TANH STABLEHLO_SCATTER STABLEHLO_COMPARE STABLEHLO_CONVERT "
    "STABLEHLO_DYNAMIC_SLICE STABLEHLO_DYNAMIC_UPDATE_SLICE STABLEHLO_PAD STABLEHLO_IOTA "
    "STABLEHLO_DOT_GENERAL STABLEHLO_REDUCE_WINDOW STABLEHLO_SORT STABLEHLO_WHILE "
    "STABLEHLO_GATHER STABLEHLO_TRANSPOSE DILATE STABLEHLO_RNG_BIT_GENERATOR REDUCE_WINDOW "
    "STABLEHLO_COMPOSITE STABLEHLO_SHIFT_LEFT STABLEHLO_CBRT STABLEHLO_CASE").split())
# TensorType names indexed by code, numpy spelling.
_DTYPES = ("float32", "float16", "int32", "uint8", "int64", "string", "bool", "int16",
           "complex64", "int8", "float64", "complex128", "uint64", "resource", "variant",
           "uint32", "uint16", "int4", "bfloat16")
_FLOAT_DTYPES = frozenset({"float32", "float16", "float64", "bfloat16", "complex64", "complex128"})
_ACTIVATIONS = ("NONE", "RELU", "RELU_N1_TO_1", "RELU6", "TANH", "SIGN_BIT")
_PADDINGS = ("SAME", "VALID")

_U8, _I8, _U16, _I32, _U32, _U64, _F32 = (struct.Struct("<" + c) for c in "BbHiIQf")

# BuiltinOptions union type -> (option, vtable slot, scalar type, default) of the options table.
_PAD, _STRIDES = ("padding", 0, _I8, 0), (("stride_w", 1, _I32, 0), ("stride_h", 2, _I32, 0))
_OPTIONS = {
    1: (_PAD, *_STRIDES, ("fused_activation_function", 3, _I8, 0),  # Conv2DOptions
        ("dilation_w_factor", 4, _I32, 1), ("dilation_h_factor", 5, _I32, 1)),
    2: (_PAD, *_STRIDES, ("depth_multiplier", 3, _I32, 0),  # DepthwiseConv2DOptions
        ("fused_activation_function", 4, _I8, 0),
        ("dilation_w_factor", 5, _I32, 1), ("dilation_h_factor", 6, _I32, 1)),
    5: (_PAD, *_STRIDES, ("filter_width", 3, _I32, 0), ("filter_height", 4, _I32, 0),  # Pool2D
        ("fused_activation_function", 5, _I8, 0)),
    8: (("fused_activation_function", 0, _I8, 0), ("keep_num_dims", 2, _U8, 0)),  # FullyConnected
    9: (("beta", 0, _F32, 0.0),),  # SoftmaxOptions
    10: (("axis", 0, _I32, 0), ("fused_activation_function", 1, _I8, 0)),  # Concatenation
    11: (("fused_activation_function", 0, _I8, 0),),  # AddOptions
    21: (("fused_activation_function", 0, _I8, 0),),  # MulOptions
    28: (("fused_activation_function", 0, _I8, 0),),  # SubOptions
    49: (_PAD, *_STRIDES, ("fused_activation_function", 3, _I8, 0)),  # TransposeConvOptions
}


def _name(names: tuple[str, ...], code: int, kind: str) -> str:
    """Enum name; codes from a newer schema than this table get a readable placeholder."""
    return names[code] if 0 <= code < len(names) else f"{kind}_{code}"


class _Reader:
    """Bounds-checked access to one flatbuffer; every failure raises ModelFormatError."""

    def __init__(self, data, origin: str, where: str = "the file"):
        self.data, self.size, self.origin, self.where = data, len(data), origin, where
        # Decoded bytes may exceed the buffer only when tables share data; the cap bounds the
        # work on files crafted to reference one large vector from everywhere.
        self.budget = 8 * self.size + (1 << 20)

    def fail(self, problem: str):
        raise ModelFormatError(f"{self.origin} is truncated or corrupt: {problem}", _HINT)

    def need(self, pos: int, nbytes: int, what: str) -> None:
        if pos < 0:
            self.fail(f"{what} points before the start of {self.where} (offset {pos})")
        if pos + nbytes > self.size:
            self.fail(f"{what} points past the end of {self.where} "
                      f"(offset {pos} of {self.size} bytes)")

    def charge(self, nbytes: int) -> None:
        self.budget -= nbytes
        if self.budget < 0:
            self.fail("its tables reference the same data over and over (cyclic or overlapping "
                      "offsets)")

    def get(self, st: struct.Struct, pos: int, what: str):
        self.need(pos, st.size, what)
        return st.unpack_from(self.data, pos)[0]

    def table(self, pos: int, what: str) -> _Table:
        vt = pos - self.get(_I32, pos, what)
        self.need(vt, 4, f"{what} vtable")
        vt_len, obj_len = struct.unpack_from("<HH", self.data, vt)
        if vt_len < 4 or vt_len % 2 or obj_len < 4:
            self.fail(f"{what} has an invalid vtable at offset {vt}")
        self.need(vt, vt_len, f"{what} vtable")
        self.need(pos, obj_len, what)
        return _Table(self, pos, vt, vt_len, obj_len, what)

    def root(self, what: str) -> _Table:
        return self.table(self.get(_U32, 0, "root table offset"), what)


class _Table:
    """One flatbuffer table. Field accessors take the vtable slot (field id) from the schema."""

    __slots__ = ("r", "pos", "vt", "vt_len", "obj_len", "what")

    def __init__(self, r: _Reader, pos: int, vt: int, vt_len: int, obj_len: int, what: str):
        self.r, self.pos, self.vt, self.vt_len, self.obj_len, self.what = (
            r, pos, vt, vt_len, obj_len, what)

    def _field(self, slot: int, nbytes: int) -> int:
        """Absolute position of a field, or 0 when it is absent (its default applies)."""
        vo = 4 + 2 * slot
        if vo >= self.vt_len:
            return 0
        fo = _U16.unpack_from(self.r.data, self.vt + vo)[0]
        if not fo:
            return 0
        if fo + nbytes > self.obj_len:
            self.r.fail(f"{self.what} has field {slot} outside the table")
        return self.pos + fo

    def scalar(self, slot: int, st: struct.Struct, default=0):
        pos = self._field(slot, st.size)
        return st.unpack_from(self.r.data, pos)[0] if pos else default

    def _ref(self, slot: int, what: str) -> int:
        pos = self._field(slot, 4)
        if not pos:
            return 0
        target = pos + _U32.unpack_from(self.r.data, pos)[0]
        self.r.need(target, 4, f"{self.what} {what}")
        return target

    def table(self, slot: int, what: str) -> _Table | None:
        target = self._ref(slot, what)
        return self.r.table(target, f"{self.what} {what}") if target else None

    def vector(self, slot: int, elem_size: int, what: str) -> tuple[int, int]:
        """(start, length) of a vector field; (0, 0) when absent."""
        target = self._ref(slot, what)
        if not target:
            return 0, 0
        count = _U32.unpack_from(self.r.data, target)[0]
        if target + 4 + count * elem_size > self.r.size:
            self.r.fail(f"{self.what} {what} has {count} elements and runs past the end of "
                        f"{self.r.where} (offset {target} of {self.r.size} bytes)")
        return target + 4, count

    def scalars(self, slot: int, code: str, what: str) -> list | None:
        """A vector of scalars (struct code 'i', 'f', 'q', ...); None when absent."""
        start, count = self.vector(slot, struct.calcsize(code), what)
        if not start:
            return None
        self.r.charge(count * struct.calcsize(code))
        return list(struct.unpack_from(f"<{count}{code}", self.r.data, start))

    def string(self, slot: int, what: str) -> str:
        start, count = self.vector(slot, 1, what)
        self.r.charge(count)
        # A damaged name should not make the whole model unreadable.
        return bytes(self.r.data[start:start + count]).decode("utf-8", "replace")

    def tables(self, slot: int, item: str, plural: str = "") -> list[_Table]:
        """A vector of tables; elements are named '<item> <index>' in error messages."""
        start, count = self.vector(slot, 4, plural or item + "s")
        self.r.charge(4 * count)
        data, out = self.r.data, []
        for i in range(count):
            pos = start + 4 * i
            out.append(self.r.table(pos + _U32.unpack_from(data, pos)[0], f"{item} {i}"))
        return out


@dataclass
class QuantParams:
    """Affine quantization: real = scale * (q - zero_point), per channel of quantized_dimension."""

    scale: list[float]
    zero_point: list[int]
    quantized_dimension: int = 0


@dataclass
class Tensor:
    """One tensor of a subgraph; dtype uses numpy names ('float32', 'int8', ...)."""

    index: int
    name: str
    shape: list[int]
    shape_signature: list[int] | None
    dtype: str
    buffer: int
    quantization: QuantParams | None
    is_variable: bool = False
    sparse: bool = False     # SparsityParameters present: the buffer holds the compressed values


@dataclass
class Operator:
    """One operator; options holds the parsed builtin options edgekit looks at."""

    index: int
    opcode_index: int
    name: str  # builtin name, or the custom code of a CUSTOM op
    builtin: str
    version: int
    inputs: list[int]
    outputs: list[int]
    options: dict


@dataclass
class SubGraph:
    """A graph: tensors, operators, and the tensor indices of its inputs and outputs."""

    name: str
    tensors: list[Tensor]
    inputs: list[int]
    outputs: list[int]
    operators: list[Operator]


@dataclass
class SignatureDef:
    """A named entry point: input/output names -> tensor indices of a subgraph."""

    key: str
    subgraph_index: int
    inputs: dict[str, int]
    outputs: dict[str, int]


@dataclass
class BufferInfo:
    """Where a buffer's bytes are in the file."""

    size: int
    offset: int  # absolute position of the data in the file; 0/0 when empty
    external: bool = False  # stored after the flatbuffer (Buffer.offset/size), not in its data vector


@dataclass
class TFLiteModel:
    """A parsed .tflite file."""

    path: str
    file_size: int
    version: int
    description: str
    subgraphs: list[SubGraph]
    buffers: list[BufferInfo]
    metadata: dict[str, int]  # Model.metadata name -> buffer index
    signature_defs: list[SignatureDef]
    _data: bytes = field(default=b"", repr=False, compare=False)

    def inputs(self) -> list[Tensor]:
        """Input tensors of the main subgraph."""
        sg = self.subgraphs[0] if self.subgraphs else None
        return [sg.tensors[i] for i in sg.inputs] if sg else []

    def outputs(self) -> list[Tensor]:
        sg = self.subgraphs[0] if self.subgraphs else None
        return [sg.tensors[i] for i in sg.outputs] if sg else []

    def op_counts(self) -> dict[str, int]:
        """Operator names over all subgraphs, most frequent first."""
        counts = Counter(op.name for sg in self.subgraphs for op in sg.operators)
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def buffer_bytes(self, index: int) -> bytes:
        buf = self.buffers[index]
        return bytes(self._data[buf.offset:buf.offset + buf.size])

    def parameter_bytes(self) -> int:
        """Total size of the non-empty buffers that tensors reference (weights, constants)."""
        used = {t.buffer for sg in self.subgraphs for t in sg.tensors}
        return sum(self.buffers[i].size for i in used if i < len(self.buffers))

    def float_ops(self) -> list[Operator]:
        """Operators that read or write a floating-point tensor, apart from a trailing post-processing
        op (TFLite_Detection_PostProcess) and the DEQUANTIZE feeding it: Coral's own SSD models end
        that way, the op running on the CPU after the integer graph."""
        found = []
        for sg in self.subgraphs:
            tail = postprocess_tail(sg)
            tail_outputs = {i for op in sg.operators if op.index in tail for i in op.outputs}
            boundary = (set(sg.inputs) | (set(sg.outputs) - tail_outputs)) - {-1}
            for op in sg.operators:
                used = {i for i in (*op.inputs, *op.outputs) if i >= 0}
                if op.index not in tail and any(sg.tensors[i].dtype in _FLOAT_DTYPES for i in used):
                    found.append(op)
            if any(sg.tensors[i].dtype in _FLOAT_DTYPES for i in boundary) and not found:
                found.extend(sg.operators[:1])
        return found

    def is_fully_integer(self) -> bool:
        """True when no operator (but a trailing post-processing op, see float_ops) and no subgraph
        boundary uses a floating-point tensor."""
        return not self.float_ops() and any(sg.operators for sg in self.subgraphs)

    def dynamic_tensors(self) -> list[Tensor]:
        """Tensors whose size is computed at run time (-1 in shape_signature). A free batch
        (-1 first, where the inputs are built with batch 1) is not one: the interpreter runs the
        shape it was allocated with, and converters write -1 there for every Keras model."""
        main = self.subgraphs[0] if self.subgraphs else None
        free_batch = bool(main) and any(t.shape_signature and t.shape_signature[0] == -1 and t.shape[:1] == [1]
                                        for t in self.inputs())
        found = []
        for sg in self.subgraphs:
            for t in sg.tensors:
                signature = t.shape_signature or []
                if free_batch and signature[:1] == [-1] and t.shape[:1] == [1]:
                    signature = signature[1:]
                if -1 in signature:
                    found.append(t)
        return found

    def has_dynamic_shapes(self) -> bool:
        return bool(self.dynamic_tensors())


# Custom ops that LiteRT's stock op resolver registers (tensorflow/lite/core/kernels/register.cc:
# AddCustom) and, of those, the ones the converters edgekit drives (tf2onnx, OpenVINO's TFLite
# frontend) translate. Any other custom op is registered only by its author's runtime (MediaPipe's
# Convolution2DTransposeBias through its XNNPACK build, a vendor's own kernels).
LITERT_CUSTOM_OPS = frozenset({"TFLite_Detection_PostProcess", "Mfcc", "AudioSpectrogram", "NumericVerify"})
CONVERTIBLE_CUSTOM_OPS = frozenset({"TFLite_Detection_PostProcess"})


def custom_op_problem(model: TFLiteModel) -> str | None:
    """One line naming the custom ops no converter can carry, or None."""
    blocking = sorted({op.name for sg in model.subgraphs for op in sg.operators
                       if op.builtin == "CUSTOM" and op.name not in CONVERTIBLE_CUSTOM_OPS})
    if not blocking:
        return None
    names = ", ".join(f"'{n}'" for n in blocking)
    authors = [n for n in blocking if n not in LITERT_CUSTOM_OPS]
    if authors:
        return (f"{Path(model.path).name} uses the custom op {names}, which only its author's runtime registers "
                "(LiteRT's stock resolver, tf2onnx and OpenVINO do not know it)")
    return f"{Path(model.path).name} uses the custom op {names}, which LiteRT runs but no converter translates"


# Ops that run after the integer graph on the CPU and are part of the model as published.
POSTPROCESS_OPS = frozenset({"TFLite_Detection_PostProcess"})


def postprocess_tail(sg: SubGraph) -> set[int]:
    """Operator indices of the post-processing ops of SG and of the DEQUANTIZE ops that only feed them."""
    tail = {op.index for op in sg.operators if op.name in POSTPROCESS_OPS}
    if not tail:
        return tail
    consumers: dict[int, list[Operator]] = {}
    for op in sg.operators:
        for i in op.inputs:
            consumers.setdefault(i, []).append(op)
    for op in sg.operators:
        if op.name == "DEQUANTIZE" and all(c.index in tail for o in op.outputs for c in consumers.get(o, [None]) if c) \
                and any(consumers.get(o) for o in op.outputs):
            tail.add(op.index)
    return tail


# Bytes per element of the types whose size LiteRT checks (see check_constants); int4 packs two.
_ITEM_BITS = {"float32": 32, "float16": 16, "int32": 32, "uint8": 8, "int64": 64, "bool": 8, "int16": 16,
              "complex64": 64, "int8": 8, "float64": 64, "complex128": 128, "uint64": 64, "uint32": 32,
              "uint16": 16, "int4": 4, "bfloat16": 16}


def check_constants(model: TFLiteModel) -> None:
    """Raise ModelFormatError for a constant tensor whose buffer is too small for its shape.

    The rule is LiteRT's own, so that this check never refuses a file LiteRT loads: when
    InterpreterBuilder hands a constant to Subgraph::SetTensorParametersReadOnly
    (tensorflow/lite/core/subgraph.cc), it requires BytesRequired(type, dims) <= buffer size,
    and skips string, resource and variant tensors and sparse tensors, whose buffer holds only the
    compressed values (pruned models: DENSIFY or sparse kernels). A buffer may be larger than the
    shape needs, several tensors may share one buffer, and the bytes may live after the
    flatbuffer (Buffer.offset/size); int4 packs two values per byte. Tests: test_tflite_schema.py
    runs LiteRT's loader on the same files.
    """
    for graph in model.subgraphs:
        for tensor in graph.tensors:
            if not 0 < tensor.buffer < len(model.buffers) or tensor.sparse:
                continue
            size, bits = model.buffers[tensor.buffer].size, _ITEM_BITS.get(tensor.dtype)
            if not size or bits is None or any(d < 0 for d in tensor.shape):
                continue
            count = 1
            for d in tensor.shape:
                count *= d
            needed = (count * bits + 7) // 8
            if needed > size:
                raise ModelFormatError(f"{model.path} is truncated or corrupt: constant tensor '{tensor.name}' of "
                                       f"shape {tensor.shape} ({tensor.dtype}) needs {needed} bytes, its buffer "
                                       f"{tensor.buffer} holds {size}", _HINT)


def _index(r: _Reader, i: int, limit: int, what: str, kind: str, optional: bool = False) -> int:
    """i, checked to be a valid index (or -1, 'absent', when optional)."""
    if not (0 <= i < limit or (optional and i == -1)):
        r.fail(f"{what} refers to {kind} {i} but there are only {limit}")
    return i


def _opcode(t: _Table) -> tuple[str, str, int]:
    """(builtin name, operator name, version) of an OperatorCode."""
    # Codes >= 127 live only in the int32 field; older files set only the int8 one.
    code = max(t.scalar(0, _I8), t.scalar(3, _I32))
    builtin = _name(_OPS, code, "BUILTIN")
    name = (t.string(1, "custom code") or builtin) if builtin == "CUSTOM" else builtin
    return builtin, name, t.scalar(2, _I32, 1)


def _buffer(r: _Reader, t: _Table) -> BufferInfo:
    start, count = t.vector(0, 1, "data")
    offset, size = t.scalar(1, _U64), t.scalar(2, _U64)
    if offset > 1:  # 0 and 1 are placeholders; real external data starts after the flatbuffer
        r.need(offset, size, f"{t.what} data")
        return BufferInfo(size, offset, external=True)
    return BufferInfo(count, start) if count else BufferInfo(0, 0)


def _tensor(r: _Reader, t: _Table, index: int, n_buffers: int) -> Tensor:
    quant, q = None, t.table(4, "quantization")
    scale = q.scalars(2, "f", "scales") if q else None
    if scale:
        quant = QuantParams(scale, q.scalars(3, "q", "zero points") or [], q.scalar(6, _I32))
    buffer = t.scalar(2, _U32)
    if buffer and buffer >= n_buffers:
        r.fail(f"{t.what} refers to buffer {buffer} but there are only {n_buffers}")
    return Tensor(index=index, name=t.string(3, "name"), shape=t.scalars(0, "i", "shape") or [],
                  shape_signature=t.scalars(7, "i", "shape signature"),
                  dtype=_name(_DTYPES, t.scalar(1, _I8), "type"), buffer=buffer,
                  quantization=quant, is_variable=bool(t.scalar(5, _U8)), sparse=t._field(6, 4) != 0)


def _operator(r: _Reader, t: _Table, index: int, codes: list, n_tensors: int) -> Operator:
    opcode_index = _index(r, t.scalar(0, _U32), len(codes), t.what, "operator code")
    builtin, name, version = codes[opcode_index]
    inputs, outputs = ([_index(r, i, n_tensors, t.what, "tensor", True)
                        for i in t.scalars(slot, "i", kind) or ()]
                       for slot, kind in ((1, "inputs"), (2, "outputs")))
    if builtin == "CUSTOM":
        size = t.vector(5, 1, "custom options")[1]
        large_offset, large_size = t.scalar(9, _U64), t.scalar(10, _U64)
        if large_offset > 1:
            r.need(large_offset, large_size, f"{t.what} custom options")
            size = large_size
        options = {"custom_options_size": size}
    else:
        options, spec = {}, _OPTIONS.get(t.scalar(3, _U8))
        table = t.table(4, "options") if spec else None
        for key, slot, st, default in spec if table else ():
            value = table.scalar(slot, st, default)
            if key == "fused_activation_function":
                value = _name(_ACTIVATIONS, value, "ACTIVATION")
            elif key == "padding":
                value = _name(_PADDINGS, value, "PADDING")
            elif st is _U8:
                value = bool(value)
            options[key] = value
    return Operator(index, opcode_index, name, builtin, version, inputs, outputs, options)


def _subgraph(r: _Reader, t: _Table, index: int, codes: list, n_buffers: int) -> SubGraph:
    prefix = f"subgraph {index} " if index else ""  # the main subgraph is the common case
    tensors = [_tensor(r, tt, i, n_buffers) for i, tt in enumerate(t.tables(0, prefix + "tensor"))]
    n = len(tensors)
    inputs, outputs = ([_index(r, i, n, t.what, "tensor") for i in t.scalars(slot, "i", kind) or ()]
                       for slot, kind in ((1, "inputs"), (2, "outputs")))
    operators = [_operator(r, ot, i, codes, n)
                 for i, ot in enumerate(t.tables(3, prefix + "operator"))]
    return SubGraph(t.string(4, "name"), tensors, inputs, outputs, operators)


def _signature(r: _Reader, t: _Table, subgraphs: list[SubGraph]) -> SignatureDef:
    index = _index(r, t.scalar(4, _U32), len(subgraphs), t.what, "subgraph")
    n = len(subgraphs[index].tensors)
    inputs, outputs = ({m.string(0, "name"): _index(r, m.scalar(1, _U32), n, m.what, "tensor")
                        for m in t.tables(slot, f"{t.what} {kind}")}
                       for slot, kind in ((0, "input"), (1, "output")))
    return SignatureDef(t.string(2, "signature key"), index, inputs, outputs)


_MAGIC = ((b"\xff\xd8\xff", "a JPEG image"), (b"\x89PNG", "a PNG image"),
          (b"PK\x03\x04", "a zip archive"), (b"\x89HDF", "an HDF5 (Keras .h5) file"))


def parse_tflite(data: bytes, origin: str = "<bytes>") -> TFLiteModel:
    """Parse a TFLite model held in memory; origin names it in error messages."""
    size = len(data)
    if not size:
        raise ModelFormatError(f"{origin} is empty (0 bytes)", _HINT)
    if bytes(data[4:8]) != b"TFL3":
        if size < 8:
            raise ModelFormatError(f"{origin} is truncated or corrupt: only {size} bytes", _HINT)
        found = next((desc for magic, desc in _MAGIC if bytes(data[:len(magic)]) == magic),
                     f"{bytes(data[4:8])!r}")
        raise ModelFormatError(f"{origin} is not a TFLite model: expected file identifier 'TFL3' "
                               f"at bytes 4..8, found {found}",
                               "pass a .tflite file written by the TFLite converter")
    r = _Reader(data, origin)
    m = r.root("model")
    codes = [_opcode(t) for t in m.tables(1, "operator code")]
    buffers = [_buffer(r, t) for t in m.tables(4, "buffer")]
    subgraphs = [_subgraph(r, t, i, codes, len(buffers))
                 for i, t in enumerate(m.tables(2, "subgraph"))]
    metadata = {t.string(0, "name"): _index(r, t.scalar(1, _U32), len(buffers), t.what, "buffer")
                for t in m.tables(6, "metadata entry", "metadata")}
    return TFLiteModel(path=origin, file_size=size, version=m.scalar(0, _U32),
                       description=m.string(3, "description"), subgraphs=subgraphs,
                       buffers=buffers, metadata=metadata,
                       signature_defs=[_signature(r, t, subgraphs)
                                       for t in m.tables(7, "signature def")],
                       _data=data)


def read_tflite(path) -> TFLiteModel:
    """Read and parse a .tflite file."""
    name = os.fspath(path)
    if os.path.isdir(name):
        raise ModelFormatError(f"{name} is a directory, not a .tflite file",
                               "pass the path of the .tflite file itself")
    try:
        with open(name, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ModelFormatError(f"{name} does not exist", "check the path") from None
    except OSError as e:
        raise ModelFormatError(f"cannot read {name}: {e.strerror or e}",
                               "check that the file is readable") from None
    return parse_tflite(data, name)
