"""Where the files beside the code live: the model zoo (models/), the device profiles (devices/) and
the Edge TPU compiler's container recipe (scripts/edgetpu-compiler/).

In a checkout they are the top-level folders. A wheel installs them as data files under
<prefix>/share/edgekit/ (pyproject.toml, [tool.setuptools.data-files]); the installed
distribution's own file list says where that prefix is (a venv, ~/.local, /usr/local).
"""
from __future__ import annotations

import importlib.metadata
import sys
from functools import lru_cache
from pathlib import Path

from . import DISTRIBUTION

CHECKOUT = Path(__file__).resolve().parents[1]


@lru_cache(maxsize=None)
def shared(name: str) -> Path:
    """The folder `name` (models, devices, scripts): the checkout's, else the installed copy."""
    if (CHECKOUT / "pyproject.toml").is_file() and (CHECKOUT / name).is_dir():
        return CHECKOUT / name
    marker = ("share", "edgekit", name)
    try:
        files = importlib.metadata.distribution(DISTRIBUTION).files or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for file in files:
        parts = Path(file).parts
        for i in range(len(parts) - len(marker) + 1):
            if parts[i:i + len(marker)] == marker:
                return Path(file.locate()).parents[len(parts) - i - len(marker) - 1].resolve()
    return Path(sys.prefix) / "share" / "edgekit" / name


def compiler_wrapper() -> Path:
    """scripts/edgetpu-compiler/edgetpu_compiler.sh: Coral's compiler in Docker or Podman."""
    return shared("scripts") / "edgetpu-compiler" / "edgetpu_compiler.sh"
