"""Atomic publication: nothing half-written is ever left where a finished artifact belongs."""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def staging_dir(out_dir: Path) -> Iterator[Path]:
    """A scratch directory beside `out_dir` (same filesystem, so os.replace is atomic).

    It is removed on every exit, including Ctrl-C, so an interrupted conversion leaves nothing.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=".edgekit-staging-", dir=out_dir)).resolve()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def publish(staged: list[Path], out_dir: Path) -> list[Path]:
    """Move staged files/dirs into out_dir. Pass the manifest last: it marks completion."""
    published = []
    for item in staged:
        dest = out_dir / item.name
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)
        os.replace(item, dest)
        published.append(dest)
    return published


def write_atomic(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        with open(file, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def size_of(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size
