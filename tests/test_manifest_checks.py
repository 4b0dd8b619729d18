"""A manifest is trusted only for the file it was written for: it records the artifact's sha256,
and every reader (bench, predict, inspect, run, deploy) refuses, in one line naming both files, a
manifest whose artifact was replaced after conversion (an fp32 file copied over the int8 name
must not be reported as "int8, pass 0.984"). A manifest the user cannot read is one line too.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SIZE

pytest.importorskip("ai_edge_litert")


@pytest.fixture(scope="module")
def swapped(keras_file, stream_model, tmp_path_factory) -> Path:
    """The int8 artifact's name and manifest, with the fp32 file of the same model copied over it."""
    from edgekit.convert import ConvertRequest, convert

    out = tmp_path_factory.mktemp("swap")
    fp32 = convert(str(keras_file), ConvertRequest(targets=["tflite"], precisions=["fp32"], out_dir=out / "fp32",
                                                  input_size=[SIZE, SIZE], mean=[127.5], std=[127.5], verify=False,
                                                  name="tiny")).artifacts[0].path
    target = out / stream_model.name
    shutil.copy(stream_model.with_name(stream_model.name + ".edgekit.json"), out / (stream_model.name + ".edgekit.json"))
    shutil.copy(fp32, target)
    return target


def edgekit(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgekit", *map(str, args)], capture_output=True, text=True,
                          timeout=180, **kwargs)


def test_manifest_records_the_artifacts_sha256(stream_model):
    manifest = json.loads(stream_model.with_name(stream_model.name + ".edgekit.json").read_text())
    assert manifest["artifact_sha256"] == hashlib.sha256(stream_model.read_bytes()).hexdigest()


def test_every_reader_refuses_a_replaced_artifact(swapped, photos_dir, tmp_path):
    manifest = swapped.with_name(swapped.name + ".edgekit.json")
    expected = (f"error: {swapped} is not the file its manifest {manifest} describes (sha256 "
                f"{hashlib.sha256(swapped.read_bytes()).hexdigest()[:12]}, the manifest records "
                f"{json.loads(manifest.read_text())['artifact_sha256'][:12]}: the artifact was replaced after "
                "conversion). convert the model again, or delete the stale manifest")
    photo = sorted(photos_dir.iterdir())[0]
    for args in (("inspect", swapped), ("predict", swapped, photo),
                 ("run", swapped, "--source", "synthetic", "--max-frames", "1", "--jsonl", tmp_path / "r.jsonl"),
                 ("deploy", swapped, "--host", "nobody@127.0.0.1")):
        done = edgekit(*args)
        assert done.returncode == 2, (args, done.stderr)
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert errors == [expected], (args, done.stderr)
    done = edgekit("bench", swapped, "--runs", "2", "--json")   # bench reports it as the row's reason
    assert done.returncode == 2 and "is not the file its manifest" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "r.jsonl").exists()


def test_unreadable_manifest_is_one_line(stream_model, tmp_path):
    if shutil.which("setpriv") is None and os.geteuid() == 0:
        pytest.skip("root reads any file; setpriv (util-linux) is needed to drop that right")
    artifact = tmp_path / stream_model.name
    shutil.copy(stream_model, artifact)
    manifest = tmp_path / (stream_model.name + ".edgekit.json")
    shutil.copy(stream_model.with_name(stream_model.name + ".edgekit.json"), manifest)
    manifest.chmod(0)
    # root ignores file modes; without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH it meets them like anyone
    prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    done = subprocess.run([*prefix, sys.executable, "-m", "edgekit", "inspect", str(artifact)], capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"error: manifest {manifest} is not readable by this user (permission denied). "
                                   f"ask its owner to make it readable: chmod a+r '{manifest}'")


def test_a_newer_manifest_of_the_same_schema_reads(stream_model, tmp_path):
    """Fields a later edgekit adds within schema 2 (at every level: the verify report, its outputs,
    preprocessing, input specs) are ignored on read, as the board's older edgekit must do."""
    from edgekit.manifest import Manifest, read_manifest

    data = json.loads(stream_model.with_name(stream_model.name + ".edgekit.json").read_text())
    data["later_field"] = 1
    data["preprocess"]["later_field"] = 1
    data["model_card"]["later_field"] = 1
    for spec in data.get("input_specs", []):
        spec["later_field"] = 1
    verify = data.setdefault("verify", {"status": "pass"})
    verify["later_field"] = {"x": 1}
    for output in verify.get("outputs", []):
        output["later_field"] = 1
    manifest = Manifest.from_dict(data)
    assert manifest.to_dict() == read_manifest(stream_model).to_dict()
