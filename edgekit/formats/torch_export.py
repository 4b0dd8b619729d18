"""torch.export programs (`torch.export.save`, `.pt2`): a zip with the serialized ExportedProgram."""
from __future__ import annotations

from .base import Evidence, Format, register


def _sniff(evidence: Evidence) -> bool:
    names = evidence.members()
    # ranked before TorchScript: both are zips of pickles
    return (any(n.endswith("serialized_exported_program.json") or n.endswith("models/model.json") for n in names)
            or ("archive_format" in evidence.tails() and any("exported_program" in n for n in names)))


TORCH_EXPORT = register(Format(
    name="torch-export", title="torch.export", suffixes=(".pt2",), sniff=_sniff, rank=10,
    source="torch", probe="import torch; torch.export.load(p)"))
