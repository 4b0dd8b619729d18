"""What the Edge TPU compiler maps, after Coral's documented table
(https://coral.ai/docs/edgetpu/models-intro/#supported-operations), and how it words its verdicts.

Each supported op lists the minimum Edge TPU runtime version that maps it and the known
limitation Coral documents; the limitations edgekit can check on the flatbuffer are checked in
analyze.py. Status strings are the compiler's own, as printed in its operation log.
"""
from __future__ import annotations

from dataclasses import dataclass

# The compiler's status wording (edgetpu_compiler 14-16 operation logs).
MAPPED = "Mapped to Edge TPU"
UNSUPPORTED_TYPE = "Operation is working on an unsupported data type"
MULTIPLE_SUBGRAPHS = "More than one subgraph is not supported"
UNSPECIFIED = "Operation is otherwise supported, but not mapped due to some unspecified limitation"
NOT_SUPPORTED = "Operation not supported"
VERSION_NOT_SUPPORTED = "Operation version not supported"
UNSUPPORTED_RANK = "Tensor has unsupported rank (up to 3 innermost dimensions mapped)"
NON_UNIT_STRIDES = "Only Strided-Slice with unitary strides supported"

# Usable on-chip parameter cache. The chip has 8 MiB of SRAM; compilers 14-16 report between
# about 6.9 MiB and 8 MiB "used + remaining" for one model, depending on activations.
ON_CHIP_BYTES = 8 * 1024 * 1024
ON_CHIP_USABLE_BYTES = int(6.91 * 1024 * 1024)


@dataclass(frozen=True)
class OpSupport:
    runtime: int          # minimum Edge TPU runtime version that maps it (10 = "All")
    limitation: str = ""  # Coral's documented known limitation


SUPPORTED: dict[str, OpSupport] = {
    "ADD": OpSupport(10),
    "AVERAGE_POOL_2D": OpSupport(10, "No fused activation function."),
    "CONCATENATION": OpSupport(10, "No fused activation function. If any input is a compile-time constant "
                                   "tensor, there must be only 2 inputs, and this constant tensor must be "
                                   "all zeroes (effectively, a zero-padding op)."),
    "CONV_2D": OpSupport(10, "Must use the same dilation in x and y dimensions."),
    "DEPTHWISE_CONV_2D": OpSupport(10, "Must use the same dilation in x and y dimensions."),
    "EXPAND_DIMS": OpSupport(13),
    "FULLY_CONNECTED": OpSupport(10, "Only the default format is supported for fully-connected weights. "
                                     "Output tensor is one-dimensional."),
    "L2_NORMALIZATION": OpSupport(10),
    "LOGISTIC": OpSupport(10),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": OpSupport(14, "Unidirectional LSTM only."),
    "MAXIMUM": OpSupport(10),
    "MAX_POOL_2D": OpSupport(10, "No fused activation function."),
    "MEAN": OpSupport(10, "No reduction in batch dimension. If a z-reduction, the z-dimension must be "
                          "multiple of 4."),
    "MINIMUM": OpSupport(10),
    "MUL": OpSupport(10),
    "PACK": OpSupport(10, "No packing in batch dimension."),
    "PAD": OpSupport(10, "No padding in batch dimension."),
    "PRELU": OpSupport(13, "Alpha must be 1-dimensional (only the innermost dimension can be >1 size)."),
    "QUANTIZE": OpSupport(13),
    "REDUCE_MAX": OpSupport(14, "Cannot operate on the batch dimension."),
    "REDUCE_MIN": OpSupport(14, "Cannot operate on the batch dimension."),
    "RELU": OpSupport(10),
    "RELU6": OpSupport(10),
    "RELU_N1_TO_1": OpSupport(10),
    "RESHAPE": OpSupport(10, "Certain reshapes might not be mapped for large tensor sizes."),
    "RESIZE_BILINEAR": OpSupport(10, "Input/output is a 3-dimensional tensor. Depending on input/output "
                                     "size, this operation may not be mapped to avoid loss in precision."),
    "RESIZE_NEAREST_NEIGHBOR": OpSupport(10, "Input/output is a 3-dimensional tensor. Depending on "
                                             "input/output size, this operation may not be mapped to "
                                             "avoid loss in precision."),
    "RSQRT": OpSupport(14),
    "SLICE": OpSupport(10),
    "SOFTMAX": OpSupport(10, "Supports only 1-D input tensor with a max of 16,000 elements."),
    "SPACE_TO_DEPTH": OpSupport(10),
    "SPLIT": OpSupport(10, "No splitting in batch dimension."),
    "SQUARED_DIFFERENCE": OpSupport(14),
    "SQUEEZE": OpSupport(10),
    "STRIDED_SLICE": OpSupport(10, "Supported only when all strides are equal to 1 (that is, effectively "
                                   "a Stride op), and with ellipsis-axis-mask == 0, and new-axis-max == 0."),
    "SUB": OpSupport(10),
    "SUM": OpSupport(13, "Cannot operate on the batch dimension."),
    "TANH": OpSupport(10),
    "TRANSPOSE_CONV": OpSupport(13),
}

# Newest op version each edgetpu_compiler release maps, by compiler major version; a newer one
# gets "Operation version not supported". RESIZE_NEAREST_NEIGHBOR v3 (half_pixel_centers=True,
# what TF2's UpSampling2D/Resizing and tf.image.resize emit):
#  - compiler 14 and 15 refuse it: tests/fixtures/edgetpu_logs/tiny_yolo_v14_edgetpu.log,
#    google-coral/edgetpu#420 (15.0.340273435, "RESIZE_NEAREST_NEIGHBOR 4 Operation version not
#    supported");
#  - compiler 16 maps it: tests/fixtures/edgetpu_logs/yolov5n_v16_edgetpu.log (16.0.384591198,
#    a YOLOv5n whose TF export upsamples with tf.image.resize(method="nearest")).
# Versions before 14 behave like 14 here.
MAX_VERSION: dict[str, dict[int, int]] = {"RESIZE_NEAREST_NEIGHBOR": {14: 2, 15: 2, 16: 3}}
VERSION_ADVICE = {"RESIZE_NEAREST_NEIGHBOR": "compile with edgetpu_compiler 16, or upsample with "
                                             "half_pixel_centers=False or a transposed convolution"}


def max_version(op: str, compiler: int) -> int | None:
    """The newest version of OP that edgetpu_compiler COMPILER (major version) maps, or None."""
    table = MAX_VERSION.get(op)
    if not table:
        return None
    known = sorted(table)
    return table[max([v for v in known if v <= compiler], default=known[0])]


# Supported ops the compiler maps or not depending on tensor sizes (Coral's table: "Depending on
# input/output size, this operation may not be mapped to avoid loss in precision"; "Certain
# reshapes might not be mapped for large tensor sizes"). The prediction says "may not map" with
# the documented limit instead of a certain "Mapped". Coral gives no number for "large": the
# threshold below (1 M elements, 1 MiB of int8) is edgekit's, a quarter of the on-chip memory.
MAY_NOT_MAP = "Mapped to Edge TPU unless the compiler rejects its size (may not map)"
SIZE_DEPENDENT = frozenset({"RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "RESHAPE"})
LARGE_TENSOR_ELEMENTS = 1 << 20

# Concrete advice for ops the Edge TPU never maps.
SUGGESTIONS: dict[str, str] = {
    "HARD_SWISH": "replace HARD_SWISH with ReLU6 (MobileNetV3 'minimalistic' variants do this)",
    "LEAKY_RELU": "replace LEAKY_RELU with ReLU (or PReLU with shared_axes=[1, 2])",
    "GELU": "replace GELU with ReLU6",
    "ELU": "replace ELU with ReLU",
    "TRANSPOSE": "avoid transposes: keep the graph channels-last (NHWC) end to end",
    "TFLite_Detection_PostProcess": "it runs on the CPU after the Edge TPU segment (Coral's SSD models do "
                                    "this); keep it the last op",
    "NON_MAX_SUPPRESSION_V4": "move NMS post-processing out of the graph",
    "NON_MAX_SUPPRESSION_V5": "move NMS post-processing out of the graph",
    "SIN": "SIN has no Edge TPU kernel: precompute it, or move it after the last mapped op",
    "COS": "COS has no Edge TPU kernel: precompute it, or move it after the last mapped op",
    "FLOOR_MOD": "FLOOR_MOD has no Edge TPU kernel: move it to CPU post-processing",
    "FLOOR_DIV": "FLOOR_DIV has no Edge TPU kernel: move it to CPU post-processing",
    "DIV": "replace division by a constant with MUL by its reciprocal",
    "EXP": "EXP has no Edge TPU kernel: move it to CPU post-processing",
    "GATHER": "replace GATHER with SLICE/STRIDED_SLICE of unit stride where the indices are constant",
    "BATCH_MATMUL": "replace BATCH_MATMUL with FULLY_CONNECTED on 2-D inputs",
    "ARG_MAX": "take ARG_MAX on the CPU from the model's output",
    "CAST": "remove CAST: keep every tensor int8/uint8",
    "DEQUANTIZE": "keep the op quantized: the converter left a float island here",
}
