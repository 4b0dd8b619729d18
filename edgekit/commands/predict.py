"""`edgekit predict`: run an artifact on images; labels, boxes or a mask summary, via the manifest."""
from __future__ import annotations

from pathlib import Path

import click

from .common import THREADS, debug_enabled, hint_option, json_option


@click.command()
@click.argument("artifact", type=click.Path(path_type=Path))
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--backend", help="Runtime backend: litert, openvino, onnxruntime, coreml, edgetpu (default: by format).")
@click.option("--device", help="Device for the backend: CPU, GPU, NPU, AUTO (OpenVINO); all, cpuOnly, cpuAndNE (Core ML).")
@click.option("--threads", type=THREADS, help="CPU threads (litert, openvino CPU, onnxruntime).")
@hint_option
@click.option("--top-k", type=click.IntRange(1, 1000), default=5, show_default=True, help="Labels per image.")
@click.option("--score-threshold", type=click.FloatRange(0, 1), help="Detection: lowest score kept (default 0.25).")
@json_option
def predict(artifact, images, backend, device, threads, hint, top_k, score_threshold, as_json):
    """Run ARTIFACT on IMAGES: top-k labels, boxes in image pixels, or a mask summary.
    A .npy or .npz (one array per input name) is a ready tensor: several inputs, audio, sensors.

    IMAGES are files, folders (their images, by name) or quoted globs ('shots/**/*.jpg').

    Preprocessing and labels come from the manifest beside the artifact; without one, what the
    model file says is used and a warning names what was assumed.

    \b
    Examples:
      edgekit predict out/model_int8.tflite photo.jpg
      edgekit predict out/model_fp32.xml a.jpg b.png --device CPU --hint latency --top-k 3
      edgekit predict out/detector.onnx street.jpg --score-threshold 0.4 --json
      edgekit predict out/model_int8.tflite photos/ 'more/*.png' --json
      edgekit predict out/fusion_fp32.tflite sample.npz   # image + sensors, preprocessed
    """
    from ..predict import predict_images
    from ..ui import console, native_output_captured, print_json, warning
    from ..views.predict import render_predict

    options = {"threads": threads, "hint": hint}
    with native_output_captured(not debug_enabled()):   # runtimes announce delegates on stdout
        result = predict_images(artifact, list(images), backend, device, top_k, warn=warning,
                                score_threshold=score_threshold, **options)
    if as_json:
        print_json(result.to_dict())
    else:
        render_predict(result, console())
