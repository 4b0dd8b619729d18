"""`edgekit inspect` as a library call: what an artifact takes and gives, what it is made of,
and its manifest. Each format's own inspector (edgekit/formats/) reads the file."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .formats import sniff
from .manifest import read_manifest


@dataclass
class InspectReport:
    """One artifact, as `edgekit inspect --json` prints it (`to_dict`)."""

    path: str
    format: str                                   # a Format name: tflite, openvino, onnx, coreml, ...
    size_bytes: int                               # companions included (an IR's .bin)
    inputs: list = field(default_factory=list)    # TensorInfo, quantization as {"scale", "zero_point"}
    outputs: list = field(default_factory=list)
    ops: dict[str, int] = field(default_factory=dict)   # op type -> count, most frequent first
    details: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] | None = None        # the format's own metadata (formats.base.metadata_card)
    manifest: dict[str, Any] | None = None        # the sidecar .edgekit.json, when there is one

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "format": self.format, "size_bytes": self.size_bytes,
                "inputs": [asdict(t) for t in self.inputs], "outputs": [asdict(t) for t in self.outputs],
                "ops": self.ops, "details": self.details, "metadata": self.metadata, "manifest": self.manifest}


def inspect_model(path: Path) -> InspectReport:
    """Inspect the artifact at PATH. Raises ModelFormatError for a file that is not a model or
    whose structure is damaged (checked before any native reader sees it)."""
    path = Path(path)
    fmt = sniff(path)
    report = InspectReport(path=str(path), format=fmt.name, size_bytes=fmt.size(path))
    if fmt.inspector is None:
        report.details["note"] = f"{fmt.name} is a source format; convert it to inspect the edge artifact"
    else:
        found = fmt.inspect(path)
        report.inputs, report.outputs, report.ops, report.details = found.inputs, found.outputs, found.ops, found.details
        report.metadata = found.metadata
    manifest = read_manifest(path)
    report.manifest = manifest.to_dict() if manifest else None
    return report
