"""The field oracle itself must catch what it exists to catch: here its detection-level check of
selected NMS indices (tests/field/oracle.py, _Nms), on outputs built the way ONNX Runtime returns
them for models.onnx_nms (boxes [1, 16, 4] centre + size, scores [1, 2, 16], selected [K, 3])."""
from __future__ import annotations

import numpy as np
import pytest

from .oracle import _Nms

NMS = _Nms(positions=(0, 1, 2), center=True, iou=0.5, threshold=0.3)


def _outputs():
    boxes = np.zeros((1, 16, 4), np.float32)
    boxes[0, :, 0], boxes[0, :, 1] = np.arange(16) * 2.0, 16.0   # 8 x 8, centres 2 px apart in x: IoU 0.6
    boxes[0, :, 2:] = 8.0
    scores = np.full((1, 2, 16), 0.1, np.float32)
    scores[0, 1, 11], scores[0, 1, 12], scores[0, 0, 2] = 0.80, 0.79, 0.9
    selected = np.array([[0, 0, 2], [0, 1, 11]], np.int64)
    return [boxes, scores, selected]


def test_a_near_tied_neighbour_kept_instead_passes():
    source, artifact = _outputs(), _outputs()
    artifact[1][0, 1, 11], artifact[1][0, 1, 12] = 0.785, 0.795   # int8 swapped two near-equal scores
    artifact[2] = np.array([[0, 0, 2], [0, 1, 12]], np.int64)     # so NMS keeps box 12 (IoU 0.6 with 11)
    assert NMS.check(source, artifact, "int8", "swap") == 2


@pytest.mark.parametrize("selected, says", [
    ([[0, 0, 2], [0, 1, 3]], "overlaps the other side's boxes by at most IoU 0.00"),   # a far box of the class
    ([[0, 0, 2]], "box 11 of class 1 .* has no box of its class"),                       # the box lost
    ([[0, 0, 2], [0, 0, 11], [0, 1, 11], [0, 1, 5]], "artifact's box 11 of class 0"),   # boxes the source never kept
])
def test_a_wrong_selection_fails(selected, says):
    artifact = _outputs()
    artifact[1][0, 0, 11] = artifact[1][0, 1, 5] = 0.9
    artifact[2] = np.array(selected, np.int64)
    with pytest.raises(AssertionError, match=says):
        NMS.check(_outputs(), artifact, "int8", "wrong")
