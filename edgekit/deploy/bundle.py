"""The deploy bundle: model + manifest + reference pack + labels + the self-contained runner, with
a sha256 per file.

The runner takes three edgekit modules along, verbatim: frames.py (pre/postprocessing, so the
board makes the host's input tensors and results), bench/stats.py (so remote bench has the local
schema) and parity.py (so `remote verify` gates the reference pack as the host does). bundle.json carries the FrameSpec and DecodeSpec the host resolved from the manifest
(runtime/specs.py), so the board never reads the manifest's schema itself.

A bundle is flat (no subdirectories) and versioned `YYYYMMDDTHHMMSSZ-<content hash>`: versions
sort by time, and the hash names the content. SHA256SUMS (sha256sum format) lists every other
file; the device checks it against the digest the client sends on the command line, so a
truncated or altered upload can never be activated.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BadInput, EdgekitError, ModelFormatError
from ..manifest import SUFFIX as MANIFEST_SUFFIX
from ..manifest import manifest_path, read_manifest

SUMS = "SHA256SUMS"
INFO = "bundle.json"
RUNNER = Path(__file__).parent / "device" / "edgekit_runner.py"
STATS = Path(__file__).parents[1] / "bench" / "stats.py"
FRAMES = Path(__file__).parents[1] / "frames.py"
PARITY = Path(__file__).parents[1] / "parity.py"
_NAME = re.compile(r"^[^/\0\n\r\\]+$")


@dataclass
class BundleFile:
    name: str
    size: int
    sha256: str
    path: Path | None = None        # read from disk when streaming...
    data: bytes | None = None       # ...or held in memory (generated files)

    def open(self):
        return open(self.path, "rb") if self.path is not None else io.BytesIO(self.data)


@dataclass
class Bundle:
    name: str                        # directory on the device: ROOT/models/NAME
    version: str
    model: str                       # model file name inside the bundle
    edgetpu: bool                    # the model file holds an edgetpu-custom-op (compiled), whatever its name
    min_runtime_version: int | None
    files: list[BundleFile] = field(default_factory=list)
    content_sha256: str = ""         # over every file but bundle.json and SHA256SUMS: same content, same hash

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def sums_sha256(self) -> str:
        return next(f.sha256 for f in self.files if f.name == SUMS)

    def write_tar(self, stream, progress=None) -> None:
        """A streaming tar of the flat bundle; progress(nbytes) after every chunk."""
        with tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT) as archive:
            for item in self.files:
                info = tarfile.TarInfo(item.name)
                info.size = item.size
                info.mode = 0o644
                info.mtime = int(time.time())
                with item.open() as handle:
                    archive.addfile(info, _Counting(handle, progress))

    def save(self, out_dir: Path) -> Path:
        """Write the bundle to out_dir/<name>-<version>/ (for inspection or manual copying)."""
        from ..fsutil import publish, staging_dir

        with staging_dir(out_dir) as staging:
            folder = staging / f"{self.name}-{self.version}"
            folder.mkdir()
            for item in self.files:
                with item.open() as source, open(folder / item.name, "wb") as target:
                    for chunk in iter(lambda: source.read(1 << 20), b""):
                        target.write(chunk)
            return publish([folder], out_dir)[0]

    def to_dict(self) -> dict:
        return {"name": self.name, "version": self.version, "model": self.model, "edgetpu": self.edgetpu,
                "min_runtime_version": self.min_runtime_version, "size_bytes": self.size,
                "content_sha256": self.content_sha256,
                "files": {f.name: f.sha256 for f in self.files}}


class _Counting:
    def __init__(self, handle, progress):
        self.handle = handle
        self.progress = progress

    def read(self, size=-1):
        chunk = self.handle.read(size)
        if self.progress and chunk:
            self.progress(len(chunk))
        return chunk


def _hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _file(name: str, path: Path | None = None, data: bytes | None = None) -> BundleFile:
    if path is not None:
        return BundleFile(name, path.stat().st_size, _hash(path), path=path)
    return BundleFile(name, len(data), hashlib.sha256(data).hexdigest(), data=data)


def check_name(name: str, what: str = "model name") -> str:
    if not name or name in (".", "..") or name.startswith(".") or not _NAME.match(name) or len(name) > 200:
        raise BadInput(f"invalid {what} {name!r}",
                       "use a plain name without '/', backslashes, newlines or a leading dot")
    return name


def build_bundle(model: Path, name: str | None = None, labels: Path | None = None,
                 include: list[Path] | tuple[Path, ...] = (), warn=None, need_reference: bool = False) -> Bundle:
    """The deploy bundle for MODEL, a .tflite (its manifest beside it is included when present):
    the model, manifest, reference pack, labels (LABELS, else the manifest's), the board runner
    with the modules it vendors, the INCLUDE files, bundle.json and a sha256 for every file.
    NAME defaults to the model's stem. An Edge TPU model records the libedgetpu runtime version
    its manifest says it needs. WARN gets a line when there is no manifest or no usable pack.
    Raises BadInput for a missing or non-TFLite model, an invalid name, a missing --include file,
    two files with one name, or (NEED_REFERENCE, for --verify-on-device) no pack that belongs
    to the model (edgekit.reference.load_reference's checks)."""
    from ..formats import sniff

    model = Path(model)
    if not model.is_file():
        raise ModelFormatError(f"{model}: no such model file", "pass the .tflite artifact that `edgekit convert` wrote")
    kind = sniff(model).name
    if kind != "tflite":
        raise BadInput(f"{model.name} is a {kind} model; edgekit deploy ships TFLite models "
                       "(the board runner uses LiteRT / tflite_runtime)",
                       "convert it first: edgekit convert MODEL --to tflite")
    name = check_name(name or model.stem)
    check_name(model.name, "model file name")
    described, manifest = model, read_manifest(model)
    if manifest is None:   # an Edge TPU model edgetpu_compiler made during convert: its int8 model's manifest
        described, manifest = compiled_from(model)
    if manifest is None and warn:
        warn(f"no manifest beside {model.name}: `remote bench` works, `remote run` cannot preprocess frames "
             "(deploy the artifact `edgekit convert` wrote, with its .edgekit.json)")
    files = [_file(model.name, path=model)]
    manifest_name = None
    if manifest is not None:
        manifest_name = manifest_path(described).name
        files.append(_file(manifest_name, path=manifest_path(described)))
    reference = _reference(described, manifest, need_reference, warn)
    if reference is not None:
        files.append(_file(reference.name, path=reference))
    label_lines = list(manifest.labels) if manifest and manifest.labels else None
    if labels is not None:
        label_lines = [line.strip() for line in Path(labels).read_text().splitlines() if line.strip()]
    if label_lines:
        files.append(_file("labels.txt", data=("\n".join(label_lines) + "\n").encode()))
    files.append(_file("edgekit_runner.py", path=RUNNER))
    files.append(_file("stats.py", path=STATS))  # vendored verbatim: remote bench = local bench schema
    files.append(_file("frames.py", path=FRAMES))  # vendored verbatim: remote run = local predict
    files.append(_file("parity.py", path=PARITY))  # vendored verbatim: remote verify = local verify's gates
    for extra in include:
        extra = Path(extra)
        if not extra.is_file():
            raise BadInput(f"--include {extra}: no such file", "include regular files (labels, configs, anchors)")
        files.append(_file(check_name(extra.name, "included file name"), path=extra))
    names = [f.name for f in files]
    duplicates = sorted({n for n in names if names.count(n) > 1} | ({INFO, SUMS} & set(names)))
    if duplicates:
        raise BadInput(f"two bundle files would be named {', '.join(duplicates)}", "rename the --include file")

    edgetpu = compiled_for_edgetpu(model)   # the file says so, never its name or the manifest's target
    min_runtime = manifest.edgetpu.min_runtime_version if edgetpu and manifest and manifest.edgetpu else None
    content = hashlib.sha256("".join(f"{f.sha256}  {f.name}\n" for f in sorted(files, key=lambda f: f.name)).encode())
    version = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + content.hexdigest()[:12]
    info = {"name": name, "version": version, "model": model.name, "manifest": manifest_name,
            "labels": "labels.txt" if label_lines else None, "edgetpu": edgetpu,
            "reference": reference.name if reference is not None else None,
            "min_runtime_version": min_runtime, "content_sha256": content.hexdigest(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "edgekit_version": _edgekit_version(),
            **_specs(manifest)}
    files.append(_file(INFO, data=(json.dumps(info, indent=2) + "\n").encode()))
    sums = "".join(f"{f.sha256}  {f.name}\n" for f in files).encode()
    files.append(_file(SUMS, data=sums))
    return Bundle(name=name, version=version, model=model.name, edgetpu=edgetpu, min_runtime_version=min_runtime,
                  files=files, content_sha256=content.hexdigest())


def compiled_from(model: Path):
    """(int8 model, its Manifest) when MODEL is the Edge TPU model `edgekit convert --to edgetpu`
    compiled beside it: the manifest whose `edgetpu.compiled.artifact` names MODEL. The compiled
    model keeps that model's input and output tensors (edgetpu_compiler maps the ops between
    them), so its preprocessing, labels and reference pack apply. (MODEL, None) when none does."""
    import json

    for sidecar in sorted(Path(model).parent.glob(f"*{MANIFEST_SUFFIX}")):
        try:
            data = json.loads(sidecar.read_text())
            compiled = ((data.get("edgetpu") or {}).get("compiled") or {}).get("artifact")
        except (OSError, ValueError, AttributeError):
            continue
        if compiled == Path(model).name and data.get("artifact"):
            source = sidecar.with_name(data["artifact"])
            return source, read_manifest(source)
    return model, None


def _reference(model: Path, manifest, needed: bool, warn) -> Path | None:
    """The reference pack to ship with MODEL: the one its manifest records, checked to belong to
    it. Without one `remote verify` cannot run: BadInput when NEEDED; else a warning when the
    manifest records a pack that is missing or not this model's (none recorded: silence)."""
    from ..reference import load_reference

    if manifest is None:
        if needed:
            raise BadInput(f"{model.name} has no manifest beside it, so no reference pack to verify on the device",
                           "deploy the artifact `edgekit convert` wrote, with its .edgekit.json and .edgekit.ref.npz")
        return None
    if manifest.reference is None and not needed:
        return None
    try:
        return load_reference(model, manifest).path
    except BadInput as exc:
        if needed:
            raise
        if warn:
            warn(f"{exc.one_line()} (without it, `edgekit remote verify` cannot run)")
        return None


def compiled_for_edgetpu(model: Path) -> bool:
    """True when the TFLite file holds an `edgetpu-custom-op`: only edgetpu_compiler writes one.
    A `*_edgetpu_ready.tflite` is int8 for the CPU until it is compiled."""
    from ..edgetpu.analyze import is_compiled
    from ..tflite_model import read_tflite

    return is_compiled(read_tflite(model))


def _specs(manifest) -> dict:
    """bundle.json's "frames" and "decode": the manifest read into frames.py's specs, exactly as the
    Predictor reads it (the board adds its interpreter's output names and --top-k). A model whose
    input is not an image keeps `remote bench`; `remote run` then reports "frames_error"."""
    if manifest is None:
        return {"frames": None, "decode": None}
    from ..runtime.specs import decode_spec, frame_spec

    try:
        return {"frames": frame_spec(manifest, manifest.inputs[0] if manifest.inputs else None).to_dict(),
                "decode": {k: v for k, v in decode_spec(manifest).to_dict().items() if k != "output_names"}}
    except EdgekitError as exc:
        return {"frames": None, "decode": None, "frames_error": f"the board runner cannot run this model on frames: "
                                                                f"{exc.one_line()}"}


def _edgekit_version() -> str:
    from .. import __version__

    return __version__

