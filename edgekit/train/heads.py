"""Heads trained on cached features, the fine-tune of the last blocks, and the exportable model.

A head is `linear` (softmax regression) or `mlp` (one hidden ReLU layer with dropout), trained
with AdamW and label smoothing on float32 [N, 1280] features; a trial takes seconds on 2 cores.
The fine-tune trains the last k MBConv blocks, the 1x1 head convolution and the head on the
cached activation entering those blocks (batch-norm statistics stay frozen: batches are small).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

BATCH = 64
HIDDEN = 256


class TrialTimeout(Exception):
    """A head's training passed the per-trial cap."""


@dataclass
class HeadSpec:
    """A head's architecture and training hyper-parameters (learning rate, epochs, AdamW weight decay,
    label smoothing, dropout, class-balanced loss)."""
    kind: str = "linear"            # linear | mlp
    lr: float = 3e-3
    epochs: int = 30
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    dropout: float = 0.2
    balanced: bool = False          # weight the loss by inverse class frequency

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_head(spec: HeadSpec, features: int, classes: int):
    """A fresh head for SPEC: float32 [N, FEATURES] -> float32 [N, CLASSES] logits (torch module,
    untrained)."""
    import torch

    if spec.kind == "linear":
        return torch.nn.Sequential(torch.nn.Dropout(spec.dropout), torch.nn.Linear(features, classes))
    if spec.kind == "mlp":
        return torch.nn.Sequential(torch.nn.Dropout(spec.dropout), torch.nn.Linear(features, HIDDEN), torch.nn.ReLU(),
                                   torch.nn.Dropout(spec.dropout), torch.nn.Linear(HIDDEN, classes))
    raise ValueError(f"unknown head kind {spec.kind!r}")


def head_parameters(spec: HeadSpec, features: int, classes: int) -> int:
    """How many parameters (weights and biases) a head of SPEC has, for the artifact size estimate."""
    if spec.kind == "linear":
        return features * classes + classes
    return features * HIDDEN + HIDDEN + HIDDEN * classes + classes


def _loss(spec: HeadSpec, targets: np.ndarray, classes: int):
    import torch

    weight = None
    if spec.balanced:
        counts = np.bincount(targets, minlength=classes).astype(np.float32)
        weight = torch.from_numpy(np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / classes, 0.0)
                                  .astype(np.float32))
    return torch.nn.CrossEntropyLoss(weight=weight, label_smoothing=spec.label_smoothing)


def train_head(spec: HeadSpec, x_train: np.ndarray, y_train: np.ndarray, classes: int, seed: int = 0,
               deadline: float | None = None, report=None, x_val=None, y_val=None):
    """Train a head; returns the module (eval mode). REPORT(epoch, val_accuracy) is called every
    few epochs when validation data is given (Optuna pruning); raises TrialTimeout past DEADLINE
    (time.monotonic seconds). One torch thread: see threads.py."""
    from .threads import HEAD_THREADS, torch_threads

    with torch_threads(HEAD_THREADS):
        return _train_head(spec, x_train, y_train, classes, seed, deadline, report, x_val, y_val)


def _train_head(spec, x_train, y_train, classes, seed, deadline, report, x_val, y_val):
    import torch

    torch.manual_seed(seed)
    head = make_head(spec, x_train.shape[1], classes)
    optimizer = torch.optim.AdamW(head.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, spec.epochs))
    loss_fn = _loss(spec, y_train, classes)
    features = torch.from_numpy(np.ascontiguousarray(x_train, dtype=np.float32))
    targets = torch.from_numpy(y_train)
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(spec.epochs):
        head.train()
        order = torch.randperm(len(features), generator=generator)
        for start in range(0, len(order), BATCH):
            batch = order[start:start + BATCH]
            optimizer.zero_grad()
            loss_fn(head(features[batch]), targets[batch]).backward()
            optimizer.step()
        scheduler.step()
        if deadline is not None and time.monotonic() > deadline:
            raise TrialTimeout(f"stopped after {epoch + 1} of {spec.epochs} epochs")
        if report is not None and x_val is not None and (epoch + 1) % 5 == 0 and epoch + 1 < spec.epochs:
            report(epoch + 1, accuracy(predict_proba(head, x_val), y_val))
    return head.eval()


def predict_proba(module, x: np.ndarray) -> np.ndarray:
    """float32 [N, classes] softmax probabilities of MODULE (a head or a model) on X."""
    import torch

    from .threads import HEAD_THREADS, backbone_threads, torch_threads

    module.eval()
    outputs = []
    threads = HEAD_THREADS if x.ndim == 2 else backbone_threads()  # a head, or blocks on activations
    with torch.inference_mode(), torch_threads(threads):
        for start in range(0, len(x), 256):
            batch = torch.from_numpy(np.ascontiguousarray(x[start:start + 256], dtype=np.float32))
            outputs.append(torch.softmax(module(batch), dim=1).numpy())
    return np.concatenate(outputs) if outputs else np.zeros((0, 0), np.float32)


def accuracy(probabilities: np.ndarray, targets: np.ndarray) -> float:
    """Top-1 accuracy (fraction 0-1) of float [N, classes] PROBABILITIES against int [N] TARGETS; 0 for
    no samples."""
    return float(np.mean(probabilities.argmax(axis=1) == targets)) if len(targets) else 0.0


def _tail_class():
    import torch

    class Tail(torch.nn.Module):
        """The trainable end of the network: last k blocks -> head conv -> pool -> head."""

        def __init__(self, trunk, k: int, head):
            super().__init__()
            self.trunk, self.k, self.head = trunk, k, head

        def forward(self, activation):
            return self.head(self.trunk.after(activation, self.k))

    return Tail


def finetune(trunk, k: int, head, spec: HeadSpec, x_train: np.ndarray, y_train: np.ndarray, classes: int,
             epochs: int, lr: float, seed: int = 0, deadline: float | None = None):
    """Train the last K blocks + head conv + HEAD on activations entering those blocks.
    Mutates TRUNK's last blocks and HEAD in place; returns them in eval mode."""
    from .threads import backbone_threads, torch_threads

    with torch_threads(backbone_threads()):
        return _finetune(trunk, k, head, spec, x_train, y_train, classes, epochs, lr, seed, deadline)


def _finetune(trunk, k, head, spec, x_train, y_train, classes, epochs, lr, seed, deadline):
    import torch

    torch.manual_seed(seed)
    tail = _tail_class()(trunk, k, head)
    blocks = list(trunk.net._blocks)[len(trunk.net._blocks) - k:]
    tuned = [p for b in blocks for p in b.parameters()] + list(trunk.net._conv_head.parameters()) + \
        list(trunk.net._bn1.parameters())
    for p in trunk.parameters():
        p.requires_grad_(False)
    for p in tuned:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW([{"params": tuned, "lr": lr * 0.1}, {"params": head.parameters(), "lr": lr}],
                                  weight_decay=spec.weight_decay)
    loss_fn = _loss(spec, y_train, classes)
    data = torch.from_numpy(np.ascontiguousarray(x_train)).float()
    targets = torch.from_numpy(y_train)
    generator = torch.Generator().manual_seed(seed)
    trunk.eval()  # batch-norm statistics stay frozen (small batches would spoil them)
    for _ in range(epochs):
        head.train()
        order = torch.randperm(len(data), generator=generator)
        for start in range(0, len(order), BATCH):
            batch = order[start:start + BATCH]
            optimizer.zero_grad()
            loss_fn(tail(data[batch]), targets[batch]).backward()
            optimizer.step()
        if deadline is not None and time.monotonic() > deadline:
            break
    for p in trunk.parameters():
        p.requires_grad_(False)
    head.eval()
    return tail.eval()


def _classifier_class():
    import torch

    class Classifier(torch.nn.Module):
        """float32 [N, 3, H, W] normalized pixels -> float32 [N, classes] logits."""

        def __init__(self, trunk, head):
            super().__init__()
            self.trunk, self.head = trunk, head

        def forward(self, x):
            return self.head(self.trunk(x))

    return Classifier


def classifier(trunk, head):
    """The exportable model: trunk (possibly fine-tuned) + head, eval mode, no gradients."""
    model = _classifier_class()(trunk, head).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
