"""An artifact without a manifest: take what the model file itself says, and name every guess.

Input size and layout come from the input shape; normalization and labels from TFLite Metadata
or a labels file beside the model; the task from the output shapes. What is left is assumed:
a quantized 8-bit input takes the raw pixels (the Coral convention), a float input takes pixels
scaled to 0..1, the image is stretched to the input size, colours are RGB.
"""
from __future__ import annotations

from pathlib import Path

from ..formats import sniff
from ..frames import detection_format
from ..manifest import Manifest, Preprocess
from .base import Runner


def manifest_from_model(path: Path, runner: Runner) -> tuple[Manifest, list[str]]:
    fmt = sniff(path).name
    first = runner.inputs[0]
    shape = [int(d) for d in first.shape]
    layout = "NCHW" if len(shape) == 4 and shape[1] in (1, 3) and shape[3] not in (1, 3) else "NHWC"
    pre = Preprocess(layout=layout, input_size=(shape[2:4] if layout == "NCHW" else shape[1:3]) if len(shape) == 4 else None)
    assumed = [f"input {shape} ({layout})", "resize stretch", "RGB"]
    labels: list[str] = []
    metadata = _tflite_facts(path) if fmt == "tflite" else None
    if metadata and metadata.facts.preprocess.get("mean") is not None:
        pre.mean, pre.std = metadata.facts.preprocess["mean"], metadata.facts.preprocess["std"]
        assumed.append("normalization from TFLite Metadata")
    elif first.quantization and first.dtype in ("uint8", "int8"):
        scale, zero = float(first.quantization.scale[0]), float(first.quantization.zero_point[0])
        shift = 0.0 if first.dtype == "uint8" else 128.0
        pre.mean, pre.std = [zero + shift] * 3, [1.0 / scale] * 3   # raw pixels in, as Coral models take
        assumed.append(f"raw {first.dtype} pixels as the quantized input")
    else:
        assumed.append("pixels scaled to 0..1")
    if metadata and metadata.facts.labels:
        labels = metadata.facts.labels
    else:
        from ..formats import labels_beside
        from ..sources.base import read_labels

        candidate = labels_beside(path)
        labels = read_labels(candidate) if candidate else []
    if not labels:
        assumed.append("no labels (class indices are shown)")
    shapes = [list(t.shape) for t in runner.outputs]
    if detection_format([t.shape for t in runner.outputs]) is not None:
        task = "detection"
    elif len(shapes) == 1 and len(shapes[0]) == 4 and sorted(shapes[0][1:])[1] >= 8:
        task = "segmentation"
    else:
        task = "classification" if len(shapes) == 1 else "other"
    assumed.append(f"task {task} (from the output shapes)")
    manifest = Manifest(artifact=path.name, target=fmt, precision="unknown", task=task, labels=labels,
                        preprocess=pre, inputs=list(runner.inputs), outputs=list(runner.outputs))
    return manifest, assumed


def _tflite_facts(path: Path):
    from ..errors import EdgekitError
    from ..sources.tflite import TFLiteSource

    try:
        return TFLiteSource(path)
    except EdgekitError:  # e.g. an Edge TPU-compiled file: no metadata to read, nothing lost
        return None
