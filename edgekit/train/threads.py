"""How many CPU threads torch uses in `edgekit train`.

Heads are a few small matrix products per batch: one thread is fastest, because waking a second
one costs more than it saves. The backbone's forward and backward passes use the cores that are
idle when the run starts (cores minus the 1-minute load average, at least 1). On a busy host
torch's OpenMP workers otherwise spin against other processes for every layer: measured here
with a load average of 12 on 2 cores, a head took 19-25 s on 2 threads and 1.3-4 s on 1, and an
EfficientNet-Lite0 batch 1.1-7 s on 2 threads and 0.26-0.35 s on 1. EDGEKIT_TRAIN_THREADS
overrides the count for the backbone.
"""
from __future__ import annotations

import contextlib
import os
from functools import lru_cache

HEAD_THREADS = 1


@lru_cache(maxsize=1)
def backbone_threads() -> int:
    """Threads for backbone passes, decided once per process (before our own work adds load)."""
    override = os.environ.get("EDGEKIT_TRAIN_THREADS", "").strip()
    cores = os.cpu_count() or 1
    if override.isdigit() and int(override) > 0:
        return int(override)
    try:
        busy = os.getloadavg()[0]
    except (OSError, AttributeError):  # no load average (Windows): use every core
        busy = 0.0
    return max(1, min(cores, int(cores - busy + 0.5)))


@contextlib.contextmanager
def torch_threads(count: int):
    """Run the block with torch limited to COUNT intra-op threads, then restore the setting."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
