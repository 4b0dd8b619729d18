"""The child side of `runtime.base.probe_backend`: `python -m edgekit.runtime.probe PATH BACKEND
DEVICE OPTIONS_JSON` opens PATH with the backend class itself (no probe) and runs it once on
zeros. Exit 0: it worked; 2: an EdgekitError line on stdout; 3: an upstream error on stdout; a
signal: the native loader crashed (the parent words each as one line)."""
from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    import numpy as np

    from ..errors import EdgekitError, summary
    from .base import BACKENDS

    path, backend, device, options = Path(argv[0]), argv[1], argv[2] or None, json.loads(argv[3])
    try:
        with BACKENDS.get(backend)(path, device, **options) as runner:
            feeds = []
            for info in runner.inputs:
                if not info.shape or any(d < 1 for d in info.shape):
                    return 0  # no static shape to feed: loading was the check
                dtype = np.float32 if info.quantization or info.dtype == "image" else np.dtype(info.dtype)
                feeds.append(np.zeros(info.shape, dtype))
            runner.infer(feeds)
    except EdgekitError as exc:
        print(exc.one_line())
        return 2
    except Exception as exc:  # an upstream loader's own error: the parent words it
        print(summary(exc))
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
