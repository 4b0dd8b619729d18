"""TFLite -> ONNX with tf2onnx: lets a float .tflite (SDK and AutoML exports) reach OpenVINO's
ONNX path, ONNX Runtime, and onnx2tf for full-integer requantization."""
from __future__ import annotations

from pathlib import Path

from ..errors import ConversionError, UnsupportedRouteError
from ..sources.base import SourceModel
from ..sources.onnx import OnnxSource, load_checked
from ..tflite_model import POSTPROCESS_OPS, custom_op_problem
from .base import Bridge, ConvertContext, register
from .tf2onnx_cli import run_tf2onnx
from .tflite_weights import needs_rewrite, plain_float_weights

CUSTOM_OP_REMEDY = "convert from the model's original framework, or ask its author for a build without that op"


@register
class TFLiteToOnnx(Bridge):
    name = "tflite-to-onnx"
    src, dst = "tflite", "onnx"
    tool = "tf2onnx"
    requires = ("tf2onnx", "tensorflow", "onnx")

    def convert(self, source: SourceModel, workdir: Path, ctx: ConvertContext) -> SourceModel:
        if not source.is_float():
            raise UnsupportedRouteError(f"{source.path} is already quantized; re-quantizing an integer model "
                                        "compounds rounding error", "convert from the float model")
        problem = custom_op_problem(source.model)
        if problem:   # tf2onnx would emit an op no ONNX runtime has, and the checker's words hide why
            raise UnsupportedRouteError(problem, CUSTOM_OP_REMEDY)
        postprocess = sorted({op.name for sg in source.model.subgraphs for op in sg.operators
                              if op.name in POSTPROCESS_OPS})
        if postprocess:   # tf2onnx emulates it with ONNX NonMaxSuppression, which selects other boxes
            raise UnsupportedRouteError(
                f"{Path(source.path).name} ends in {postprocess[0]}, which tf2onnx (the first step from TFLite to "
                f"ONNX, and on to OpenVINO or Core ML) rewrites into ONNX ops that keep only 79 % of LiteRT's boxes "
                f"(field corpus SSD)",
                "convert to tflite or edgetpu (the op is kept after the int8 body, as in Coral's SSD models), or "
                "export the model without its post-processing and run NMS in your code")
        flatbuffer = Path(source.path)
        if needs_rewrite(source.model):   # tf2onnx reads every buffer as dense data of its own type
            flatbuffer = workdir / "plain_weights.tflite"
            flatbuffer.write_bytes(plain_float_weights(Path(source.path).read_bytes()))
        path = workdir / "from_tflite.onnx"
        run_tf2onnx(["--tflite", str(flatbuffer)], path)
        return OnnxSource(path, load_checked(path))
