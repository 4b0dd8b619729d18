"""Evaluation on the test split: accuracy, per-class precision / recall / F1 (scikit-learn), a
confusion-matrix PNG and an HTML page of the misclassified test images with their scores."""
from __future__ import annotations

import base64
import html
import io
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..fsutil import write_atomic


@dataclass
class Metrics:
    """Test-split metrics of one model: accuracy (fraction), per-class precision / recall / F1, the
    confusion matrix (rows: true class) and the misclassified images."""
    accuracy: float
    samples: int
    per_class: dict[str, dict[str, float | None]]  # label -> precision, recall, f1 (None: undefined), support
    confusion: list[list[int]]                   # rows: true class, columns: predicted
    labels: list[str]
    misclassified: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def metrics(targets: np.ndarray, probabilities: np.ndarray, labels: list[str], paths: list[str]) -> Metrics:
    """TARGETS int64 [N] class ids, PROBABILITIES float32 [N, classes] -> Metrics (and the misclassified
    list, most confident mistakes first). Per-class precision, recall and F1 are scikit-learn's;
    one that is undefined (a class with no test image, or never predicted) is None."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    predicted = probabilities.argmax(axis=1) if len(probabilities) else np.zeros(0, int)
    classes = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(targets, predicted, labels=classes,
                                                                     zero_division=0)
    predicted_count = np.bincount(predicted, minlength=len(labels)) if len(predicted) else np.zeros(len(labels), int)

    def value(number, defined: bool):  # undefined (no test image of the class, or none predicted): None, not 0
        return round(float(number), 4) if defined else None

    per_class = {label: {"precision": value(precision[i], predicted_count[i] > 0),
                         "recall": value(recall[i], support[i] > 0),
                         "f1": value(f1[i], support[i] > 0), "support": int(support[i])}
                 for i, label in enumerate(labels)}
    wrong = []
    for i in np.nonzero(predicted != targets)[0]:
        order = np.argsort(-probabilities[i])[:3]
        wrong.append({"path": paths[i], "given": labels[int(targets[i])], "predicted": labels[int(predicted[i])],
                      "scores": {labels[int(c)]: round(float(probabilities[i, c]), 4) for c in order}})
    wrong.sort(key=lambda w: -max(w["scores"].values()))
    return Metrics(float(np.mean(predicted == targets)) if len(targets) else 0.0, int(len(targets)), per_class,
                   confusion_matrix(targets, predicted, labels=classes).tolist(), list(labels), wrong)


def confusion_png(result: Metrics, path: Path, title: str) -> None:
    """Write the confusion matrix of RESULT as a PNG (cells: counts, colour: share of the true class)
    to PATH."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(result.confusion)
    n = len(result.labels)
    side = min(12, 3 + 0.55 * n)
    fig, ax = plt.subplots(figsize=(side + 1.2, side), dpi=110)
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros_like(matrix, dtype=float), where=rows > 0)
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            if matrix[i, j] or i == j:
                ax.text(j, i, f"{matrix[i, j]}", ha="center", va="center", fontsize=9 if n < 12 else 7,
                        color="white" if share[i, j] > 0.6 else "black")
    ax.set_xticks(range(n), result.labels, rotation=45 if n > 4 else 0, ha="right" if n > 4 else "center")
    ax.set_yticks(range(n), result.labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true label")
    ax.set_title(f"{title}: accuracy {result.accuracy:.1%} on {result.samples} test images", fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    write_atomic(path, buffer.getvalue())


def misclassified_html(result: Metrics, path: Path, title: str, thumbnail: int = 160) -> None:
    """A self-contained page (images inlined as JPEG data URLs) of every misclassified test image."""
    from PIL import Image

    from .images import UnreadableImage, read_rgb

    cards = []
    for item in result.misclassified:
        try:
            rgb, _ = read_rgb(Path(item["path"]))
            picture = Image.fromarray(rgb)
            picture.thumbnail((thumbnail, thumbnail))
            buffer = io.BytesIO()
            picture.save(buffer, format="JPEG", quality=85)
            src = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
            image = f'<img src="{src}" alt="{html.escape(Path(item["path"]).name)}">'
        except (UnreadableImage, OSError):
            image = '<div class="missing">image no longer readable</div>'
        scores = "".join(
            f'<tr class="{"given" if label == item["given"] else "pred" if label == item["predicted"] else ""}">'
            f'<td>{html.escape(label)}</td><td><div class="bar" style="width:{100 * score:.0f}%"></div></td>'
            f'<td>{score:.3f}</td></tr>' for label, score in item["scores"].items())
        cards.append(f'<figure>{image}<figcaption><b>{html.escape(Path(item["path"]).name)}</b><br>'
                     f'given <span class="given">{html.escape(item["given"])}</span>, predicted '
                     f'<span class="pred">{html.escape(item["predicted"])}</span>'
                     f'<table>{scores}</table></figcaption></figure>')
    body = "\n".join(cards) or "<p>No test image was misclassified.</p>"
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 24px; color: #222; }}
h1 {{ font-size: 20px; }} .grid {{ display: flex; flex-wrap: wrap; gap: 14px; }}
figure {{ margin: 0; width: 220px; border: 1px solid #ddd; border-radius: 6px; padding: 8px; background: #fafafa; }}
img {{ display: block; margin: 0 auto 6px; max-width: 200px; max-height: 160px; image-rendering: auto; }}
table {{ width: 100%; border-collapse: collapse; font-size: 12px; margin-top: 4px; }}
td {{ padding: 1px 3px; }} td:nth-child(2) {{ width: 45%; }}
.bar {{ height: 9px; background: #4C72B0; border-radius: 2px; }}
.given {{ color: #007000; font-weight: 600; }} .pred {{ color: #C00000; font-weight: 600; }}
tr.given td:first-child {{ color: #007000; }} tr.pred td:first-child {{ color: #C00000; }}
.missing {{ height: 120px; display: flex; align-items: center; justify-content: center; color: #999; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{len(result.misclassified)} of {result.samples} test images misclassified (accuracy {result.accuracy:.1%}),
most confident mistakes first. Scores are the model's softmax probabilities (top 3).</p>
<div class="grid">
{body}
</div></body></html>
"""
    write_atomic(path, page)
