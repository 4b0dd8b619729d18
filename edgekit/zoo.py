"""The model zoo in models/: one folder per model with model.yaml and model.py (build())."""
from __future__ import annotations

import contextlib
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import BadInput, UnknownNameError
from .resources import shared
from .sources.base import read_labels

ZOO_DIR = shared("models")


@dataclass
class ZooModel:
    name: str
    folder: Path
    task: str
    input_size: list[int]
    mean: list[float]
    std: list[float]
    color_order: str
    resize: str
    labels_path: Path
    expect: dict[str, list[str]] = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def build(self):
        spec = importlib.util.spec_from_file_location(f"edgekit_zoo_{self.name}", self.folder / "model.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        with contextlib.redirect_stdout(sys.stderr):  # some model packages print on load; keep stdout for --json
            return module.build()

    def labels(self) -> list[str]:
        return read_labels(self.labels_path)


def names() -> list[str]:
    return sorted(p.parent.name for p in ZOO_DIR.glob("*/model.yaml"))


def load(name: str) -> ZooModel:
    folder = ZOO_DIR / name
    if not (folder / "model.yaml").is_file():
        raise UnknownNameError("zoo model", name, names())
    info = yaml.safe_load((folder / "model.yaml").read_text())
    try:
        return ZooModel(name=info["name"], folder=folder, task=info["task"], input_size=info["input_size"],
                        mean=info["mean"], std=info["std"], color_order=info.get("color_order", "RGB"),
                        resize=info.get("resize", "stretch"), labels_path=(folder / info["labels"]).resolve(),
                        expect=info.get("expect", {}), info=info)
    except KeyError as exc:
        raise BadInput(f"{folder / 'model.yaml'} lacks the field {exc}") from None
