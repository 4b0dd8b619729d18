"""Classification: top-k with labels and scores (softmax applied when outputs are logits)."""
from __future__ import annotations

import numpy as np

from ..predictor import Classification, FrameMeta, Prediction


def scores_from(output: np.ndarray) -> np.ndarray:
    scores = np.asarray(output, np.float32).reshape(-1)
    if scores.min() < 0 or scores.sum() > 1.01 or scores.sum() < 0.99:  # logits, not probabilities
        exp = np.exp(scores - scores.max())
        scores = exp / exp.sum()
    return scores


def decode(outputs: list[np.ndarray], meta: FrameMeta, predictor) -> Prediction:
    scores = scores_from(outputs[0])
    top = np.argsort(-scores)[: predictor.top_k]
    labels = predictor.labels
    return Prediction("classification", classes=[
        Classification(int(i), labels[i] if i < len(labels) else str(int(i)), float(scores[i])) for i in top])
