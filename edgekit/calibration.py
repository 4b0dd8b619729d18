"""Calibration and verify data: an image folder, a video, a .npy/.npz array, or `synthetic`, for
each model input.

Image inputs go through frames.preprocess_image with the manifest's Preprocess (the code the
runtime and the board use), so int8 ranges are measured on exactly what the deployed model will
see; a greyscale input gets each picture's luma. Tensor inputs (audio frames, sensor vectors)
are arrays from .npy/.npz files, taken as they are: never resized or normalized.

Data specs (`--calib`, `--verify-data`, repeatable):
    photos/ | clip.mp4 | one.jpg | pixels.npy | synthetic     a single-input model's data
    data.npz                                                  one array per input name
    image=photos/  sensors=s.npy                              one spec per input, by name
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from . import frames
from .errors import CalibrationError
from .manifest import Preprocess, TensorInfo
from .sources.base import SourceInput, classify_input

DEFAULT_SAMPLES = 128    # enough for stable int8 ranges on CNNs; more adds time, not accuracy
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}
ARRAY_SUFFIXES = {".npy", ".npz"}
SYNTHETIC = "synthetic"
SPEC_FORMS = "IMAGE_DIR|VIDEO|FILE.npy|FILE.npz|NAME=PATH (one per input)|synthetic"


@dataclass
class SampleSet:
    """Model inputs for calibration or verify, one array per input, and where they came from.

    `arrays` maps each source input name (in input order) to float [N, ...]: an image input's
    samples preprocessed, NHWC [N, H, W, C] (C is 1 for greyscale and channel-less inputs); a
    tensor input's samples as given, [N, *shape[1:]] in its own dtype. Every array has the same N.
    """

    arrays: dict[str, np.ndarray]
    kind: str                    # images | video | npy | npz | synthetic | photos | mixed
    origin: str
    real: bool                   # False when any input is synthetic: accuracy is then unmeasured
    origins: dict[str, str] = field(default_factory=dict)   # input name -> where its data came from

    @property
    def samples(self) -> np.ndarray:
        """The first input's array: [N, H, W, C] for a single-image model."""
        return next(iter(self.arrays.values()))

    def __len__(self) -> int:
        return len(self.samples)

    def feeds(self, index: int, plan: Sequence[tuple[str, str | None]]) -> list[np.ndarray]:
        """Sample INDEX as a model's inputs, batch 1, in the order of PLAN (`feed_plan`: per model
        input, the source input name and its image layout NHWC, NCHW or HW; None for a tensor,
        fed as it is)."""
        return [frames.to_layout(self.arrays[name][index][None], layout) if layout else self.arrays[name][index][None]
                for name, layout in plan]

    def head(self, count: int, origin: str | None = None) -> SampleSet:
        """The first COUNT samples of every input."""
        return replace(self, arrays={k: v[:count] for k, v in self.arrays.items()},
                       origin=origin or self.origin)

    def describe(self) -> dict:
        """{kind, origin, samples (count), real}, and `inputs` (name -> origin) for a model with
        several inputs: what the manifest and ConvertResult record."""
        described = {"kind": self.kind, "origin": self.origin, "samples": int(len(self)), "real": self.real}
        if len(self.arrays) > 1:
            described["inputs"] = dict(self.origins)
        return described


def load_samples(spec: str | Path, pre: Preprocess, limit: int = DEFAULT_SAMPLES, progress=None) -> SampleSet:
    """Up to LIMIT samples from SPEC for a model with one image input, each preprocessed with PRE
    (the manifest's resize, colour order, channels and (pixel - mean) / std): float32
    [N, H, W, C], NHWC, H x W = PRE.input_size. See `load_inputs` for SPEC."""
    image = SourceInput("input", [1, *pre.input_size, pre.channels], "float32", "image", "NHWC", pre.channels)
    return load_inputs([str(spec)], [image], pre, limit, progress)


def load_inputs(specs: Sequence[str] | str, inputs: Sequence[SourceInput], pre: Preprocess,
                limit: int = DEFAULT_SAMPLES, progress=None) -> SampleSet:
    """Up to LIMIT samples for every one of INPUTS (the source model's, `described_inputs`).

    SPECS (the repeatable --calib / --verify-data values): for a single-input model one of an
    image folder (searched recursively; LIMIT files spread over the sorted list), a video (LIMIT
    frames spread over its length), one image, a .npy array, a .npz holding one array, or
    "synthetic" (seeded random pixels or normal values; `real` is then False); for several
    inputs a .npz with one array per input name, or one NAME=PATH spec per input. Image inputs
    take pictures (uint8 arrays are pixels, preprocessed with PRE; float arrays are taken as
    model-ready, NHWC or NCHW); tensor inputs take arrays only, [N, *shape[1:]], never changed.
    When the inputs' sample counts differ, the first N of each (the smallest count) are used.

    Raises CalibrationError (BadInput) for a missing, empty, unreadable or misshapen spec, an
    input left without data, or a name no input has.
    """
    specs = [specs] if isinstance(specs, (str, Path)) else [str(s) for s in specs]
    if limit < 1:
        raise CalibrationError(f"--calib-samples must be at least 1, got {limit}")
    if not specs:
        raise CalibrationError("no calibration data given", f"pass {SPEC_FORMS}")
    inputs = list(inputs)
    assigned = _assign(specs, inputs)
    arrays, kinds, origins, real = {}, set(), {}, True
    npz_cache: dict[str, np.lib.npyio.NpzFile] = {}
    for role in inputs:
        spec = assigned[role.name]
        array, kind, origin, is_real = _load_one(spec, role, pre, limit, progress, npz_cache, len(inputs))
        arrays[role.name], origins[role.name] = array, origin
        kinds.add(kind)
        real = real and is_real
    count = min(len(a) for a in arrays.values())
    if count == 0:
        raise CalibrationError(f"calibration data {', '.join(dict.fromkeys(assigned.values()))} holds no samples")
    arrays = {k: v[:count] for k, v in arrays.items()}
    unique = list(dict.fromkeys(origins.values()))
    origin = unique[0] if len(unique) == 1 else "; ".join(f"{k}: {v}" for k, v in origins.items())
    return SampleSet(arrays, kinds.pop() if len(kinds) == 1 else "mixed", origin, real, origins)


def feed_plan(roles: Sequence[SourceInput], form_inputs: Sequence[TensorInfo],
              layout: str = "NHWC") -> list[tuple[str, str | None]]:
    """For each input of a model form (an intermediate model or an artifact, in its own order):
    (the source input it stands for, the layout its images take; None for a tensor, fed as is).

    ROLES are the source's inputs (`described_inputs`); FORM_INPUTS the form's tensors (static
    shapes), read in LAYOUT's convention (the form's image layout). Converters keep inputs in
    order as a rule, so the input at the same position is taken when its shape fits (images:
    height, width and channels in any layout; tensors: the element count); otherwise the first
    source input whose shape fits. Raises ModelFormatError when the input counts differ."""
    from .errors import ModelFormatError

    if len(roles) != len(form_inputs):
        raise ModelFormatError(f"the converted model has {len(form_inputs)} input(s), the source {len(roles)}",
                               "convert it again; report the route if it persists")
    form = [classify_input(t.name, t.shape, "float32" if t.dtype == "image" else t.dtype, layout)
            for t in form_inputs]

    def key(role: SourceInput):
        if role.kind == "image":
            return ("image", *[int(d) for d in role.spatial()], role.channels)
        return ("tensor", int(np.prod([max(int(d), 1) for d in role.shape])))

    wanted = [key(r) for r in roles]
    free = list(range(len(roles)))
    plan = []
    for position, got in enumerate(form):
        fits = [i for i in free if key(got) == wanted[i]
                or (roles[i].kind != got.kind and int(np.prod(got.shape)) == int(np.prod(
                    [max(int(d), 1) for d in roles[i].shape])))]
        chosen = position if position in fits else fits[0] if fits else position if position in free else free[0]
        free.remove(chosen)
        role = roles[chosen]
        if role.kind != "image":
            plan.append((role.name, None))
        else:
            plan.append((role.name, got.layout or ("HW" if len(got.shape) == 3 else layout)))
    return plan


def split_named(spec: str, names: Sequence[str]) -> tuple[str | None, str]:
    """'NAME=PATH' -> (NAME, PATH) when NAME is one of NAMES; anything else -> (None, SPEC) (a
    path may hold '=' itself)."""
    name, sep, rest = spec.partition("=")
    if sep and name in names:
        return name, rest
    return None, spec


def _assign(specs: list[str], inputs: list[SourceInput]) -> dict[str, str]:
    """Input name -> its spec (a path, 'synthetic', or 'FILE.npz' shared by every input)."""
    names = [i.name for i in inputs]
    named, plain = {}, []
    for spec in specs:
        name, path = split_named(spec, names)
        if name is None:
            prefix, sep, _ = spec.partition("=")
            if sep and not Path(spec).exists() and prefix and "/" not in prefix:
                raise CalibrationError(f"data spec '{spec}' names no input of the model ('{prefix}')",
                                       f"its inputs: {', '.join(names)}")
            plain.append(spec)
        elif name in named:
            raise CalibrationError(f"input '{name}' is given data twice ({named[name]}, {path})", "give one per input")
        else:
            named[name] = path
    if len(plain) > 1:
        raise CalibrationError(f"several data specs without an input name: {', '.join(plain)}",
                               "name each: --calib INPUT=PATH (one per input), or one .npz with an array per input")
    if plain:
        spec = plain[0]
        left = [n for n in names if n not in named]
        several = len(left) > 1
        if several and spec != SYNTHETIC and Path(spec).suffix.lower() != ".npz":
            raise CalibrationError(
                f"the model has {len(names)} inputs ({', '.join(names)}), so data {spec} cannot say which it is for",
                "pass FILE.npz with one array per input name, or one --calib NAME=PATH per input")
        for name in left:
            named[name] = spec
    missing = [n for n in names if n not in named]
    if missing:
        raise CalibrationError(f"no data for input(s) {', '.join(missing)}",
                               "pass --calib NAME=PATH for each, or one .npz with an array per input name")
    return named


def _load_one(spec: str, role: SourceInput, pre: Preprocess, limit: int, progress, npz_cache: dict,
              inputs: int) -> tuple[np.ndarray, str, str, bool]:
    """(array, kind, origin, real) for one input from its spec."""
    image_spec = _frame_spec(role, pre) if role.kind == "image" else None
    if spec == SYNTHETIC:
        rng = np.random.default_rng(0)
        if image_spec is None:
            return rng.standard_normal((limit, *_per_sample(role))).astype(role.dtype), "synthetic", SYNTHETIC, False
        height, width = image_spec.input_size
        pixels = rng.integers(0, 256, size=(limit, height, width, 3), dtype=np.uint8)
        return np.concatenate([_preprocess(p, image_spec) for p in pixels]), "synthetic", SYNTHETIC, False
    path = Path(spec)
    if not path.exists():
        raise CalibrationError(f"calibration data {path} does not exist",
                               "pass an image folder, a video file, a .npy/.npz array or 'synthetic'")
    suffix = path.suffix.lower()
    if suffix in ARRAY_SUFFIXES:
        array = _read_array(path, role, npz_cache, inputs)[:limit]
        origin = f"{path}[{role.name}]" if suffix == ".npz" and inputs > 1 else str(path)
        return _from_array(array, role, image_spec, path), suffix[1:], origin, True
    if image_spec is None:
        raise CalibrationError(f"input '{role.name}' takes a tensor {list(role.shape)}, not pictures, so {path} "
                               "cannot feed it", f"pass a .npy or .npz array of shape [N, {_shown(role)}]")
    if path.is_dir():
        return _from_folder(path, image_spec, limit, progress), "images", str(path), True
    if suffix in VIDEO_SUFFIXES:
        return _from_video(path, image_spec, limit, progress), "video", str(path), True
    if suffix in IMAGE_SUFFIXES:
        return _stack([path], image_spec, "images", progress), "images", str(path), True
    raise CalibrationError(f"calibration data {path} is not a folder, video, image or .npy/.npz file",
                           f"videos: {', '.join(sorted(VIDEO_SUFFIXES))}; images go in a folder")


def _frame_spec(role: SourceInput, pre: Preprocess) -> frames.FrameSpec:
    """PRE for this image input: its own declared size when static, its channel count."""
    spatial = role.spatial()
    size = [int(d) for d in spatial] if all(d > 0 for d in spatial) else pre.input_size
    try:
        return frames.FrameSpec.of({**_pre_dict(pre), "input_size": size, "channels": role.channels,
                                    "layout": "NHWC"})
    except frames.FrameError as exc:
        raise CalibrationError(str(exc), exc.remedy) from None


def _pre_dict(pre: Preprocess) -> dict:
    return {"resize": pre.resize, "color_order": pre.color_order, "mean": pre.mean, "std": pre.std}


def _per_sample(role: SourceInput) -> list[int]:
    """A tensor input's shape without its batch axis (rank 2 and up have one)."""
    shape = [1 if i == 0 and len(role.shape) >= 2 else d for i, d in enumerate(role.shape)]
    return shape[1:] if len(shape) >= 2 else shape


def _shown(role: SourceInput) -> str:
    return ", ".join(str(d) for d in _per_sample(role))


def _read_array(path: Path, role: SourceInput, npz_cache: dict, inputs: int) -> np.ndarray:
    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, allow_pickle=False)
        key = str(path)
        if key not in npz_cache:
            npz_cache[key] = np.load(path, allow_pickle=False)
        archive = npz_cache[key]
        names = list(archive.files)
        if role.name in names:
            return archive[role.name]
        if inputs == 1 and len(names) == 1:
            return archive[names[0]]
    except (OSError, ValueError) as exc:
        raise CalibrationError(f"{path} is not a readable {path.suffix} array file ({exc})") from None
    raise CalibrationError(f"{path} has no array named '{role.name}' (it holds {', '.join(names) or 'none'})",
                           "save one array per input name: np.savez(FILE, " + ", ".join(
                               f"{n}=..." for n in [role.name]) + ", ...)")


def _from_array(array: np.ndarray, role: SourceInput, spec: frames.FrameSpec | None, path: Path) -> np.ndarray:
    """An array from a .npy/.npz as [N, ...] samples of this input."""
    if spec is None:
        per = _per_sample(role)
        if list(array.shape) == per:
            array = array[None]
        if list(array.shape[1:]) != per:
            raise CalibrationError(f"{path} holds {list(array.shape)} for input '{role.name}', which takes "
                                   f"[N, {_shown(role)}] (tensor {list(role.shape)})",
                                   "save the samples along the first axis, as the model takes them")
        return array.astype(role.dtype, copy=False)
    channels = spec.channels
    if array.ndim == 3 and not (channels == 1 and array.shape[-1] not in (1, 3)):
        array = array[None]   # one H x W x C picture
    if array.ndim == 3:       # N x H x W greyscale pixels or floats
        array = array[..., None]
    allowed = (1, 3) if channels == 1 else (3,)
    if array.ndim != 4 or not (array.shape[3] in allowed or array.shape[1] in allowed):
        expected = "N x H x W x 3 (or N x 3 x H x W)" if channels == 3 else "N x H x W (x 1 or 3)"
        raise CalibrationError(f"{path} has shape {array.shape}; expected {expected}")
    if array.shape[3] not in allowed:
        array = array.transpose(0, 2, 3, 1)
    if array.dtype == np.uint8:
        return np.concatenate([_preprocess(a, spec) for a in array])
    expected = tuple(spec.input_size)
    if array.shape[1:3] != expected or array.shape[3] != channels:
        raise CalibrationError(f"{path} holds float samples of size {array.shape[1:3]}, the model takes {expected}"
                               + (f" with {channels} channel(s)" if array.shape[3] != channels else ""),
                               "save uint8 pixels instead (they are resized) or resize the floats")
    return array.astype(np.float32)


def _from_folder(folder: Path, spec: frames.FrameSpec, limit: int, progress) -> np.ndarray:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise CalibrationError(f"calibration folder {folder} has no images",
                               f"add {', '.join(sorted(IMAGE_SUFFIXES))} files")
    if len(files) > limit:  # spread picks over the whole folder, not the first N names
        files = [files[i] for i in np.linspace(0, len(files) - 1, limit).astype(int)]
    return _stack(files, spec, "images", progress)


def _read_image(path: Path, channels: int = 3) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise CalibrationError(f"calibration image {path} cannot be decoded", "remove or re-save it")
    if image.ndim == 3 and image.shape[2] == 3:
        image = image[:, :, ::-1]  # OpenCV decodes BGR; samples are RGB until preprocess
    got = image.shape[2] if image.ndim == 3 else 1
    if got not in ((1, 3) if channels == 1 else (3,)):
        raise CalibrationError(f"calibration image {path} has {got} channel(s); the model takes {channels}",
                               "convert the images to 3-channel RGB (drop alpha, expand grayscale)")
    if image.dtype != np.uint8:
        image = (image / (65535.0 if image.dtype == np.uint16 else image.max() or 1) * 255).astype(np.uint8)
    return image


def _stack(items, spec: frames.FrameSpec, kind: str, progress) -> np.ndarray:
    task = progress.add_task(f"calibration {kind}", total=len(items)) if progress else None
    batches = []
    for item in items:
        image = _read_image(item, spec.channels) if isinstance(item, Path) else item
        batches.append(_preprocess(image, spec))
        if progress:
            progress.advance(task)
    return np.concatenate(batches)


def _from_video(path: Path, spec: frames.FrameSpec, limit: int, progress) -> np.ndarray:
    import cv2

    capture = cv2.VideoCapture(str(path))
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    if not capture.isOpened() or total <= 0:
        raise CalibrationError(f"video {path} cannot be read (no frames)", "check the file with ffprobe")
    pictures = []
    for index in np.unique(np.linspace(0, total - 1, min(limit, total)).astype(int)):
        capture.set(cv2.CAP_PROP_POS_FRAMES, int(index))
        ok, frame = capture.read()
        if ok:
            pictures.append(frame[:, :, ::-1])
    capture.release()
    if not pictures:
        raise CalibrationError(f"video {path} yielded no decodable frames", "re-encode it (H.264 MP4)")
    return _stack(pictures, spec, "video", progress)


def preprocess_pictures(pictures: Sequence[np.ndarray], role: SourceInput, pre: Preprocess) -> np.ndarray:
    """uint8 RGB pictures -> float32 [N, H, W, C] samples of one image input (photos for verify)."""
    spec = _frame_spec(role, pre)
    return np.concatenate([_preprocess(p, spec) for p in pictures])


def _preprocess(image: np.ndarray, spec: frames.FrameSpec) -> np.ndarray:
    """uint8 RGB [H, W, 3] (or [H, W, 1] / [H, W] for a greyscale input) -> float32
    [1, h, w, C] NHWC (frames.preprocess_image), or one CalibrationError line."""
    try:
        return frames.preprocess_image(image, spec)
    except frames.FrameError as exc:
        raise CalibrationError(str(exc), exc.remedy) from None
