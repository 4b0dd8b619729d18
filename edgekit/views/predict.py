"""`edgekit predict`: labels, boxes or mask summaries per image."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..ui import table


def _label(result, index: int) -> str:
    return result.labels[index] if 0 <= index < len(result.labels) else str(index)


def _rows(result) -> tuple[list[str], list[list[Any]]]:
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


def render_predict(result, console) -> None:
    """A PredictResult."""
    columns, rows = _rows(result)
    console.print(f"{Path(result.artifact).name} on {result.backend}{' / ' + result.device if result.device else ''} "
                  f"({result.task})")
    console.print(table(None, columns, rows, wrap=("classes by area", "label")))
