"""Model outputs -> Prediction, one module per task. The same for every backend."""
from __future__ import annotations

from collections.abc import Callable

from ...errors import UnknownNameError

DECODERS: dict[str, str] = {
    "classification": "classify",
    "detection": "detect",
    "segmentation": "segment",
    "other": "classify",   # an unlabelled single-output model still gets its top-k
}


def decoder_for(task: str) -> Callable:
    import importlib

    module = DECODERS.get(task)
    if module is None:
        raise UnknownNameError("task", task, DECODERS)
    return importlib.import_module(f"{__name__}.{module}").decode
