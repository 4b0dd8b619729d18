"""The field corpus: each model, how a user converts it, what its source framework truly expects,
and the EXPECTED outcome per target and precision once issue 13 is done (the goal state).

An expectation is one of
  PASS                      converts, verify gates pass, and the artifact's predictions equal the
                            source framework's on real photos (tests/field/oracle.py checks that)
  refused("<regex>")        exit 2 with one line that matches: a named, true reason
  gate_fail("<regex>")      exit 1: the artifact is written but verify rejects it, saying why

`PHASE2` names, per cell, why today's code does not reach the goal yet; test_corpus.py marks those
cells xfail(strict=True) so the next phase flips them. /work/notes/field-baseline.md (written by
`python -m tests.field.harness`) records today's actual outcome of every cell.
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
ISSUE14 = "issue 14: Core ML from keras/savedmodel/onnx/tflite sources"


def _all(expect: Expect, cells) -> dict:
    return {cell: expect for cell in cells}


BICUBIC = refused(r"(?i)bicubic")
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
    FieldModel("tflite_ssd", models.tflite_ssd, "SSD with TFLite_Detection_PostProcess", NORM,
               expect={("openvino", "*"): refused(r"OpenVINO has no conversion rule for the tflite op "
                                                  r"TFLite_Detection_PostProcess")},
               key=(("edgetpu", "int8"),), task="detection"),
    FieldModel("onnx_nms", models.onnx_nms, "ONNX NMS outputs of dynamic shape", NORM,
               expect=_all(refused(r"NonMaxSuppression|NON_MAX_SUPPRESSION"),
                           [("tflite", "int8"), ("edgetpu", "int8")]),
               key=(("openvino", "fp32"),), task="detection"),
    FieldModel("keras_segmentation", models.keras_segmentation, "segmentation (per-pixel logits)", NORM,
               key=(("tflite", "int8"),), task="segmentation"),
    FieldModel("keras_hard_swish", models.keras_hard_swish, "hard-swish activation", NORM,
               key=(("edgetpu", "int8"),)),
    FieldModel("torch_channel_shuffle", models.torch_channel_shuffle, "channel shuffle (5-D view/transpose)",
               ("--input-size", "32", *NORM), key=(("onnx", "fp32"),)),
    FieldModel("onnx_nhwc_nonsquare", models.onnx_nhwc_nonsquare, "NHWC non-square ONNX (24x40)", NORM,
               key=(("openvino", "fp32"),)),
    FieldModel("keras_bicubic", models.keras_bicubic, "bicubic upsample",
               NORM, expect={("tflite", "*"): BICUBIC, ("edgetpu", "*"): BICUBIC}, key=(("tflite", "fp32"),)),
    FieldModel("torch_fmod", models.torch_fmod, "an op Core ML lacks (fmod)", ("--input-size", "32", *NORM),
               expect={("coreml", "*"): refused(r"fmod")}, key=(("coreml", "fp32"), ("openvino", "fp32"))),
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

# Why today's code misses the goal, per model (every cell but Core ML), from the baseline run
# (/work/notes/field-baseline.md) and the root causes in /work/notes/field-findings.md.
_MODEL_REASON = {
    "keras_grey": "greyscale input: calibration/verify feed 3-channel photos (luminance, §1)",
    "onnx_grey": "greyscale input: calibration/verify feed 3-channel photos (luminance, §1)",
    "keras_channelless": "channel-less HxW input reported as 'size unknown' (§1)",
    "keras_free_size": "--input-size ignored for free-size Keras inputs (§1)",
    "savedmodel_free_size": "--input-size ignored for free-size SavedModel signatures (§1)",
    "onnx_free_size": "--input-size ignored for free-size ONNX inputs (§1)",
    "tflite_free_size": "--input-size ignored for free-size TFLite inputs (§1)",
    "keras_batch4": "batch 4 not pinned to 1 (§1)",
    "keras_two_inputs": "several inputs: --calib/--verify-data .npz per input name (§1)",
    "keras_audio": "non-image tensors from .npy, never preprocessed (§1)",
    "keras_rescaling": "normalization inside the graph not detected: second normalization (§2)",
    "keras_normalization": "normalization inside the graph not detected: second normalization (§2)",
    "onnx_sub_div": "normalization inside the graph not detected: second normalization (§2)",
    "onnx_mul_add": "normalization inside the graph not detected: second normalization (§2)",
    "tflite_entry_norm": "normalization inside the graph not detected: second normalization (§2)",
}
# Reasons that hold for some targets only.
_TARGET_REASON = {
    ("onnx_nms", "tflite"): "NMS with run-time output size through onnx2tf/TFLite (§1, §3)",
    ("onnx_nms", "edgetpu"): "NMS with run-time output size through onnx2tf/TFLite (§1, §3)",
    ("tflite_ssd", "onnx"): "tf2onnx's TFLite_Detection_PostProcess keeps 79 % of TFLite's boxes; verify's "
                            "detection parity fails it (§3)",
}
_CELL_REASON = {
    ("keras_bicubic", "openvino", "fp32"): "OpenVINO has no ResizeBicubic rule; the fallback through ONNX's cubic "
                                           "Resize differs from Keras by ~2 % of a channel's scale on photos, which "
                                           "the fp32 cosine gate (0.9999) passes (§4)",
}
# Cells that reach the goal already, although their model has a reason above: §1/§2 cells the
# branch `inputs` saw XPASS (key cells, tflite/onnx int8, keras_two_inputs but openvino int8);
# the rest of those models' sweep is not yet re-run.
_INPUTS_DONE = ("keras_grey", "keras_channelless", "onnx_grey", "keras_free_size", "savedmodel_free_size",
                "onnx_free_size", "tflite_free_size", "keras_batch4", "keras_audio", "keras_rescaling",
                "keras_normalization", "onnx_sub_div", "onnx_mul_add", "tflite_entry_norm")
_CELL_OK: set = {
    *{(m, t, "int8") for m in _INPUTS_DONE for t in ("tflite", "onnx")},
    *{(m, *cell) for m in _INPUTS_DONE for cell in BY_NAME[m].key},
    *{("keras_two_inputs", t, p) for t, p in CELLS if t != "coreml" and (t, p) != ("openvino", "int8")},
    # the verifyx branch's full corpus run saw these reach the goal (oracle included)
    ("keras_free_size", "tflite", "fp32"), ("savedmodel_free_size", "openvino", "fp32"),
}


def _phase2() -> dict[tuple[str, str, str], str]:
    marks = {}
    for model in CORPUS:
        for target, precision in CELLS:
            cell = (model.name, target, precision)
            if target == "coreml":
                if not model.name.startswith("torch_"):
                    marks[cell] = ISSUE14
                continue
            reason = (_CELL_REASON.get(cell) or _TARGET_REASON.get((model.name, target))
                      or _MODEL_REASON.get(model.name))
            if reason and cell not in _CELL_OK:
                marks[cell] = f"issue 13 phase 2: {reason}"
    return marks


# (model, target, precision) -> why it fails today; test_corpus.py marks these xfail(strict=True).
PHASE2: dict[tuple[str, str, str], str] = _phase2()
