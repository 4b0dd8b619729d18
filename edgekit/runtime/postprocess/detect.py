"""Detection: boxes in original-image pixels, from three output conventions.

- `tflite-postprocess`: the TFLite_Detection_PostProcess custom op (TF Object Detection API SSD
  exports, Coral's detection models): boxes [1,N,4] as ymin,xmin,ymax,xmax normalized to the
  input, classes [1,N], scores [1,N], count [1]. The op has already applied NMS.
- `ssd`: decoded SSD heads: boxes [1,N,4] (ymin,xmin,ymax,xmax normalized) and class scores
  [1,N,C] (a first background column when C is one more than the labels); NMS here.
- `yolo`: one raw head, [1,N,4+C] or [1,4+C,N]: cx,cy,w,h (input pixels, or normalized to the
  input when no coordinate exceeds 2, as some TFLite exports write them) then C class scores;
  NMS here. With labels, 5+C columns mean a YOLOv5-style objectness column after the box.

The convention is `manifest.detection.format` when recorded, else read from the
output shapes (and names, which say which [1,N] output is classes and which is scores).
"""
from __future__ import annotations

import numpy as np

from ...manifest import TensorInfo
from ..predictor import Detection, FrameMeta, Prediction

FORMATS = ("tflite-postprocess", "ssd", "yolo")


def detection_format(outputs: list[TensorInfo], manifest) -> str | None:
    recorded = manifest.detection.format if manifest is not None and manifest.detection is not None else None
    if recorded:
        return recorded
    shapes = [[int(d) for d in t.shape] for t in outputs]
    ranks = sorted(len(s) for s in shapes)
    if len(shapes) == 4 and ranks == [1, 2, 2, 3] and any(len(s) == 3 and s[-1] == 4 for s in shapes):
        return "tflite-postprocess"
    if len(shapes) == 2 and ranks == [3, 3]:
        a, b = shapes
        if a[1] == b[1] and 4 in (a[2], b[2]):
            return "ssd"
    if len(shapes) == 1 and len(shapes[0]) == 3 and min(shapes[0][1:]) > 4 and max(shapes[0][1:]) > min(shapes[0][1:]):
        return "yolo"
    return None


def decode(outputs: list[np.ndarray], meta: FrameMeta, predictor) -> Prediction:
    from ...errors import EdgekitError

    infos = predictor.runner.outputs
    fmt = detection_format(infos, predictor.manifest)
    if fmt not in FORMATS:
        raise EdgekitError(f"cannot read detections from outputs {[list(o.shape) for o in outputs]}"
                           + (f" (detection_format '{fmt}')" if fmt else ""),
                           f"supported: {', '.join(FORMATS)} (see edgekit/runtime/postprocess/detect.py)")
    boxes, scores, classes = _READERS[fmt](outputs, infos, meta, predictor)
    if fmt != "tflite-postprocess":
        keep = nms(boxes, scores, classes, predictor.iou_threshold, predictor.max_detections)
        boxes, scores, classes = boxes[keep], scores[keep], classes[keep]
    boxes = to_original(boxes, meta)
    labels = predictor.labels
    detections = [Detection([round(float(v), 2) for v in box], int(c), labels[int(c)] if 0 <= c < len(labels)
                            else str(int(c)), float(s)) for box, s, c in zip(boxes, scores, classes)]
    return Prediction("detection", detections=detections[: predictor.max_detections])


def _postprocessed(outputs, infos, meta, predictor):
    """TFLite_Detection_PostProcess: boxes, classes, scores, count (names say which, if any)."""
    by_rank = {len(o.shape): [] for o in outputs}
    for out, info in zip(outputs, infos):
        by_rank[len(out.shape)].append((out, info.name.lower()))
    boxes = by_rank[3][0][0].reshape(-1, 4)
    count = int(np.asarray(by_rank[1][0][0]).reshape(-1)[0])
    (first, first_name), (second, second_name) = by_rank[2]
    if "score" in first_name or "class" in second_name:
        first, second = second, first
    elif not ("class" in first_name or "score" in second_name):
        # no telling names: the op writes classes before scores; class ids are whole numbers
        if np.allclose(second, np.round(second)) and not np.allclose(first, np.round(first)):
            first, second = second, first
    classes, scores = first.reshape(-1), second.reshape(-1)
    count = max(0, min(count, len(scores)))
    in_h, in_w = meta.input_size
    boxes = boxes[:count] * np.array([in_h, in_w, in_h, in_w], np.float32)
    keep = scores[:count] >= predictor.score_threshold
    return (boxes[:, [1, 0, 3, 2]][keep], scores[:count][keep], np.round(classes[:count][keep]).astype(int))


def _ssd(outputs, infos, meta, predictor):
    a, b = (o.reshape(o.shape[1], o.shape[2]) for o in outputs)
    boxes, scores = (a, b) if a.shape[1] == 4 and not (b.shape[1] == 4 and "box" in infos[1].name.lower()) else (b, a)
    offset = 1 if predictor.labels and scores.shape[1] == len(predictor.labels) + 1 else 0  # background column
    scores = scores[:, offset:]
    classes = scores.argmax(axis=1)
    best = scores[np.arange(len(scores)), classes]
    keep = best >= predictor.score_threshold
    in_h, in_w = meta.input_size
    boxes = boxes[keep] * np.array([in_h, in_w, in_h, in_w], np.float32)
    return boxes[:, [1, 0, 3, 2]], best[keep], classes[keep]


def _yolo(outputs, infos, meta, predictor):
    head = outputs[0][0]
    if head.shape[0] < head.shape[1]:   # [4+C, N]: anchors along the last axis
        head = head.T
    labels = predictor.labels
    if labels and head.shape[1] == len(labels) + 5:   # YOLOv5: objectness after the box
        scores = head[:, 5:] * head[:, 4:5]
    else:
        scores = head[:, 4:]
    classes = scores.argmax(axis=1)
    best = scores[np.arange(len(scores)), classes]
    keep = best >= predictor.score_threshold
    xywh = head[keep, :4].astype(np.float32)
    if len(head) and np.abs(head[:, :4]).max() <= 2.0:   # normalized to the input
        in_h, in_w = meta.input_size
        xywh = xywh * np.array([in_w, in_h, in_w, in_h], np.float32)
    half = xywh[:, 2:] / 2
    boxes = np.concatenate([xywh[:, :2] - half, xywh[:, :2] + half], axis=1)
    return boxes, best[keep], classes[keep]


_READERS = {"tflite-postprocess": _postprocessed, "ssd": _ssd, "yolo": _yolo}


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one x1,y1,x2,y2 box with many."""
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_threshold: float,
        max_detections: int, max_candidates: int = 3000) -> np.ndarray:
    """Greedy per-class non-maximum suppression; indices of the kept boxes, best first."""
    if len(boxes) == 0:
        return np.zeros(0, int)
    order = np.argsort(-scores, kind="stable")[:max_candidates]
    # boxes of different classes never overlap once shifted apart by class
    shifted = boxes + (classes.astype(np.float32) * (np.abs(boxes).max() + 1))[:, None]
    keep = []
    while order.size and len(keep) < max_detections:
        best = order[0]
        keep.append(best)
        rest = order[1:]
        order = rest[iou(shifted[best], shifted[rest]) <= iou_threshold]
    return np.asarray(keep, int)


def to_original(boxes: np.ndarray, meta: FrameMeta) -> np.ndarray:
    """x1,y1,x2,y2 in model-input pixels -> original-image pixels (undo resize/letterbox/crop)."""
    if len(boxes) == 0:
        return np.zeros((0, 4), np.float32)
    sy, sx = meta.scale
    oy, ox = meta.offset
    height, width = meta.original_size
    out = (boxes - np.array([ox, oy, ox, oy], np.float32)) / np.array([sx, sy, sx, sy], np.float32)
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, width)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, height)
    return out
