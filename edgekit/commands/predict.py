"""`edgekit predict`: run an artifact on images; labels, boxes or a mask summary, via the manifest."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from ..errors import EdgekitError
from .common import THREADS, debug_enabled, hint_option, json_option


@dataclass
class PredictResult:
    artifact: str
    backend: str
    device: str | None
    task: str
    predictions: list[tuple[str, Any]] = field(default_factory=list)  # (image path, Prediction)
    labels: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"artifact": self.artifact, "backend": self.backend, "device": self.device, "task": self.task,
                "images": [{"image": image, **prediction.to_dict()} for image, prediction in self.predictions]}


def read_image(path: Path):
    """An image file as HxWx3 RGB uint8, or one line saying why not."""
    import cv2
    import numpy as np

    if not path.is_file():
        raise EdgekitError(f"image {path} does not exist", "check the path")
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise EdgekitError(f"{path} is not an image OpenCV can read", "pass a JPEG, PNG, BMP or WebP file")
    return np.ascontiguousarray(image[:, :, ::-1])


def predict_images(artifact: Path, images: list[Path], backend=None, device=None, top_k: int = 5,
                   warn=None, **options) -> PredictResult:
    from ..runtime.predictor import open_predictor

    pictures = [(str(path), read_image(path)) for path in images]  # bad images fail before loading the model
    with open_predictor(artifact, backend, device, top_k=top_k, warn=warn, **options) as predictor:
        result = PredictResult(str(artifact), predictor.runner.backend, predictor.runner.device, predictor.task,
                               labels=predictor.labels)
        for name, rgb in pictures:
            result.predictions.append((name, predictor(rgb)))
    return result


def _rows(result: PredictResult) -> tuple[list[str], list[list[Any]]]:
    rows: list[list[Any]] = []
    if result.task == "detection":
        for image, prediction in result.predictions:
            if not prediction.detections:
                rows.append([Path(image).name, "(none)", "", ""])
            for d in prediction.detections:
                rows.append([Path(image).name, d.label, f"{d.score:.3f}", ", ".join(f"{v:.0f}" for v in d.box)])
        return ["image", "label", "score", "box x1, y1, x2, y2 (px)"], rows
    if result.task == "segmentation":
        for image, prediction in result.predictions:
            summary = prediction.to_dict()["mask"]
            total = max(1, sum(summary["classes"].values()))
            shares = sorted(summary["classes"].items(), key=lambda kv: -kv[1])[:5]
            rows.append([Path(image).name, "x".join(map(str, summary["shape"])),
                         ", ".join(f"{_label(result, c)} {100 * n / total:.1f}%" for c, n in shares)])
        return ["image", "mask (h x w)", "classes by area"], rows
    for image, prediction in result.predictions:
        for rank, c in enumerate(prediction.classes, 1):
            rows.append([Path(image).name if rank == 1 else "", rank, c.label, f"{c.score:.4f}"])
    return ["image", "rank", "label", "score"], rows


def _label(result: PredictResult, index: int) -> str:
    return result.labels[index] if 0 <= index < len(result.labels) else str(index)


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

    Preprocessing and labels come from the manifest beside the artifact; without one, what the
    model file says is used and a warning names what was assumed.

    \b
    Examples:
      edgekit predict out/model_int8.tflite photo.jpg
      edgekit predict out/model_fp32.xml a.jpg b.png --device CPU --hint latency --top-k 3
      edgekit predict out/detector.onnx street.jpg --score-threshold 0.4 --json
    """
    from ..ui import console, native_output_captured, print_json, table, warning

    options = {"threads": threads, "hint": hint}
    with native_output_captured(not debug_enabled()):   # runtimes announce delegates on stdout
        result = predict_images(artifact, list(images), backend, device, top_k,
                                warn=warning,
                                score_threshold=score_threshold, **options)
    if as_json:
        print_json(result.to_dict())
        return
    columns, rows = _rows(result)
    out = console()
    out.print(f"{Path(result.artifact).name} on {result.backend}{' / ' + result.device if result.device else ''} "
              f"({result.task})")
    out.print(table(None, columns, rows))
