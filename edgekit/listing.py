"""What a shell glob like `out/*`, or a folder, of artifacts holds: the models, and the files
`edgekit convert` writes beside them (manifests, reference packs, an IR's .bin)."""
from __future__ import annotations

from pathlib import Path

from .errors import ModelFormatError
from .formats import companion_files, sniff
from .manifest import SUFFIX as MANIFEST
from .reference import SUFFIX as PACK


def models_only(paths) -> tuple[list[Path], list[Path]]:
    """PATHS as a shell glob like `out/*` or a folder gives them: (the models, the files beside
    them that are not models). A folder that is no model itself (a .mlpackage and a SavedModel
    are) stands for its entries, by name. Beside a listed model: its manifest (.edgekit.json),
    its reference pack (.edgekit.ref.npz) and its companions (an OpenVINO .xml's .bin). Anything
    else is kept as a model, so that it fails as one if it is not."""
    listed: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir() and not _is_model_dir(path):
            listed += sorted(p for p in path.iterdir() if not p.name.startswith("."))
        else:
            listed.append(path)
    names = set(listed)
    companions = companion_files([p for p in listed if not p.name.endswith((MANIFEST, PACK))])
    models, beside = [], []
    for path in listed:
        sidecar = next((path.with_name(path.name[: -len(s)]) for s in (MANIFEST, PACK) if path.name.endswith(s)), None)
        (beside if (sidecar is not None and sidecar in names) or path in companions else models).append(path)
    return models, beside


def _is_model_dir(path: Path) -> bool:
    try:
        sniff(path)
    except ModelFormatError:
        return False
    return True
