"""TorchScript archives (`torch.jit.save`, `.pt`): a zip with data.pkl and code/ or constants.pkl."""
from __future__ import annotations

from .base import Evidence, Format, register


def _sniff(evidence: Evidence) -> bool:
    tails = evidence.tails()
    return "data.pkl" in tails and ("constants.pkl" in tails or any("/code/" in n for n in evidence.members()))


def _near_miss(evidence: Evidence) -> tuple[str, str] | None:
    """torch.save of a state_dict or a pickled module: the same zip layout without the code."""
    if "data.pkl" in evidence.tails():
        return (f"{evidence.path} is a PyTorch checkpoint (state_dict or pickled module), not a "
                "self-contained model", "export it with torch.jit.script/trace or torch.export.save, or pass "
                "the nn.Module through the Python API")
    return None


TORCHSCRIPT = register(Format(
    name="torchscript", title="TorchScript", suffixes=(".pt",), sniff=_sniff, rank=20,
    source="torch", probe="import torch; torch.jit.load(p, map_location='cpu')", near_miss=_near_miss))
