"""The reference pack: proof that travels with an artifact, `<artifact>.edgekit.ref.npz`.

`edgekit convert` (verify on) writes one beside each artifact it publishes: K preprocessed real
inputs exactly as the artifact's runtime is fed them (in the artifact's layout; an integer
input already quantized with the artifact's own scale and zero point), the SOURCE framework's
outputs on them, and what is needed to gate them anywhere: precision, task, the gate limits for
that precision, the decisive-sample margin, the artifact's output names and the source's layout
(parity.pack_layout: feature maps' channel groups are gated one by one). Its sha256 is in the
manifest (`reference`), whose `artifact_sha256` names the artifact's bytes, so a pack belongs
to exactly one artifact. `edgekit verify` (edgekit/proof.py) and the board runner's `verify`
rerun it on the runtime they have. The array layout is parity.py's (`write_pack`, `read_pack`).

How K is picked: as many samples of the verify set as fit in `budget` bytes (DEFAULT_BUDGET,
2 MB) once compressed: a sample's cost (its inputs in their fed dtype and its float32 source
outputs, deflated as the .npz is) is measured on a few samples, and the written file is checked
against the budget, with fewer samples until it fits; at least one, at most the whole verify
set. Normalized pixels compress about 3x, so a 224x224 float input costs about 180 KB: some ten
samples per 2 MB, thirteen for a uint8 input. Which samples: for a classifier, first those on
which the source is decisive (the ones the int8 top-1 gate counts), then the rest; each group
evenly spread over the verify set (so a folder's or a video's spread survives).
"""
from __future__ import annotations

import io
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, parity
from .errors import BadInput, ModelFormatError
from .frames import to_layout
from .fsutil import sha256_of
from .manifest import Manifest, ReferenceInfo, TensorInfo, manifest_path

SUFFIX = ".edgekit.ref.npz"
DEFAULT_BUDGET = 2_000_000     # bytes: "about 2 MB" beside each artifact


def pack_path(artifact: Path) -> Path:
    """Where the reference pack of ARTIFACT lies: beside it, `<artifact name>.edgekit.ref.npz`."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + SUFFIX)


@dataclass
class ReferencePack:
    """A read reference pack. `inputs[i]` holds the i-th input's K feeds ([K, ...], sample k is
    `[k:k+1]`, in the input's dtype); `expected[j]` the source's j-th output on them (float32
    [K, ...]); `meta` the facts (artifact, artifact_sha256, precision, task, classification,
    gates, decisive_margin, outputs, samples, of, data, ...)."""

    path: Path
    sha256: str
    meta: dict[str, Any]
    inputs: list[np.ndarray]
    expected: list[np.ndarray] = field(default_factory=list)

    @property
    def samples(self) -> int:
        return len(self.inputs[0])

    def feeds(self, k: int, runtime_names: list[str] | None = None) -> list[np.ndarray] | dict[str, np.ndarray]:
        """Sample K's feeds, one [1, ...] array per input, as the runtime takes them: by input name
        when the pack names every input and RUNTIME_NAMES (the runtime's input names) has them all,
        since a runtime need not keep the manifest's input order; else a list in the pack's order."""
        arrays = [array[k:k + 1] for array in self.inputs]
        names = [i.get("name") for i in self.meta.get("inputs") or [] if isinstance(i, dict)]
        if len(arrays) > 1 and len(names) == len(arrays) and runtime_names and set(names) <= set(runtime_names):
            return dict(zip(names, arrays))
        return arrays


def fed_inputs(samples: np.ndarray, layout: str | None, info: TensorInfo) -> np.ndarray:
    """SAMPLES (float32 [N, ...]: an image input normalized as the manifest says, NHWC; a tensor
    input as given) as the artifact's runtime is fed them: an image in LAYOUT (None: as is), and
    quantized with INFO's parameters when the input is an integer tensor (exactly what
    Runner.infer does with a float feed)."""
    from .runtime.base import quantize

    return quantize(to_layout(samples, layout) if layout else samples, info)


def choose_samples(expected: list[np.ndarray], keep: int, classification: bool, count: int) -> list[int]:
    """Indices (ascending) of KEEP samples (at least one) out of the COUNT that EXPECTED (the
    source's outputs, each [COUNT, ...] but rows of run-time size) covers: see the module docstring."""
    keep = max(1, min(count, keep))
    order = np.arange(count)
    groups = [order[parity.decisive(expected[0])], order[~parity.decisive(expected[0])]] \
        if classification and keep < count else [order]
    chosen: list[int] = []
    for group in groups:
        take = min(keep - len(chosen), len(group))
        if take > 0:
            chosen += [int(group[i]) for i in np.linspace(0, len(group) - 1, take).round().astype(int)]
    return sorted(chosen)


def sample_cost(inputs: list[np.ndarray], expected: list[np.ndarray], probes: int = 4) -> int:
    """Bytes one sample adds to a pack, deflated as np.savez_compressed does (zlib's default
    level): the mean over PROBES samples spread over the set, at least 1."""
    count = len(inputs[0])
    picks = sorted({int(i) for i in np.linspace(0, count - 1, min(probes, count)).round()})
    sizes = [sum(len(zlib.compress(np.ascontiguousarray(parity.take_samples(a, [k])).tobytes()))
                 for a in [*inputs, *expected]) for k in picks]
    return max(1, int(np.mean(sizes)))


def write_reference(artifact: Path, manifest: Manifest, samples: np.ndarray | list[np.ndarray],
                    expected: list[np.ndarray], data: str, real: bool, budget: int = DEFAULT_BUDGET,
                    source_layout: str | None = None, layouts: list[str | None] | None = None) -> ReferenceInfo:
    """Write ARTIFACT's pack beside it (`pack_path`) and return the manifest's record of it.

    samples: the verify inputs, one float32 [N, ...] array per artifact input in its order (a
    single array for a one-input model): images normalized, NHWC [N, H, W, C], tensors as given;
    LAYOUTS: per input the image layout it is fed in (None: a tensor, fed as is; default: the
    manifest's layout for each). expected: the source's outputs on them, each [N, ...]; DATA
    names where they came from, REAL says they are not synthetic.
    MANIFEST must already carry the artifact's sha256, inputs, outputs, precision and task.
    SOURCE_LAYOUT: the source's input layout, which EXPECTED's feature maps are in (channel groups,
    parity.group_axis; default: the artifact's). The caller writes into a staging folder and
    publishes it with the artifact.
    """
    classification = manifest.task == "classification"
    samples = [samples] if isinstance(samples, np.ndarray) else list(samples)
    layout = manifest.preprocess.layout
    layouts = layouts or [layout] * len(samples)
    fed = [fed_inputs(array, lay, info) for array, lay, info in zip(samples, layouts, manifest.inputs)]
    outputs = [np.asanyarray(e, np.float32) for e in expected]   # "any": RunTimeRows stay rows
    keep = max(1, budget // sample_cost(fed, outputs))
    while True:
        chosen = choose_samples(outputs, keep, classification, len(fed[0]))
        meta = {
            "artifact": manifest.artifact, "artifact_sha256": manifest.artifact_sha256, "target": manifest.target,
            "precision": manifest.precision, "task": manifest.task, "classification": classification,
            "gates": parity.gate_limits(manifest.precision, classification),
            "decisive_margin": parity.DECISIVE_MARGIN,
            "inputs": [{"name": info.name, "shape": [int(d) for d in array.shape[1:]], "dtype": array.dtype.name,
                        "layout": lay} for info, array, lay in zip(manifest.inputs, fed, layouts)],
            "source_layout": source_layout or layout,
            "outputs": [t.name for t in manifest.outputs], "source": dict(manifest.source),
            "samples": len(chosen), "of": len(fed[0]), "indices": chosen, "data": data, "real": bool(real),
            "budget_bytes": int(budget), "edgekit_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        buffer = io.BytesIO()
        parity.write_pack(buffer, meta, [f[chosen] for f in fed], [parity.take_samples(o, chosen) for o in outputs])
        size = buffer.getbuffer().nbytes
        if size <= budget or len(chosen) == 1:
            break
        keep = max(1, min(len(chosen) - 1, len(chosen) * budget // size))   # the estimate was short: fewer
    path = pack_path(artifact)
    path.write_bytes(buffer.getvalue())
    return ReferenceInfo(file=path.name, sha256=sha256_of(path), samples=len(chosen), size_bytes=size)


def load_reference(artifact: Path, manifest: Manifest, path: Path | None = None) -> ReferencePack:
    """The reference pack of ARTIFACT, checked against its MANIFEST: PATH (default: beside it).

    Raises BadInput when the manifest records no pack, the pack is missing, or its sha256 is
    not the one the manifest records: a pack from another model (its own record names that
    model) or an altered one; ModelFormatError when it cannot be read at all.
    """
    artifact = Path(artifact)
    if manifest.reference is None:
        raise BadInput(f"{artifact.name} has no reference pack: its manifest records none (converted with "
                       "--no-verify or --reference-mb 0, or by an edgekit before packs)",
                       f"convert the model again: edgekit convert ... writes {artifact.name}{SUFFIX}")
    path = Path(path) if path is not None else artifact.with_name(manifest.reference.file)
    if not path.is_file():
        raise BadInput(f"the reference pack {path} is missing",
                       f"copy {manifest.reference.file} along with {artifact.name} and its manifest")
    digest = sha256_of(path)
    try:
        meta, inputs, expected = parity.read_pack(str(path))
    except parity.PackError as exc:
        if digest == manifest.reference.sha256:
            raise ModelFormatError(f"{path}: {exc}", "convert the model again") from None
        raise BadInput(f"{path} is not the reference pack of {artifact.name}: {exc}",
                       f"use the {manifest.reference.file} that `edgekit convert` wrote with it") from None
    if digest != manifest.reference.sha256:
        owner = meta.get("artifact_sha256")
        if owner != manifest.artifact_sha256:
            raise BadInput(f"{path.name} is the reference pack of another model ({meta.get('artifact')}, sha256 "
                           f"{str(owner)[:12]}), not of {artifact.name} (sha256 {str(manifest.artifact_sha256)[:12]} "
                           f"in {manifest_path(artifact).name})",
                           f"use the {manifest.reference.file} that `edgekit convert` wrote with it")
        raise BadInput(f"{path.name} was changed after conversion (sha256 {digest[:12]}, "
                       f"{manifest_path(artifact).name} records {manifest.reference.sha256[:12]})",
                       "convert the model again for a fresh pack")
    return ReferencePack(path, digest, meta, inputs, expected)

