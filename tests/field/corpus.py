"""The field corpus: each model, how a user converts it, what its source framework truly expects,
and the EXPECTED outcome per target and precision once issue 13 is done (the goal state).

An expectation is one of
  PASS                      converts, verify gates pass, and the artifact's predictions equal the
                            source framework's on real photos (tests/field/oracle.py checks that)
  refused("<regex>")        exit 2 with one line that matches: a named, true reason
  gate_fail("<regex>")      exit 1: the artifact is written but verify rejects it, saying why

`PHASE2` names the cells that miss the goal today, and why; test_corpus.py marks them
xfail(strict=True), so a fix that flips one fails the sweep until its mark goes. The recorded
outcome of every cell is in benchmarks/results/field-corpus-*.md (`python -m tests.field.harness`,
or the sweep with EDGEKIT_FIELD_RECORD).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from . import models

# Every cell of the sweep: target -> precisions.
TARGETS = {"tflite": ("fp32", "fp16", "int8"), "edgetpu": ("int8",), "openvino": ("fp32", "fp16", "int8"),
           "onnx": ("fp32", "int8"), "coreml": ("fp32", "fp16", "int8")}
CELLS = [(target, precision) for target, precisions in TARGETS.items() for precision in precisions]


@dataclass(frozen=True)
class Expect:
    kind: str            # pass | refused | gate-fail
    match: str = ""      # regex the one-line reason must match (refused, gate-fail)

    def __str__(self) -> str:
        return "converts, gates pass, equals source" if self.kind == "pass" else f"{self.kind}: /{self.match}/"


PASS = Expect("pass")


def refused(match: str) -> Expect:
    return Expect("refused", match)


def gate_fail(match: str) -> Expect:
    return Expect("gate-fail", match)


@dataclass(frozen=True)
class Pixels:
    """How the SOURCE model truly wants a photo: (pixel - mean) / std per channel, `channels`
    (1 = luminance), or `data` for non-image inputs fed from arrays."""

    mean: float = 127.5
    std: float = 127.5
    channels: int = 3
    data: bool = False


RAW = Pixels(0.0, 1.0)


@dataclass(frozen=True)
class FieldModel:
    name: str
    build: Callable
    pattern: str                          # the issue-13 pattern it reproduces
    args: tuple[str, ...] = ()            # what a user passes besides targets/precision/data
    pixels: Pixels = Pixels()
    data: str = "photos"                  # photos | audio | image+sensors (calibration / verify data)
    expect: dict = field(default_factory=dict)    # (target, precision) -> Expect; default PASS
    key: tuple = (("tflite", "fp32"),)    # cells the default (fast) test runs; the rest are `slow`
    task: str | None = None

    def expected(self, target: str, precision: str) -> Expect:
        return self.expect.get((target, precision), self.expect.get((target, "*"), self.expect.get("*", PASS)))


NORM = ("--mean", "127.5", "--std", "127.5")
INT8 = [(t, "int8") for t in ("tflite", "edgetpu", "openvino", "onnx")]
def _all(expect: Expect, cells) -> dict:
    return {cell: expect for cell in cells}


BICUBIC = refused(r"(?i)bicubic")
SSD_TF2ONNX = refused(r"ends in TFLite_Detection_PostProcess, which tf2onnx .* keep only 79 % of LiteRT's boxes")
FMOD_TF = refused(r"Mod node '[^']+' is fmod .* onnx2tf turns it into TensorFlow's FloorMod")
NMS_RUN_TIME = refused(r"NonMaxSuppression node '\w+' has an output whose size is set at run time")
CUSTOM = refused(r"custom op 'AcmeSwish', which only its author's runtime registers")
YOLO_INT8 = gate_fail(r"(?i)output .*(quantization step|coarser).*(split|normaliz)")

CORPUS: list[FieldModel] = [
    # ------------------------------------------------------------------ inputs of every shape
    FieldModel("keras_grey", models.keras_grey, "greyscale HxWx1 input", NORM, Pixels(channels=1),
               key=(("tflite", "fp32"),)),
    FieldModel("keras_channelless", models.keras_channelless, "channel-less HxW input (28x28)", NORM,
               Pixels(channels=1), key=(("openvino", "fp32"),)),
    FieldModel("onnx_grey", models.onnx_grey, "greyscale NCHW [1,1,H,W] ONNX", NORM, Pixels(channels=1),
               key=(("onnx", "fp32"),)),
    FieldModel("keras_free_size", models.keras_free_size, "free-size Keras input (None, None, 3)",
               (*NORM, "--input-size", "32"), key=(("tflite", "fp32"),)),
    FieldModel("savedmodel_free_size", models.savedmodel_free_size, "free-size SavedModel signature",
               (*NORM, "--input-size", "32"), key=(("openvino", "fp32"),)),
    FieldModel("onnx_free_size", models.onnx_free_size, "free-size ONNX ['N',3,'H','W']",
               (*NORM, "--input-size", "32"), key=(("onnx", "fp32"),)),
    FieldModel("tflite_free_size", models.tflite_free_size, "free-size TFLite signature [1,-1,-1,3]",
               (*NORM, "--input-size", "16"), key=(("openvino", "fp32"),)),
    FieldModel("keras_batch4", models.keras_batch4, "fixed batch 4", NORM, key=(("tflite", "fp32"),)),
    FieldModel("savedmodel_dynamic_batch", models.savedmodel_dynamic_batch, "batch -1 SavedModel", NORM,
               key=(("onnx", "fp32"),)),
    FieldModel("tflite_dynamic_batch", models.tflite_dynamic_batch, "batch -1 TFLite signature", NORM,
               key=(("edgetpu", "int8"),)),
    FieldModel("keras_two_inputs", models.keras_two_inputs, "two inputs: image + sensor vector", NORM,
               data="image+sensors", key=(("onnx", "fp32"),)),
    FieldModel("keras_audio", models.keras_audio, "non-image tensor: audio frames (1, 4000)",
               pixels=Pixels(data=True), data="audio", key=(("tflite", "fp32"),)),
    # ------------------------------------------------------------ normalization inside the graph
    FieldModel("keras_rescaling", models.keras_rescaling, "Keras Rescaling(1/127.5, offset=-1) first",
               pixels=RAW, key=(("tflite", "fp32"),)),
    FieldModel("keras_normalization", models.keras_normalization, "Keras Normalization layer first",
               pixels=RAW, key=(("openvino", "fp32"),)),
    FieldModel("onnx_sub_div", models.onnx_sub_div, "ONNX constant Sub/Div at the entry", pixels=RAW,
               key=(("onnx", "fp32"),)),
    FieldModel("onnx_mul_add", models.onnx_mul_add, "ONNX constant Mul/Add at the entry", pixels=RAW,
               key=(("openvino", "fp32"),)),
    FieldModel("tflite_entry_norm", models.tflite_entry_norm, "TFLite MUL/ADD at the entry", pixels=RAW,
               key=(("onnx", "fp32"),)),
    # ---------------------------------------------------------------------- outputs and ops
    # OpenVINO int8 stays healthy: NNCF quantizes op inputs, not the concatenated output (the oracle agrees)
    FieldModel("keras_yolo_mixed", models.keras_yolo_mixed, "YOLO-style output mixing pixel boxes and scores",
               NORM, expect=_all(YOLO_INT8, [("tflite", "int8"), ("edgetpu", "int8"), ("onnx", "int8")]),
               key=(("tflite", "int8"),), task="detection"),
    # int8 keeps the op after an integer body (tflite_postprocess), as in Coral's SSD models
    # tf2onnx, the first step to ONNX (and on to OpenVINO or Core ML), keeps only 79 % of its boxes
    FieldModel("tflite_ssd", models.tflite_ssd, "SSD with TFLite_Detection_PostProcess", NORM,
               expect={("openvino", "*"): refused(r"OpenVINO has no conversion rule for the tflite op "
                                                  r"TFLite_Detection_PostProcess"),
                       ("onnx", "*"): SSD_TF2ONNX, ("coreml", "*"): SSD_TF2ONNX},
               key=(("edgetpu", "int8"), ("onnx", "fp32")), task="detection"),
    # onnx2tf pads NMS to a fixed size: every route through TensorFlow (TFLite, Edge TPU, Core ML)
    FieldModel("onnx_nms", models.onnx_nms, "ONNX NMS outputs of dynamic shape", NORM,
               expect=_all(NMS_RUN_TIME, [c for c in CELLS if c[0] in ("tflite", "edgetpu", "coreml")]),
               key=(("openvino", "fp32"), ("tflite", "fp32"), ("openvino", "int8"), ("onnx", "int8")),
               task="detection"),
    FieldModel("keras_segmentation", models.keras_segmentation, "segmentation (per-pixel logits)", NORM,
               key=(("tflite", "int8"),), task="segmentation"),
    # OpenVINO int8: NNCF's default averaged ranges clipped the brightest calibration photo (24 % off)
    FieldModel("keras_hard_swish", models.keras_hard_swish, "hard-swish activation", NORM,
               key=(("edgetpu", "int8"), ("openvino", "int8"))),
    FieldModel("torch_channel_shuffle", models.torch_channel_shuffle, "channel shuffle (5-D view/transpose)",
               ("--input-size", "32", *NORM), key=(("onnx", "fp32"),)),
    FieldModel("torch_grey", models.torch_grey, "greyscale TorchScript (no recorded shape)",
               ("--input-size", "32", *NORM), Pixels(channels=1), key=(("onnx", "fp32"), ("coreml", "fp32"))),
    FieldModel("onnx_nhwc_nonsquare", models.onnx_nhwc_nonsquare, "NHWC non-square ONNX (24x40)", NORM,
               key=(("openvino", "fp32"),)),
    # OpenVINO: no ResizeBicubic rule, and through ONNX its Interpolate ignores exclude_outside (2 % off)
    FieldModel("keras_bicubic", models.keras_bicubic, "bicubic upsample", NORM,
               expect={("tflite", "*"): BICUBIC, ("edgetpu", "*"): BICUBIC, ("openvino", "*"): BICUBIC,
                       ("coreml", "*"): BICUBIC},
               key=(("tflite", "fp32"), ("openvino", "fp32"))),
    FieldModel("torch_fmod", models.torch_fmod, "an op Core ML lacks (fmod)", ("--input-size", "32", *NORM),
               expect={("coreml", "*"): refused(r"torch op 'fmod'.*also tried via torch → onnx → savedmodel → coreml: the ONNX Mod"),
                       ("tflite", "*"): FMOD_TF, ("edgetpu", "*"): FMOD_TF},
               key=(("coreml", "fp32"), ("openvino", "fp32"), ("tflite", "fp32"))),
    # ------------------------------------------------------------- float TFLite schema features
    FieldModel("tflite_shared_buffers", models.tflite_shared_buffers, "TFLite shared weight buffers", NORM,
               key=(("tflite", "int8"),)),
    FieldModel("tflite_offset_buffers", models.tflite_offset_buffers, "TFLite buffers outside the flatbuffer",
               NORM, key=(("openvino", "int8"),)),
    FieldModel("tflite_sparse", models.tflite_sparse, "TFLite sparse weights (DENSIFY)", NORM,
               key=(("openvino", "fp32"),)),
    FieldModel("tflite_fp16", models.tflite_fp16, "TFLite fp16 weights behind DEQUANTIZE", NORM,
               key=(("edgetpu", "int8"),)),
    FieldModel("tflite_int4", models.tflite_int4, "TFLite int4 weights behind DEQUANTIZE", NORM,
               key=(("onnx", "fp32"),)),
    FieldModel("tflite_custom_op", models.tflite_custom_op, "custom op only its author's runtime registers",
               NORM, expect={"*": CUSTOM}, key=(("tflite", "int8"),)),
]

BY_NAME = {m.name: m for m in CORPUS}

# Cells that miss the goal today, and why. test_corpus.py marks them xfail(strict=True): one that
# starts passing fails the sweep until its mark goes. None now: the 11 of the sweep of 2026-12-01
# (OpenVINO int8 of toy models, int8 of the model with NMS inside) meet the oracle since NNCF takes
# activation ranges as min/max over all calibration samples and NMS indices of run-time size are
# compared as detections (oracle._Nms).
PHASE2: dict[tuple[str, str, str], str] = {}
