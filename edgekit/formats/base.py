"""The Format record and its registry: every fact edgekit keeps about one model format.

A format module (one per format, beside this file) builds a `Format` and `register`s it. Every
other module asks the registry instead of keeping its own table:

    fmt = sniff(path)                  # from the content: magic bytes, archive members, layout
    fmt.name, fmt.suffix               # "openvino", ".xml"
    fmt.files(path)                    # the model and its companions (the IR's .bin)
    fmt.check(path)                    # structure, in pure Python, before any native loader
    fmt.backend                        # the runtime backend that runs it by default
    fmt.inspect(path)                  # inputs, outputs, ops, details (`edgekit inspect`)

The suffix is never trusted for sniffing; it only words errors and names written artifacts.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import REMEDY_REEXPORT, EdgekitError, ModelFormatError, summary
from ..registry import Registry

# files beside a model that name its classes (AutoML, Model Maker and Coral exports ship them)
LABEL_FILES = ("labels.txt", "dict.txt", "labels.json")
HEAD_BYTES = 64

# magic prefix -> what it is, for files that are clearly not models
_NOT_MODELS = {
    b"\xff\xd8\xff": "a JPEG image",
    b"\x89PNG\r\n\x1a\n": "a PNG image",
    b"GIF8": "a GIF image",
    b"%PDF": "a PDF document",
    b"\x1f\x8b": "a gzip archive (unpack it first)",
    b"\x7fELF": "an executable",
}


@dataclass
class Evidence:
    """What sniffers look at: the path, the first bytes of a file and, for a zip archive, its
    member names (read once, on first use)."""

    path: Path
    head: bytes = b""     # the first HEAD_BYTES bytes of a file; empty for a directory
    _members: list[str] | None = field(default=None, repr=False)

    @property
    def directory(self) -> bool:
        return self.path.is_dir()

    @property
    def zipped(self) -> bool:
        return self.head.startswith(b"PK\x03\x04")

    def members(self) -> list[str]:
        """Member names of a zip archive ([] for anything else); a damaged archive is one line."""
        if not self.zipped:
            return []
        if self._members is None:
            try:
                with zipfile.ZipFile(self.path) as archive:
                    self._members = archive.namelist()
            except (zipfile.BadZipFile, OSError) as exc:
                raise ModelFormatError(f"{self.path} is a damaged zip archive ({exc})", REMEDY_REEXPORT) from None
        return self._members

    def tails(self) -> set[str]:
        """Member names without their top folder (archives nest everything under the model name)."""
        return {name.split("/", 1)[-1] for name in self.members()}


@dataclass
class Inspection:
    """What an inspector reads from an artifact (`edgekit inspect`)."""

    inputs: list  # list[TensorInfo], with quantization where the model is quantized
    outputs: list
    ops: dict[str, int]                      # op type -> count, most frequent first
    details: dict[str, Any] = field(default_factory=dict)  # format-specific facts, "name": value
    metadata: dict[str, Any] | None = None   # the format's own metadata (`metadata_card`), None: none


def metadata_card(name="", description="", author="", license="", version="", inputs=None, outputs=None,
                  extra=None) -> dict[str, Any]:
    """A format's own metadata in one shape for every format: name, description, author,
    license, version, inputs/outputs {tensor: description} and whatever else it carries (extra)."""
    return {"name": name, "description": description, "author": author, "license": license, "version": version,
            "inputs": {k: v for k, v in (inputs or {}).items() if v},
            "outputs": {k: v for k, v in (outputs or {}).items() if v}, "extra": extra or {}}


def _no_companions(path: Path) -> list[Path]:
    return []


@dataclass(frozen=True, repr=False)
class Format:
    """One model format. Only `name`, `title`, `suffixes` and `sniff` are required.

    name        registry key, as `sniff` returns it and Runner.formats lists it ("tflite")
    title       for messages: "TFLite flatbuffer"
    suffixes    file or directory suffixes; the first is the one edgekit writes (".mlpackage")
    sniff       Evidence -> bool: claims a path from its content alone
    rank        sniffers run in rank order: weak heuristics (a protobuf's first tag) go last
    source      module in edgekit/sources/ that loads it as a conversion source, or None
    backend     runtime backend (edgekit/runtime/) that runs it by default, or None
    companions  path -> files that belong to the model beside it (an IR's .bin weights)
    check       path -> None: structure check in pure Python; raises ModelFormatError
    probe       Python source that loads the file `p` with its framework; run in a child
                process before this process loads it (a crash there is one line here)
    inspector   path -> Inspection, for `edgekit inspect`; None for source-only formats
    near_miss   Evidence -> message or None: content that resembles this format but is not a
                model edgekit takes (a PyTorch state_dict); asked when no sniffer claims a path
    """

    name: str
    title: str
    suffixes: tuple[str, ...]
    sniff: Callable[[Evidence], bool]
    rank: int = 50
    source: str | None = None
    backend: str | None = None
    companions: Callable[[Path], list[Path]] = _no_companions
    check: Callable[[Path], None] | None = None
    probe: str | None = None
    inspector: Callable[[Path], Inspection] | None = None
    near_miss: Callable[[Evidence], tuple[str, str] | None] | None = None

    def __repr__(self) -> str:
        return f"Format({self.name!r})"

    @property
    def suffix(self) -> str:
        """The suffix edgekit gives the files it writes in this format."""
        return self.suffixes[0]

    def files(self, path: Path) -> list[Path]:
        """Every file the model is made of: a directory's files, or the file and its companions."""
        path = Path(path)
        if path.is_dir():
            return sorted(p for p in path.rglob("*") if p.is_file())
        return [path, *(c for c in self.companions(path) if c.is_file())]

    def size(self, path: Path) -> int:
        """Bytes on disk, companions included (an IR is the .xml plus its .bin)."""
        return sum(f.stat().st_size for f in self.files(path))

    def check_structure(self, path: Path) -> None:
        """Raise ModelFormatError when the file's structure is damaged (no-op without a check)."""
        if self.check is not None:
            self.check(Path(path))

    def load_in_child(self, path: Path, timeout: float = 300.0) -> None:
        """Load PATH with its framework in a child process first (no-op without a probe)."""
        if self.probe is None:
            return
        script = f"import sys; p = sys.argv[1]; {self.probe}"
        run_probe([sys.executable, "-c", script, str(path)], path, self.name, timeout)

    def inspect(self, path: Path) -> Inspection:
        if self.inspector is None:
            raise EdgekitError(f"{path} is a {self.name} model, a source format with nothing to inspect here",
                               "convert it first with `edgekit convert`, then inspect the artifact")
        self.check_structure(path)   # damaged files: one line, before any native reader
        return self.inspector(Path(path))


FORMATS: Registry[Format] = Registry("model format", "edgekit.formats")


def register(fmt: Format) -> Format:
    FORMATS.register(fmt.name)(fmt)
    return fmt


def sniff(path: Path) -> Format:
    """The format of PATH, read from its content. Raises ModelFormatError for a missing, empty
    or unknown file, with what it seems to be instead."""
    path = Path(path)
    if not path.exists():
        raise ModelFormatError(f"{path}: no such file or directory", "check the path")
    evidence = Evidence(path)
    if not path.is_dir():
        if path.stat().st_size == 0:
            raise ModelFormatError(f"{path} is empty (0 bytes)", REMEDY_REEXPORT)
        with open(path, "rb") as handle:
            evidence.head = handle.read(HEAD_BYTES)
        for magic, what in _NOT_MODELS.items():
            if evidence.head.startswith(magic):
                raise ModelFormatError(f"{path} is {what}, not a model", "pass the model file itself")
    ordered = sorted(FORMATS.values(), key=lambda f: (f.rank, f.name))
    for fmt in ordered:
        if fmt.sniff(evidence):
            return fmt
    for fmt in ordered:
        miss = fmt.near_miss(evidence) if fmt.near_miss else None
        if miss:
            raise ModelFormatError(*miss)
    if evidence.directory:
        raise ModelFormatError(f"{path} is a directory without saved_model.pb",
                               "pass a SavedModel directory or a model file")
    if evidence.zipped:
        evidence.members()  # a damaged archive says so
        raise ModelFormatError(f"{path} is a zip archive that holds no known model", REMEDY_REEXPORT)
    raise ModelFormatError(f"{path} is not a model edgekit recognises (suffix '{path.suffix}', "
                           f"content starts {evidence.head[:8].hex()})", f"accepted: {accepted()}")


def accepted() -> str:
    """The formats edgekit converts from, for messages: "Keras .keras, ... TorchScript .pt"."""
    return ", ".join(f"{f.title} {'/'.join(f.suffixes)}" if f.suffixes else f.title
                     for f in FORMATS.values() if f.source)


def for_suffix(suffix: str) -> Format | None:
    """The format whose files carry SUFFIX (".xml" -> openvino), for naming only, never sniffing."""
    suffix = suffix.lower()
    return next((f for f in FORMATS.values() if suffix in f.suffixes), None)


def labels_beside(path: Path) -> Path | None:
    """A labels file shipped beside a model (or inside a model directory), if there is one."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    return next((folder / name for name in LABEL_FILES if (folder / name).is_file()), None)


def companion_files(paths: list[Path]) -> set[Path]:
    """Of PATHS, the files that belong to another listed model (an IR's .bin beside its .xml)."""
    found: set[Path] = set()
    for path in map(Path, paths):
        try:
            fmt = sniff(path)
        except ModelFormatError:
            continue
        found.update(fmt.companions(path))
    return found


# ---------------------------------------------------------------- child-process probes

def run_probe(command: list[str], path: Path, loader: str, timeout: float, cache_key: str | None = None) -> None:
    """Run COMMAND, a child that loads PATH with LOADER (a format or backend name), and turn its
    failure into one line: a crash, a hang past TIMEOUT seconds or an error.

    A child that exits 2 printed an EdgekitError line on stdout, which is raised as is. With
    CACHE_KEY, a success is remembered (in this process and under the user cache dir) and not
    run again."""
    if cache_key is not None and (cache_key in _PROBED or (_cache_dir() / cache_key).exists()):
        return
    from ..deps import tool_env

    env = tool_env(TF_CPP_MIN_LOG_LEVEL="3", OPENVINO_LOG_LEVEL="0")   # the interpreter's own tools on PATH
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, env=env)
    except subprocess.TimeoutExpired:
        raise ModelFormatError(f"loading {path} with {loader} did not finish in {timeout:.0f} s "
                               "(checked in a child process)", REMEDY_REEXPORT) from None
    if done.returncode < 0:
        raise ModelFormatError(f"{path} crashed the {loader} loader (signal {-done.returncode}, in a child "
                               "process); the file is corrupt or malicious", REMEDY_REEXPORT)
    if done.returncode != 0:
        lines = [line for line in done.stdout.strip().splitlines() if line.strip()]
        message = lines[-1][:300] if lines else summary(done.stderr or f"exit code {done.returncode}", last=True)
        if done.returncode == 2:
            raise EdgekitError(message)
        raise ModelFormatError(f"{path} could not be loaded by {loader}: {message}", REMEDY_REEXPORT)
    if cache_key is not None:
        _PROBED.add(cache_key)
        try:
            (_cache_dir() / cache_key).parent.mkdir(parents=True, exist_ok=True)
            (_cache_dir() / cache_key).touch()
        except OSError:
            pass  # a read-only home: the probe just runs again next time


def content_key(files: list[Path], *facts: Any) -> str:
    """A sha256 over FACTS and the names and bytes of FILES: the cache key of a probe."""
    digest = hashlib.sha256(json.dumps(facts, default=str).encode())
    for file in files:
        digest.update(file.name.encode())
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def probe_timeout(files: list[Path]) -> float:
    """Seconds a runtime probe may take: EDGEKIT_PROBE_TIMEOUT, else 8 s plus 1 s per MB of model."""
    if os.environ.get("EDGEKIT_PROBE_TIMEOUT"):
        return float(os.environ["EDGEKIT_PROBE_TIMEOUT"])
    return 8.0 + sum(f.stat().st_size for f in files) / 1e6


_PROBED: set[str] = set()


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "edgekit" / "probed"
