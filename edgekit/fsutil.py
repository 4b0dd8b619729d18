"""Atomic publication: nothing half-written is ever left where a finished artifact belongs."""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


STAGING_PREFIX = ".edgekit-staging-"
OWNER = ".owner"            # inside a staging directory: "PID START_TIME" of the process using it
ORPHAN_GRACE_S = 60.0       # a staging directory with no owner file yet may be in its first instant


@contextmanager
def staging_dir(out_dir: Path) -> Iterator[Path]:
    """A scratch directory beside `out_dir` (same filesystem, so os.replace is atomic).

    It is removed on every exit, including Ctrl-C, SIGTERM and SIGHUP (edgekit.interrupt), so an
    interrupted conversion leaves nothing. It records its owner's PID: staging directories whose
    owner died without cleaning up (SIGKILL, power loss) are removed by the next run into `out_dir`.
    """
    created = [folder for folder in (out_dir, *out_dir.parents) if not folder.exists()]   # deepest first
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out_dir)
    path = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out_dir)).resolve()
    try:
        (path / OWNER).write_text(f"{os.getpid()} {_start_time(os.getpid())}\n")
        yield path
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        for folder in created:   # a failed or interrupted run leaves no empty output folder behind
            try:
                folder.rmdir()
            except OSError:   # not empty: someone else wrote there meanwhile
                break
        raise
    finally:
        shutil.rmtree(path, ignore_errors=True)


def remove_stale_staging(out_dir: Path) -> list[Path]:
    """Remove `.edgekit-staging-*` directories in out_dir whose owning process is gone."""
    removed = []
    for candidate in out_dir.glob(STAGING_PREFIX + "*"):
        if candidate.is_dir() and not candidate.is_symlink() and not _owner_alive(candidate):
            shutil.rmtree(candidate, ignore_errors=True)
            removed.append(candidate)
    return removed


def _owner_alive(staging: Path) -> bool:
    try:
        pid_text, _, started = (staging / OWNER).read_text().strip().partition(" ")
        pid = int(pid_text)
    except (OSError, ValueError):  # no owner file: an older edgekit's, or one created this instant
        try:
            return time.time() - staging.stat().st_mtime < ORPHAN_GRACE_S
        except OSError:
            return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    # the PID is in use; by the same process only if it started at the same time (PIDs are reused)
    return not started or started == _start_time(pid)


def _start_time(pid: int) -> str:
    try:
        import psutil

        return f"{psutil.Process(pid).create_time():.2f}"
    except Exception:  # psutil missing, or the process just ended
        return ""


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


def user_umask() -> int:
    """The process umask, read without changing it where the OS allows (os.umask is a write, and
    racing threads would briefly create files with mode 0666)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def temp_beside(path: Path, suffix: str = "") -> tuple[int, Path]:
    """(fd, path) of a new hidden file beside `path`, created with the user's umask like any file
    (mkstemp's 0600 would hide results from a CI step or a web server running as another user)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~user_umask())
    except OSError:
        pass
    return fd, Path(tmp)


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write `data` to `path` through a temporary file and os.replace: readers see the old file or
    the whole new one. The file gets the user's umask."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_beside(path)
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
