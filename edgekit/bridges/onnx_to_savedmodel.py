"""ONNX -> SavedModel (NHWC) with onnx2tf, run in a child process.

Why a child: onnx2tf reads a sample-data .npy from the working directory and downloads it from
GitHub when absent, and it can abort the interpreter on unsupported graphs. The child gets its
own working directory with that file already written from our own images, and a proxy that
points at a closed loopback port, so nothing ever leaves the machine.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from ..deps import tool_env
from ..errors import ConversionError, MissingDependencyError, UnsupportedRouteError
from ..sources.base import SourceModel
from ..sources.onnx import graph_nodes, node_label
from ..sources.savedmodel import SavedModelSource
from .base import Bridge, ConvertContext, register
from .onnx2tf_worker import NO_ONNXSIM

SAMPLE_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"
TIMEOUT_S = 1800


@register
class OnnxToSavedModel(Bridge):
    name = "onnx-to-savedmodel"
    src, dst = "onnx", "savedmodel"
    tool = "onnx2tf"
    requires = ("onnx2tf", "tensorflow", "onnx")

    def convert(self, source: SourceModel, workdir: Path, ctx: ConvertContext) -> SourceModel:
        problem = onnx2tf_problem(source.model)
        if problem:
            raise UnsupportedRouteError(*problem)
        job = workdir / "onnx2tf"
        job.mkdir()
        np.save(job / SAMPLE_FILE, _sample_data(ctx))
        out = workdir / "saved_model_nhwc"
        # onnx2tf rewrites its input file in place (onnxsim): hand it a copy, never the user's model
        shutil.copyfile(source.path, job / "model.onnx")
        _scope_safe_node_names(job / "model.onnx")
        spec = {"onnx": str(job / "model.onnx"), "out": str(out),
                "inputs": {t.name: t.shape for t in source.inputs()},
                # channels-last images (tf2onnx output from TFLite/SavedModel), channel-less images and
                # tensors stay as they are; only NCHW images become NHWC
                "keep_nhwc": [r.name for r in source.described_inputs() if r.layout != "NCHW"]}
        (job / "job.json").write_text(json.dumps(spec))
        env = tool_env(HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9",
                       http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9", NO_PROXY="",
                       TF_CPP_MIN_LOG_LEVEL="3")   # onnx2tf runs `onnxsim` from this env's bin/
        try:
            proc = subprocess.run([sys.executable, "-m", "edgekit.bridges.onnx2tf_worker", "job.json"],
                                  cwd=job, env=env, capture_output=True, text=True, timeout=TIMEOUT_S,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise ConversionError(f"onnx2tf did not finish in {TIMEOUT_S} s", "try a smaller model") from None
        (workdir / "onnx2tf.log").write_text(proc.stdout + proc.stderr)
        if proc.returncode == NO_ONNXSIM:
            raise MissingDependencyError("onnx2tf (its graph simplifier, run as a command)", "onnxsim", "torch")
        if proc.returncode != 0 or not (out / "saved_model.pb").exists():
            raise ConversionError(f"onnx2tf could not convert {source.describe()}: {_last_error(proc)}",
                                  "the graph uses ops or layouts onnx2tf cannot map; try another export "
                                  "(opset, static shapes) or another target")
        return SavedModelSource.from_path(out, probe=False)


def onnx2tf_problem(model) -> tuple[str, str] | None:
    """(problem, remedy) for the first node of the ONNX MODEL (a ModelProto) that onnx2tf turns
    into something else, else None. Each was seen in the field corpus and is pinned against the raw
    runtimes by tests/field/test_upstream_facts.py:

    - NonMaxSuppression: its selected_indices [K, 3] get their size at run time; onnx2tf pads them
      to a fixed size for TensorFlow ([10, 3] for the corpus's [K, 3]), another output.
    - Mod with fmod=1 (C's fmod, torch.fmod: the sign of the dividend) becomes TensorFlow's
      FloorMod (the sign of the divisor): every negative input differs (cosine 0.80 in the corpus).
    """
    for node in graph_nodes(model.graph):
        name = node_label(node)
        if node.op_type == "NonMaxSuppression":
            return (f"the ONNX NonMaxSuppression node '{name}' has an output whose size is set at run time; onnx2tf "
                    f"pads it to a fixed size for TensorFlow and TFLite, another output than the source's",
                    "convert to onnx or openvino (they keep it), or export the model without NMS (boxes and "
                    "scores) and let edgekit's decoder run it")
        fmod = [a.i for a in node.attribute if a.name == "fmod"]
        if node.op_type == "Mod" and fmod and fmod[0] == 1:
            return (f"the ONNX Mod node '{name}' is fmod (the sign of the dividend, torch.fmod); onnx2tf turns it "
                    f"into TensorFlow's FloorMod (the sign of the divisor), so negative values would differ",
                    "convert to onnx or openvino (they compute fmod), or use torch.remainder if floor modulo "
                    "is what the model means")
    return None


_SCOPE_SAFE = re.compile(r"[A-Za-z0-9.][A-Za-z0-9_.\\/>-]*$")


def _scope_safe_node_names(path: Path) -> None:
    """onnx2tf names Keras layers after ONNX nodes (grouped convolutions become Conv2D layers), and
    TensorFlow refuses scope names outside [A-Za-z0-9.][A-Za-z0-9_.\\/>-]*. Nodes that tf2onnx names
    after TFLite tensors carry ';' ("conv/BiasAdd;conv/Conv2D"), so a float .tflite (MediaPipe's
    face detectors) failed with "... is not a valid root scope name". Rename those nodes."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    taken = {node.name for node in model.graph.node}
    changed = False
    for node in model.graph.node:
        if not node.name or _SCOPE_SAFE.match(node.name):
            continue
        clean = re.sub(r"[^A-Za-z0-9_.\\/>-]", "_", node.name)
        clean = clean if _SCOPE_SAFE.match(clean) else f"n{clean}"
        while clean in taken:
            clean += "_"
        taken.add(clean)
        node.name, changed = clean, True
    if changed:
        onnx.save(model, str(path))


def _sample_data(ctx: ConvertContext) -> np.ndarray:
    """onnx2tf's own check data: 20x128x128x3 RGB in [0, 1], from our images when we have them."""
    import cv2

    images = ctx.sample_images
    if images is None or len(images) == 0:
        return np.random.default_rng(0).random((20, 128, 128, 3), dtype=np.float32)
    pre = ctx.preprocess
    pixels = images * np.asarray(pre.std, np.float32) + np.asarray(pre.mean, np.float32)
    if pixels.shape[-1] == 1:   # greyscale: the sample file is RGB
        pixels = np.repeat(pixels, 3, axis=-1)
    if pre.color_order == "BGR":
        pixels = pixels[..., ::-1]
    picks = [pixels[i % len(pixels)] for i in range(20)]
    return np.stack([cv2.resize(np.clip(p, 0, 255), (128, 128)) / 255.0 for p in picks]).astype(np.float32)


_NOISE = re.compile(r"^([WIE]\d{4} |WARNING: All log messages|\s*$)")


def _last_error(proc: subprocess.CompletedProcess) -> str:
    """The converter's own last complaint, without TensorFlow's start-up chatter."""
    lines = [l.strip() for l in (proc.stdout + proc.stderr).splitlines() if not _NOISE.match(l)]
    errors = [l for l in lines if "Error" in l or "ERROR" in l]
    if proc.returncode < 0:
        return f"the converter crashed (signal {-proc.returncode})"
    return (errors[-1] if errors else lines[-1] if lines else f"exit code {proc.returncode}")[:240]
