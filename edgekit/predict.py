"""`edgekit predict` as a library call: an artifact run on image files, through the manifest's
pre- and postprocessing (labels, boxes in image pixels, or a mask)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import EdgekitError


@dataclass
class PredictResult:
    artifact: str
    backend: str
    device: str | None
    task: str
    predictions: list[tuple[str, Any]] = field(default_factory=list)  # (image path, Prediction)
    labels: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"artifact": self.artifact, "backend": self.backend, "device": self.device, "task": self.task,
                "images": [{"image": image, **prediction.to_dict()} for image, prediction in self.predictions]}


def read_image(path: Path):
    """An image file as uint8 [H, W, 3] RGB. Raises EdgekitError for a missing or undecodable file."""
    import cv2
    import numpy as np

    if not path.is_file():
        raise EdgekitError(f"image {path} does not exist", "check the path")
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise EdgekitError(f"{path} is not an image OpenCV can read", "pass a JPEG, PNG, BMP or WebP file")
    return np.ascontiguousarray(image[:, :, ::-1])


def expand_images(specs: list) -> list[Path]:
    """The image files SPECS name, in order, each once: a file as given; a folder's image files
    (calibration.IMAGE_SUFFIXES, sorted by name, hidden files and subfolders left out); a glob
    the shell did not expand (`'photos/*.jpg'`, `'**/*.png'` recursive), sorted. Raises
    EdgekitError for a folder with no images or a glob that matches no file."""
    import glob

    from .calibration import IMAGE_SUFFIXES

    found: list[Path] = []
    for spec in map(str, specs):
        path = Path(spec)
        if path.is_dir():
            files = sorted(p for p in path.iterdir()
                           if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise EdgekitError(f"folder {path} has no images",
                                   f"add {', '.join(sorted(IMAGE_SUFFIXES))} files, or name the images")
        elif not path.exists() and glob.has_magic(spec):
            files = sorted(Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file())
            if not files:
                raise EdgekitError(f"no file matches '{spec}'", "check the pattern, or name the images")
        else:
            files = [path]
        found.extend(files)
    return list(dict.fromkeys(found))


def predict_images(artifact: Path, images: list, backend=None, device=None, top_k: int = 5,
                   warn=None, **options) -> PredictResult:
    """Run ARTIFACT on every image IMAGES name: files, folders or globs (expand_images). All are
    read first, so a bad image fails before the model loads. A .npy (the one input's tensor) or
    .npz (one array per input name) is fed as it is, already preprocessed: models with several
    inputs, or non-image inputs (audio frames, sensor vectors)."""
    from .runtime.predictor import open_predictor

    pictures = [(str(path), None if _is_tensor_file(path) else read_image(path))
                for path in expand_images(images)]
    with open_predictor(artifact, backend, device, top_k=top_k, warn=warn, **options) as predictor:
        result = PredictResult(str(artifact), predictor.runner.backend, predictor.runner.device, predictor.task,
                               labels=predictor.labels)
        for name, rgb in pictures:
            if rgb is None:
                outputs = predictor.infer(predictor.tensor_feeds(Path(name)))
                result.predictions.append((name, predictor.decode(outputs, predictor.tensor_meta())))
            else:
                result.predictions.append((name, predictor(rgb)))
    return result


def _is_tensor_file(path: Path) -> bool:
    """A ready tensor file; a missing one is reported like a missing image."""
    if path.suffix.lower() in (".npy", ".npz"):
        if not path.is_file():
            raise EdgekitError(f"tensor file {path} does not exist", "check the path")
        return True
    return False
