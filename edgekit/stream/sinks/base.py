"""The Sink contract: open early (so a bad path or a busy port fails before the model loads),
write every annotated frame on the pipeline's calling thread, close to finalize."""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ...registry import Registry
from ..types import FrameResult


class Sink:
    name: ClassVar[str]

    def open(self) -> None:
        pass

    def write(self, image: np.ndarray, result: FrameResult, stats: dict[str, Any]) -> bool | None:
        """Take one annotated BGR frame; return True to end the run (e.g. the window was closed)."""
        raise NotImplementedError

    def close(self) -> str | None:
        """Finalize; return one line for the user (what was saved or served), if any."""
        return None

    def discard(self) -> None:
        """Undo open() when the run never started (the model failed to load): leave no file."""
        self.close()


SINKS: Registry[type[Sink]] = Registry("sink", __package__)
