"""`edgekit deploy`, `remote bench|run`, `rollback` against a real OpenSSH server on 127.0.0.1.

The "board" is this machine: sshd runs with throwaway keys in a tmp dir, the remote python is
the interpreter running these tests (numpy + ai-edge-litert), and bundles land under a tmp
--remote-root, so the tests read the device side straight from disk.
"""
from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import sshd as sshd_helper
from edgekit.errors import EdgekitError

pytestmark = pytest.mark.skipif(sshd_helper.unavailable_reason() is not None,
                                reason=str(sshd_helper.unavailable_reason()))

LABELS = [f"class_{i}" for i in range(10)]
PAD_BYTES = 24 * 1024 * 1024  # large enough to interrupt an upload at a chosen offset


# ------------------------------------------------------------------ fixtures

class Board:
    """An sshd plus the client-side files a user would have (key, known_hosts, empty ssh config)."""

    def __init__(self, base: Path, key: Path, name: str = "board"):
        self.base = base
        self.key = key
        self.server = sshd_helper.Sshd(base / name, key)
        self.known_hosts = base / f"{name}_known_hosts"
        self.ssh_config = base / "ssh_config"
        self.ssh_config.touch()
        self.root = base / f"{name}_root"

    def start(self, trusted: bool = True) -> Board:
        self.server.start()
        self.known_hosts.write_text(self.server.host_key_line if trusted else "")
        return self

    @property
    def target(self) -> str:
        return self.server.target

    def options(self, root: Path | str | None = None, known_hosts: Path | None = None) -> list[str]:
        return ["--key", str(self.key), "--known-hosts", str(known_hosts or self.known_hosts),
                "--ssh-config", str(self.ssh_config), "--remote-python", sys.executable,
                "--remote-root", str(root or self.root)]

    def model_dir(self, name: str, root: Path | None = None) -> Path:
        return Path(root or self.root) / "models" / name

    def current(self, name: str) -> str | None:
        link = self.model_dir(name) / "current"
        return os.readlink(link) if link.is_symlink() else None


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> Path:
    return sshd_helper.keygen(tmp_path_factory.mktemp("client") / "id_ed25519")


@pytest.fixture(scope="module")
def board(tmp_path_factory, keys):
    instance = Board(tmp_path_factory.mktemp("board"), keys).start()
    yield instance
    instance.server.stop()


@pytest.fixture(scope="module")
def compiled_lookalike(artifact, tmp_path_factory) -> Path:
    """The tiny model with its ops replaced by one `edgetpu-custom-op`, as edgetpu_compiler lays out
    a fully mapped model (the payload is opaque bytes: nothing here can execute it), under a name
    that does not say "edgetpu": only the file tells."""
    from tensorflow.lite.python import schema_py_generated as schema

    import flatbuffers

    model = schema.ModelT.InitFromPackedBuf(artifact.read_bytes(), 0)
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    code.customCode = "edgetpu-custom-op"
    code.version = 1
    model.operatorCodes.append(code)
    graph = model.subgraphs[0]
    op = schema.OperatorT()
    op.opcodeIndex = len(model.operatorCodes) - 1
    op.inputs, op.outputs = list(graph.inputs), list(graph.outputs)
    op.customOptions = list(b"\x01" * 256)
    graph.operators = [op]
    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path = tmp_path_factory.mktemp("compiled") / "tiny_compiled.tflite"
    path.write_bytes(bytes(builder.Output()))
    return path


@pytest.fixture(scope="module")
def artifact(keras_file, tmp_path_factory) -> Path:
    """A converted TFLite with its manifest and labels, as `edgekit convert` writes it."""
    from edgekit.convert import ConvertRequest, convert

    out = tmp_path_factory.mktemp("artifact")
    labels = out / "labels.txt"
    labels.write_text("\n".join(LABELS) + "\n")
    result = convert(str(keras_file), ConvertRequest(targets=["tflite"], precisions=["fp32"], out_dir=out / "out",
                                                            mean=[127.5], std=[127.5], task="classification",
                                                            labels=labels, verify=False, name="tiny"))
    return Path(result.artifacts[0].path)


def cli(*args) -> tuple[int, str, str]:
    """The real CLI in a child process (it is killed in some tests)."""
    proc = subprocess.run([sys.executable, "-m", "edgekit", *map(str, args)], capture_output=True, text=True, timeout=180)
    return proc.returncode, proc.stdout, proc.stderr


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def verify_on_disk(version_dir: Path) -> dict[str, str]:
    """Hash every file in a deployed version ourselves and compare with its SHA256SUMS."""
    sums = {}
    for line in (version_dir / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ", 1)
        sums[name] = digest
    on_disk = sorted(p.name for p in version_dir.iterdir() if p.name != "SHA256SUMS")
    assert on_disk == sorted(sums)
    for name, digest in sums.items():
        assert sha256(version_dir / name) == digest, name
    return sums


def wait_unlocked(model_dir: Path, timeout: float = 20) -> None:
    """Wait until no device-side deploy holds the model's lock (a receiver may still be exiting)."""
    deadline = time.monotonic() + timeout
    with open(model_dir / ".lock", "a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(handle, fcntl.LOCK_UN)
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("a device-side deploy is still holding the lock")
                time.sleep(0.05)


# ------------------------------------------------------------------ deploy, verify, bench, run

def test_deploy_verifies_checksums_and_remote_bench_runs_the_model(board, artifact):
    code, out, err = cli("deploy", artifact, "--host", board.target, *board.options(), "--json")
    assert code == 0, err
    report = json.loads(out)
    result = report["results"][0]
    assert result["status"] == "ok" and result["verified"] is True and result["error"] is None
    version = result["version"]
    assert board.current("tiny_fp32") == version

    sums = verify_on_disk(board.model_dir("tiny_fp32") / version)
    assert sums["tiny_fp32.tflite"] == sha256(artifact)
    assert sums["tiny_fp32.tflite.edgekit.json"] == sha256(artifact.with_name("tiny_fp32.tflite.edgekit.json"))
    assert set(sums) == {"tiny_fp32.tflite", "tiny_fp32.tflite.edgekit.json", "labels.txt", "edgekit_runner.py", "stats.py",
                         "frames.py", "parity.py", "bundle.json"}
    for vendored in ("bench/stats.py", "frames.py", "parity.py"):   # verbatim copies of edgekit's own modules
        bundled = board.model_dir("tiny_fp32") / version / Path(vendored).name
        assert bundled.read_bytes() == (Path(__file__).parents[1] / "edgekit" / vendored).read_bytes()
    assert (board.model_dir("tiny_fp32") / version / "labels.txt").read_text().split() == LABELS

    code, out, err = cli("remote", "bench", board.target, *board.options(), "--runs", 7, "--warmup", 2, "--json")
    assert code == 0, err
    bench = json.loads(out)
    record = bench["results"][0]
    assert record["status"] == "ok" and record["backend"] == "litert" and record["artifact"] == "tiny_fp32.tflite"
    assert record["runs"] == 7 and len(record["samples_ms"]) == 7 and record["latency_ms"]["runs"] == 7
    assert 0 < record["latency_ms"]["min"] <= record["latency_ms"]["p50"] <= record["latency_ms"]["max"]
    assert record["fps"] == pytest.approx(1000.0 / record["latency_ms"]["p50"])
    assert record["load_ms"] > 0 and record["size_bytes"] == artifact.stat().st_size
    assert bench["host"]["python_executable"] == sys.executable
    assert bench["bundle"]["version"] == version
    from edgekit.bench import harness  # the local bench's record: remote bench must have the same shape

    assert set(record) == {f.name for f in dataclasses.fields(harness.BenchRecord)}
    assert set(bench) >= {"schema_version", "host", "options", "results"}
    assert not (board.model_dir("tiny_fp32") / version / "__pycache__").exists()  # running it changed nothing

    code, out, err = cli("remote", "run", board.target, *board.options(), "--source", "synthetic", "--frames", 3,
                         "--jsonl")
    assert code == 0, err
    frames = [json.loads(line) for line in out.splitlines()]
    assert [f["frame_id"] for f in frames] == [0, 1, 2]
    from edgekit.frames import FrameRecord   # the keys `edgekit run --jsonl` writes on the host

    assert all(list(f) == list(FrameRecord.KEYS) and f["file"] is None and f["stream_ms"] is None for f in frames)
    assert all(f["results"]["classes"][0]["label"] in LABELS and f["latency_ms"] >= f["infer_ms"] > 0 for f in frames)
    assert all(sum(c["score"] for c in f["results"]["classes"]) <= 1.0 + 1e-6 for f in frames)  # probabilities

    code, out, err = cli("remote", "bench", board.target, *board.options(), "--runs", 3)
    assert code == 0 and "tiny_fp32.tflite" in out and "litert/cpu" in out   # `edgekit bench`'s own table
    from edgekit.views.bench import COLUMNS

    header = next(line for line in out.splitlines() if "artifact" in line)
    assert [c.strip() for c in header.strip("┃│ ").split("┃")] == [c for c in COLUMNS if c.split()[0] in header]


def test_remote_run_reads_an_image_folder_on_the_board(board, artifact, photos_dir):
    code, _, err = cli("deploy", artifact, "--host", board.target, *board.options(), "--name", "photos", "--json")
    assert code == 0, err
    code, out, err = cli("remote", "run", board.target, *board.options(), "--name", "photos", "--source", photos_dir,
                         "--frames", 4, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert len(data["frames"]) == 4
    assert [f["file"] for f in data["frames"]] == [str(p) for p in sorted(photos_dir.iterdir())[:4]]
    assert all(f["latency_ms"] is None and f["infer_ms"] > 0 for f in data["frames"])   # a folder: no e2e latency

    # the same result in the same schema on the host: `edgekit run --jsonl` on the same photos
    code, out, err = cli("remote", "run", board.target, *board.options(), "--name", "photos", "--source", photos_dir,
                         "--frames", 4, "--jsonl")
    assert code == 0, err
    on_board = [json.loads(line) for line in out.splitlines()]
    here = subprocess.run([sys.executable, "-m", "edgekit", "run", str(artifact), "--source", str(photos_dir),
                           "--max-frames", "4", "--jsonl", "-"], capture_output=True, text=True, timeout=120)
    assert here.returncode == 0, here.stderr
    on_host = [json.loads(line) for line in here.stdout.splitlines() if line.startswith("{")]
    assert [list(f) for f in on_board] == [list(f) for f in on_host]
    assert [f["file"] for f in on_board] == [f["file"] for f in on_host]
    for board_frame, host_frame in zip(on_board, on_host):
        assert list(board_frame["results"]) == list(host_frame["results"])
        assert [c["label"] for c in board_frame["results"]["classes"]] == [c["label"] for c in host_frame["results"]["classes"]]
        np.testing.assert_allclose([c["score"] for c in board_frame["results"]["classes"]],
                                   [c["score"] for c in host_frame["results"]["classes"]], atol=1e-5)


def test_remote_bench_flags_slowness_with_its_likely_cause(board, artifact, stream_model, tmp_path):
    """Two models benched on the board in one report; a profile whose reference the board misses
    by far more than 10x flags it, naming the board's runtime; an int8 model slower than the fp32
    one of the same name is flagged exactly when the board measured it so."""
    for model, name in ((artifact, "slow_fp32"), (stream_model, "slow_int8")):
        code, _, err = cli("deploy", model, "--host", board.target, *board.options(), "--name", name, "--json")
        assert code == 0, err
    profile = tmp_path / "my-board.yaml"
    profile.write_text(
        "name: my-board\ntitle: a board far faster than any\nruntime: LiteRT\nbackend: litert\ndevice: null\n"
        "precisions: [fp32, int8]\nconstraints: []\ndetect: {}\nreferences:\n"
        "  - model: tiny\n    latency_ms: 0.00001\n    source: https://example.org/my-board\n    match: [tiny]\n")
    code, out, err = cli("remote", "bench", board.target, *board.options(), "--name", "slow_fp32", "--name",
                         "slow_int8", "--runs", 5, "--profile", profile, "--json")
    assert code == 0, err
    report = json.loads(out)
    by_precision = {r["precision"]: r for r in report["results"]}
    assert sorted(by_precision) == ["fp32", "int8"]
    runtime = f"{report['host']['runtime']} {report['host']['runtime_version']}"
    slow = [f for f in report["flags"] if "the my-board reference" in f]
    assert [f.split(":")[0] for f in slow] == ["tiny_fp32.tflite", "tiny_int8.tflite"]
    assert all(f"likely cause: the XNNPACK delegate missing from the board's TFLite runtime ({runtime})" in f
               for f in slow)
    int8_slower = by_precision["int8"]["latency_ms"]["p50"] > by_precision["fp32"]["latency_ms"]["p50"]
    assert any("is slower than fp32" in f for f in report["flags"]) == int8_slower
    assert [line for line in err.splitlines() if line.startswith("warning: ")] == [
        f"warning: {f}" for f in report["flags"]]
    code, _, err = cli("remote", "bench", board.target, *board.options(), "--profile", "no-such-board")
    assert code == 2 and "no-such-board" in err and len(err.strip().splitlines()) == 1


def test_second_version_then_rollback_restores_the_first(board, artifact, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("first\n")
    code, out, err = cli("deploy", artifact, "--host", board.target, *board.options(), "--name", "rb", "--include", notes,
                         "--json")
    assert code == 0, err
    first = json.loads(out)["version"]
    time.sleep(1.1)  # versions carry a one-second timestamp
    notes.write_text("second\n")
    code, out, err = cli("deploy", artifact, "--host", board.target, *board.options(), "--name", "rb", "--include", notes,
                         "--json")
    assert code == 0, err
    second = json.loads(out)["version"]
    assert second != first and board.current("rb") == second
    assert (board.model_dir("rb") / "current" / "notes.txt").read_text() == "second\n"

    code, out, err = cli("rollback", board.target, *board.options(), "--name", "rb", "--json")
    assert code == 0, err
    result = json.loads(out)["results"][0]
    assert (result["version"], result["previous"], result["status"]) == (first, second, "ok")
    assert board.current("rb") == first
    assert (board.model_dir("rb") / "current" / "notes.txt").read_text() == "first\n"
    verify_on_disk(board.model_dir("rb") / first)

    code, out, err = cli("rollback", board.target, *board.options(), "--name", "rb")  # again: back to the newer one
    assert code == 0, err
    assert board.current("rb") == second

    notes.write_text("third\n")  # a third version with --keep 2: the oldest goes, current and previous stay
    code, out, err = cli("deploy", artifact, "--host", board.target, *board.options(), "--name", "rb", "--include", notes,
                         "--keep", 2, "--json")
    assert code == 0, err
    third = json.loads(out)["version"]
    kept = sorted(p.name for p in board.model_dir("rb").iterdir() if not p.name.startswith("."))
    assert kept == sorted([second, third, "current", "previous"])
    assert os.readlink(board.model_dir("rb") / "previous") == second


def test_identical_content_is_no_new_version_and_remote_status_lists_versions(board, artifact, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("one\n")
    options = [*board.options(), "--name", "same", "--include", notes, "--json"]
    code, out, err = cli("deploy", artifact, "--host", board.target, *options)
    assert code == 0, err
    first = json.loads(out)["version"]
    time.sleep(1.1)   # versions carry a one-second timestamp: a new one would differ
    notes.write_text("two\n")
    code, out, err = cli("deploy", artifact, "--host", board.target, *options)
    assert code == 0, err
    second = json.loads(out)["version"]
    for _ in range(2):   # the same content again: nothing uploaded, no version made, `previous` stays the real one
        time.sleep(1.1)
        code, out, err = cli("deploy", artifact, "--host", board.target, *options)
        assert code == 0, err
        result = json.loads(out)["results"][0]
        assert (result["status"], result["unchanged"], result["version"], result["bytes"]) == ("ok", True, second, 0)
        assert result["previous"] == first and result["verified"]
    kept = sorted(p.name for p in board.model_dir("same").iterdir() if not p.name.startswith("."))
    assert kept == sorted([first, second, "current", "previous"])
    assert board.current("same") == second and os.readlink(board.model_dir("same") / "previous") == first
    code, out, err = cli("deploy", artifact, "--host", board.target, *options[:-1])
    assert code == 0 and "unchanged: this content is already current" in out

    code, out, err = cli("remote", "status", board.target, *board.options(), "--name", "same", "--json")
    assert code == 0, err
    rows = json.loads(out)["versions"]
    assert [(r["version"], r["state"]) for r in rows] == [(second, "current"), (first, "previous")]
    for row in rows:
        version_dir = board.model_dir("same") / row["version"]
        info = json.loads((version_dir / "bundle.json").read_text())
        assert row["created"] == info["created"] and row["content_sha256"] == info["content_sha256"]
        assert row["model"] == "tiny_fp32.tflite" and row["model_sha256"] == sha256(artifact)
        assert row["size_bytes"] == sum(f.stat().st_size for f in version_dir.iterdir())
    code, out, err = cli("remote", "status", board.target, *board.options(), "--name", "same")
    assert code == 0 and second in out and "current" in out and "previous" in out and sha256(artifact)[:16] in out
    code, _, err = cli("remote", "status", board.target, *board.options(), "--name", "ghost")
    assert code == 2 and "no model named 'ghost' is deployed" in err


def test_old_option_spellings_still_work_and_warn(board, artifact):
    code, out, err = cli("deploy", artifact, "--to", board.target, *board.options(), "--name", "alias")
    assert code == 0, err
    assert "warning: deploy --to is deprecated here and will be removed in the next release; use --host" in err
    code, out, err = cli("rollback", board.target, *board.options(), "--name", "alias", "--to", "nope")
    assert code == 2 and "rollback --to is deprecated" in err and "version 'nope' is not on the device" in err
    code, _, err = cli("rollback", board.target, *board.options(), "--name", "alias", "--to", "a", "--version", "b")
    assert code == 2 and "--version and --to both given" in err
    code, _, err = cli("deploy", artifact, *board.options())
    assert code == 2 and "no hosts given" in err and "--host" in err


def test_rollback_with_nothing_to_return_to_is_refused(board, artifact):
    code, _, err = cli("deploy", artifact, "--host", board.target, *board.options(), "--name", "solo")
    assert code == 0, err
    code, _, err = cli("rollback", board.target, *board.options(), "--name", "solo")
    assert code == 2 and "nothing to roll back to" in err
    code, _, err = cli("rollback", board.target, *board.options(), "--name", "solo", "--version", "nope")
    assert code == 2 and "version 'nope' is not on the device" in err
    code, _, err = cli("remote", "bench", board.target, *board.options(), "--name", "ghost")
    assert code == 2 and "no deployed bundle at" in err and "edgekit deploy MODEL --to HOST" in err
    code, _, err = cli("remote", "bench", board.target, *board.options())  # several models: which one?
    assert code == 2 and "has several models deployed" in err and "--name" in err


# ------------------------------------------------------------------ host keys

def host_fingerprint(board: Board) -> str:
    """The board's host key fingerprint, as its owner reads it on the board itself."""
    out = subprocess.run(["ssh-keygen", "-lf", str(board.server.dir / "host_key.pub")], capture_output=True, text=True,
                         check=True).stdout.split()
    return f"{out[-1].strip('()')} {out[1]}"   # "ED25519 SHA256:..."


def test_unknown_and_changed_host_keys_are_refused(tmp_path, keys, artifact):
    board = Board(tmp_path, keys).start(trusted=False)
    try:
        fingerprint = host_fingerprint(board)
        code, _, err = cli("deploy", artifact, "--host", board.target, *board.options())
        assert code == 2
        assert (f"unknown host key (first contact: it offers {fingerprint}); refusing to connect. check that "
                "fingerprint on the board") in err and "--trust-new-host" in err
        assert len(err.strip().splitlines()) == 1 and not board.root.exists()

        code, _, err = cli("deploy", artifact, "--host", board.target, *board.options(), "--trust-new-host")
        assert code == 0, err
        assert board.known_hosts.read_text().startswith(f"[127.0.0.1]:{board.server.port} ssh-ed25519 ")
        # first contact: the user is shown the fingerprint that was recorded, to check against the board's
        warnings = [line for line in err.splitlines() if not line.startswith("progress: ")]
        assert warnings == [f"warning: first contact with {board.target}: recorded its host key {fingerprint}. "
                            "Check it is the board's own (on the board: ssh-keygen -lf "
                            "/etc/ssh/ssh_host_ed25519_key.pub); a changed key will be refused from now on"]
        recorded = board.known_hosts.read_text()
        code, _, err = cli("deploy", artifact, "--host", board.target, *board.options(), "--trust-new-host",
                           "--name", "again")
        assert code == 0 and "first contact" not in err   # known now: nothing to check

        board.server.stop()  # the board is re-flashed (or impersonated): same address, another host key
        board.server.new_host_key()
        board.server.start()
        for extra in ((), ("--trust-new-host",)):
            code, _, err = cli("deploy", artifact, "--host", board.target, *board.options(), *extra)
            assert code == 2
            assert "the host key has CHANGED" in err and "ssh-keygen -R" in err and len(err.strip().splitlines()) == 1
            assert board.known_hosts.read_text() == recorded
        entries = sorted(p.name for p in board.model_dir("tiny_fp32").iterdir())
        # one version and its deploy history, nothing more
        assert len(entries) == 4 and entries[:2] == [".history.jsonl", ".lock"] and entries[3] == "current"
    finally:
        board.server.stop()


# ------------------------------------------------------------------ interrupted uploads

def _incoming_bytes(model_dir: Path, ignore: set[Path] = frozenset()) -> int:
    """Bytes received so far by uploads in progress (not counting `ignore`: stale ones)."""
    total = 0
    for folder in set(model_dir.glob(".incoming-*")) - set(ignore):
        for file in folder.glob("*"):
            try:
                total += file.stat().st_size
            except FileNotFoundError:
                pass
    return total


def _receiver_pids(root: Path) -> list[int]:
    import psutil

    pids = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "receive" in cmdline and str(root) in cmdline:
            pids.append(proc.pid)
    return pids


def test_connection_killed_mid_upload_keeps_the_previous_version(board, artifact, tmp_path):
    import psutil

    pad = tmp_path / "pad.bin"
    pad.write_bytes(os.urandom(PAD_BYTES))
    root = tmp_path / "root"
    options = board.options(root=root)
    code, out, err = cli("deploy", artifact, "--host", board.target, *options, "--name", "kill", "--json")
    assert code == 0, err
    first = json.loads(out)["version"]
    model_dir = board.model_dir("kill", root)
    before = {p.name: sha256(p) for p in (model_dir / first).iterdir()}

    rng = random.Random(6)
    modes = ("sshd session", "ssh client", "edgekit process", "device receiver")
    for attempt in range(10):
        mode = modes[attempt % len(modes)]
        offset = int(PAD_BYTES * rng.uniform(0.05, 0.8))
        stale = set(model_dir.glob(".incoming-*"))  # a killed receiver leaves its folder to the next deploy
        proc = subprocess.Popen([sys.executable, "-m", "edgekit", "deploy", str(artifact), "--host", board.target,
                                 *options, "--name", "kill", "--include", str(pad), "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + 60
        while _incoming_bytes(model_dir, stale) < offset:
            assert proc.poll() is None, f"deploy ended before the kill at {offset} bytes: {proc.communicate()}"
            assert time.monotonic() < deadline, "the upload never reached the kill offset"
            time.sleep(0.002)
        if mode == "sshd session":
            victims = board.server.session_pids()
        elif mode == "ssh client":
            victims = [c.pid for c in psutil.Process(proc.pid).children(recursive=True) if c.name() == "ssh"]
        elif mode == "edgekit process":
            victims = [proc.pid]
        else:
            victims = _receiver_pids(root)
        assert victims, mode
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        proc.communicate(timeout=60)
        assert proc.returncode != 0, f"attempt {attempt} ({mode}) reported success"
        wait_unlocked(model_dir)

        assert os.readlink(model_dir / "current") == first, f"attempt {attempt} ({mode})"
        assert {p.name: sha256(p) for p in (model_dir / first).iterdir()} == before
        assert sorted(p.name for p in model_dir.iterdir() if not p.name.startswith(".")) == sorted([first, "current"])

    code, out, err = cli("deploy", artifact, "--host", board.target, *options, "--name", "kill", "--include", pad,
                         "--json")
    assert code == 0, err  # the next deploy goes through and clears what the interrupted ones left
    assert not list(model_dir.glob(".incoming-*"))
    assert os.readlink(model_dir / "previous") == first


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)], ids=["SIGTERM", "SIGHUP"])
def test_deploy_stopped_by_signal_keeps_the_previous_version(board, artifact, tmp_path, signum, code):
    """systemd, docker stop or a closed terminal mid-upload: ssh is ended, the board keeps running
    the previous version, and edgekit exits 128 + the signal."""
    import psutil

    pad = tmp_path / "pad.bin"
    pad.write_bytes(os.urandom(PAD_BYTES))
    root = tmp_path / "root"
    options = board.options(root=root)
    code0, out, err = cli("deploy", artifact, "--host", board.target, *options, "--name", "term", "--json")
    assert code0 == 0, err
    first = json.loads(out)["version"]
    model_dir = board.model_dir("term", root)
    proc = subprocess.Popen([sys.executable, "-m", "edgekit", "deploy", str(artifact), "--host", board.target,
                             *options, "--name", "term", "--include", str(pad)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while _incoming_bytes(model_dir) < PAD_BYTES // 10:
        assert proc.poll() is None, f"deploy ended before the signal: {proc.communicate()}"
        assert time.monotonic() < deadline, "the upload never got going"
        time.sleep(0.002)
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert err.strip().splitlines()[-1] == (f"interrupted ({signal.Signals(signum).name}): no partial artifact was "
                                            "left behind") and "Traceback" not in err
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"ssh outlived edgekit: {alive}"
    wait_unlocked(model_dir)
    assert os.readlink(model_dir / "current") == first
    assert sorted(p.name for p in model_dir.iterdir() if not p.name.startswith(".")) == sorted([first, "current"])


# ------------------------------------------------------------------ fleets

def test_fleet_from_an_ansible_inventory_with_one_host_down(board, keys, artifact, tmp_path):
    second = Board(tmp_path, keys, "second").start()
    down = Board(tmp_path, keys, "down").start()
    down.server.stop()  # its port is known, nothing listens there
    known_hosts = tmp_path / "fleet_known_hosts"
    known_hosts.write_text(board.server.host_key_line + second.server.host_key_line + down.server.host_key_line)
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(f"""
all:
  vars:
    ansible_user: {board.server.user}
  children:
    coral:
      hosts:
        coral-a: {{ansible_host: 127.0.0.1, ansible_port: {board.server.port}, edgekit_remote_root: {tmp_path}/a}}
        coral-b: {{ansible_host: 127.0.0.1, ansible_port: {second.server.port}, edgekit_remote_root: {tmp_path}/b}}
    spare:
      hosts:
        coral-c: {{ansible_host: 127.0.0.1, ansible_port: {down.server.port}, edgekit_remote_root: {tmp_path}/c}}
""")
    try:
        code, out, err = cli("deploy", artifact, "--host", f"@{inventory}", *board.options(known_hosts=known_hosts),
                             "--parallel", 3, "--json")
        assert code == 1   # partial failure: 0 all ok, 1 some failed, 2 bad input or nothing done
        report = json.loads(out)
        rows = {r["host"]: r for r in report["results"]}
        assert list(rows) == ["coral-a", "coral-b", "coral-c"]
        assert (report["ok"], report["failed"]) == (2, 1)
        for name, root in (("coral-a", "a"), ("coral-b", "b")):
            assert rows[name]["status"] == "ok" and rows[name]["verified"] and rows[name]["version"] == report["version"]
            verify_on_disk(tmp_path / root / "models" / "tiny_fp32" / report["version"])
        assert rows["coral-c"]["status"] == "failed" and not rows["coral-c"]["verified"]
        assert "connection refused" in rows["coral-c"]["error"]
        assert not (tmp_path / "c").exists()
        assert "deploy failed on 1 of 3 hosts (coral-c)" in err

        hosts = tmp_path / "fleet.txt"  # the same fleet as a plain host list with comments
        hosts.write_text(f"# boards\n{board.target}   # bench\n\n{second.target}\n127.0.0.1:{down.server.port}\n")
        code, out, err = cli("deploy", artifact, "--host", f"@{hosts}", *board.options(known_hosts=known_hosts),
                             "--remote-root", tmp_path / "plain", "--parallel", 1)
        # the two live "boards" share one disk here: run one at a time so they do not race for the same folder
        assert code == 1
        table = out.splitlines()
        assert sum("ok" in line and "yes" in line for line in table) == 2
        assert sum("failed" in line and "connection refused" in line for line in table) == 1
        assert "sha256 verified" in out
    finally:
        second.server.stop()


# ------------------------------------------------------------------ injection

HOSTILE = "x; touch pwned-a $(touch pwned-b) `touch pwned-c` 'q\" && touch pwned-d"


def _pwned(*folders: Path) -> list[Path]:
    return [p for folder in folders for p in folder.glob("pwned-*")]


def test_hostile_names_cannot_inject_shell_commands(board, artifact, tmp_path):
    home = Path(os.path.expanduser("~"))
    hostile_dir = tmp_path / "in"
    hostile_dir.mkdir()
    model = hostile_dir / f"{HOSTILE}.tflite"
    shutil.copy(artifact, model)
    shutil.copy(artifact.with_name(artifact.name + ".edgekit.json"), hostile_dir / f"{model.name}.edgekit.json")
    root = tmp_path / "r; touch pwned-e $(touch pwned-f)"
    options = board.options(root=root)
    try:
        code, out, err = cli("deploy", model, "--host", board.target, *options, "--json")
        assert code == 0, err
        version = json.loads(out)["version"]
        deployed = root / "models" / HOSTILE / version
        verify_on_disk(deployed)
        assert (deployed / model.name).read_bytes() == artifact.read_bytes()

        code, out, err = cli("deploy", artifact, "--host", board.target, *options, "--name", "$(id)", "--json")
        assert code == 0, err
        assert (root / "models" / "$(id)" / "current").is_symlink()

        code, out, err = cli("remote", "bench", board.target, *options, "--name", HOSTILE, "--runs", 2, "--json")
        assert code == 0, err
        assert json.loads(out)["results"][0]["artifact"] == model.name
        code, out, err = cli("rollback", board.target, *options, "--name", "$(id)")
        assert code == 2 and "nothing to roll back to" in err
    finally:
        found = _pwned(home, tmp_path, Path.cwd(), Path("/tmp"))
        for path in found:
            path.unlink()
    assert not found, f"a shell ran an injected command: {found}"


def test_model_names_that_are_paths_are_refused(board, artifact):
    code, _, err = cli("deploy", artifact, "--host", board.target, *board.options(), "--name", "../../etc")
    assert code == 2 and "invalid model name '../../etc'" in err
    code, _, err = cli("deploy", artifact, "--host", "-oProxyCommand=touch_pwned", *board.options())
    assert code == 2 and "is not a host" in err


# ------------------------------------------------------------------ device checks

def test_device_checks_name_the_fix(board, artifact, compiled_lookalike, tmp_path):
    bare = tmp_path / "bare"  # a Python without numpy or a TFLite runtime, like a fresh board
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    options = board.options(root=tmp_path / "root")
    code, _, err = cli("deploy", artifact, "--host", board.target, *options, "--remote-python", bare / "bin" / "python")
    assert code == 2 and "numpy is not installed" in err and "pip3 install numpy" in err
    assert not (tmp_path / "root" / "models" / "tiny_fp32").exists() or not list((tmp_path / "root" / "models" / "tiny_fp32").glob("2*"))

    code, _, err = cli("deploy", artifact, "--host", board.target, *options, "--remote-python", tmp_path / "no-python")
    assert code == 2 and "was not found on the device" in err and "--remote-python" in err

    code, _, err = cli("deploy", compiled_lookalike, "--host", board.target, *options)   # the board has no libedgetpu
    assert code == 2 and "libedgetpu is not installed" in err and "libedgetpu1-std" in err

    code, _, err = cli("deploy", artifact, "--host", board.target, *options, "--name", "web")
    assert code == 0, err
    code, out, err = cli("remote", "run", board.target, *options, "--name", "web", "--serve", "0.0.0.0:8080",
                         "--remote-python", bare / "bin" / "python")  # a board without edgekit
    assert code == 2 and "the web view needs edgekit on the device" in err and "--jsonl" in err


def test_profile_and_option_refusals(artifact, compiled_lookalike, run_cli, tmp_path):
    code, _, err = run_cli("deploy", artifact, "--host", "mendel@coral.local", "--profile", "coral-dev-board")
    assert code == 2 and "is not compiled for the Edge TPU" in err
    # the name says compiled, the file does not: the file decides
    named = tmp_path / "tiny_int8_edgetpu.tflite"
    shutil.copy(artifact, named)
    code, _, err = run_cli("deploy", named, "--host", "mendel@coral.local", "--profile", "coral-dev-board")
    assert code == 2 and err.strip().splitlines()[-1] == (
        "error: profile 'coral-dev-board' runs Edge TPU models, and tiny_int8_edgetpu.tflite is not compiled for "
        "the Edge TPU (it has no edgetpu-custom-op; it would run on the board's CPU). compile it first: edgekit "
        f"edgetpu compile {named} (writes *_edgetpu.tflite), or pass --allow-cpu to deploy it as a CPU model")
    code, _, err = run_cli("deploy", compiled_lookalike, "--host", "mendel@coral.local", "--profile", "intel-cpu")
    assert code == 2 and "is compiled for the Edge TPU, and profile 'intel-cpu' has no Edge TPU" in err
    code, _, err = run_cli("deploy", artifact, "--host", "mendel@coral.local", "--allow-cpu")
    assert code == 2 and "--allow-cpu applies only with an Edge TPU --profile" in err
    code, _, err = run_cli("deploy", artifact, "--host", "mendel@coral.local", "--profile", "coral-devboard")
    assert code == 2 and "did you mean 'coral-dev-board'" in err
    code, _, err = run_cli("deploy", artifact, "--host", "mendel@coral.local", "--ssh-option", "StrictHostKeyChecking=no")
    assert code == 2 and "is not allowed" in err


def test_runner_stays_python37_compatible():
    """Mendel Linux on the Coral Dev Board ships Python 3.7: the runner must parse there."""
    import ast
    import re

    from edgekit.deploy.bundle import PARITY, RUNNER, STATS

    for source in (RUNNER, STATS, PARITY):
        tree = ast.parse(source.read_text(), feature_version=(3, 7))
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        assert "edgekit" not in imported, source
    assert not re.search(r"removeprefix|removesuffix|:=", RUNNER.read_text())  # 3.8+/3.9+ only


def _facts(**overrides) -> dict:
    facts = {"python_ok": True, "python": "3.11.7", "packages": {"numpy": "1.26.4"}, "runtime": "ai_edge_litert",
             "libedgetpu": {"runtime_version": 13}, "free_bytes": 10 << 30, "root": "/home/mendel/.edgekit",
             "python_executable": "/usr/bin/python3"}
    facts.update(overrides)
    return facts


def test_device_check_rules(artifact, compiled_lookalike, tmp_path):
    """The probe's answers from boards we cannot start here: old libedgetpu, full disk, old Python."""
    from dataclasses import asdict

    from edgekit.deploy.bundle import build_bundle
    from edgekit.deploy.hosts import parse_host
    from edgekit.deploy.remote import Device
    from edgekit.deploy.ssh import SshOptions
    from edgekit.edgetpu.report import EdgeTPUReport
    from edgekit.manifest import EdgeTPUCompiled, EdgeTPUInfo

    edgetpu = tmp_path / "tiny_edgetpu.tflite"
    shutil.copy(compiled_lookalike, edgetpu)
    manifest = json.loads(artifact.with_name(artifact.name + ".edgekit.json").read_text())
    manifest["target"] = "edgetpu"
    manifest["artifact_sha256"] = sha256(edgetpu)
    compiled = EdgeTPUCompiled(artifact=edgetpu.name, compiler="edgetpu_compiler", compiler_version="16.0.384591198",
                               min_runtime_version=14, report=EdgeTPUReport("compiler", edgetpu.name))
    manifest["edgetpu"] = asdict(EdgeTPUInfo(predicted=EdgeTPUReport("predicted", artifact.name), compiled=compiled))
    (tmp_path / "tiny_edgetpu.tflite.edgekit.json").write_text(json.dumps(manifest))
    bundle = build_bundle(edgetpu)
    assert bundle.edgetpu and bundle.min_runtime_version == 14
    device = Device(parse_host("mendel@coral.local"), SshOptions())
    with pytest.raises(EdgekitError, match=r"needs Edge TPU runtime 14\+, the device's libedgetpu is runtime 13.*"
                                           r"edgetpu_compiler -m 13"):
        device.check(bundle, _facts())
    device.check(bundle, _facts(libedgetpu={"runtime_version": 14}))
    with pytest.raises(EdgekitError, match=r"only 1\.0 MiB free under /home/mendel/.edgekit.*--remote-root"):
        device.check(bundle, _facts(free_bytes=1 << 20, libedgetpu={"runtime_version": 14}))
    with pytest.raises(EdgekitError, match=r"Python 3\.5\.3 is too old .*--remote-python"):
        device.check(bundle, _facts(python_ok=False, python="3.5.3"))
    with pytest.raises(EdgekitError, match=r"no TFLite runtime .*pip3 install ai-edge-litert"):
        device.check(bundle, _facts(runtime=None))


# ------------------------------------------------------------------ targets and inventories (no ssh)

def test_parse_hosts():
    from edgekit.deploy.hosts import parse_host

    assert parse_host("mendel@coral.local") == parse_host("ssh://mendel@coral.local")
    host = parse_host("pi@10.0.0.7:2222")
    assert (host.user, host.host, host.port, host.label) == ("pi", "10.0.0.7", 2222, "pi@10.0.0.7:2222")
    host = parse_host("[fe80::1%eth0]:22")
    assert (host.host, host.port) == ("fe80::1%eth0", 22)
    for bad in ("", "a b", "-oProxyCommand=x", "x;id", "pi@host:99999", "p i@host"):
        with pytest.raises(EdgekitError, match="is not a host|invalid port"):
            parse_host(bad)


def test_ini_inventory_with_groups_and_vars(tmp_path):
    from edgekit.deploy.hosts import parse_targets

    inventory = tmp_path / "hosts.ini"
    inventory.write_text("""
# Coral fleet
[coral]
coral-a ansible_host=10.0.0.5 ansible_port=2222
coral-b ansible_host=10.0.0.6 ansible_user=root ansible_python_interpreter=/usr/bin/python3.7
mendel@10.0.0.9

[coral:vars]
ansible_user="mendel"

[pis]
pi4 ansible_host=10.0.1.4 ansible_ssh_private_key_file=~/.ssh/pi

[boards:children]
coral
pis

[boards:vars]
ansible_port=22
""")
    hosts = {h.label: h for h in parse_targets([f"@{inventory}"])}
    assert list(hosts) == ["coral-a", "coral-b", "mendel@10.0.0.9:22", "pi4"]
    assert (hosts["coral-a"].destination, hosts["coral-a"].port) == ("mendel@10.0.0.5", 2222)
    assert (hosts["coral-b"].destination, hosts["coral-b"].python) == ("root@10.0.0.6", "/usr/bin/python3.7")
    assert (hosts["pi4"].destination, hosts["pi4"].key, hosts["pi4"].port) == ("10.0.1.4", "~/.ssh/pi", 22)


def test_targets_from_lists_files_and_errors(tmp_path):
    from edgekit.deploy.hosts import parse_targets

    listing = tmp_path / "fleet.txt"
    listing.write_text("# lab\nmendel@a.local\n\nmendel@b.local:2200  # spare\n")
    hosts = parse_targets(["pi@c,pi@d", f"@{listing}", "pi@c"])
    assert [h.label for h in hosts] == ["pi@c", "pi@d", "mendel@a.local", "mendel@b.local:2200"]
    with pytest.raises(EdgekitError, match="host list .*missing.txt does not exist"):
        parse_targets([f"@{tmp_path / 'missing.txt'}"])
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    with pytest.raises(EdgekitError, match="lists no hosts"):
        parse_targets([f"@{empty}"])
    broken = tmp_path / "broken.yml"
    broken.write_text("all: [unclosed\n")
    with pytest.raises(EdgekitError, match="is not valid YAML"):
        parse_targets([f"@{broken}"])


def test_bundle_contents_and_refusals(artifact, tmp_path):
    from edgekit.deploy.bundle import build_bundle

    bundle = build_bundle(artifact)
    names = [f.name for f in bundle.files]
    assert names[-1] == "SHA256SUMS" and "bundle.json" in names
    sums = next(f for f in bundle.files if f.name == "SHA256SUMS").data.decode()
    assert sums.count("\n") == len(names) - 1
    saved = bundle.save(tmp_path / "bundles")
    verify_on_disk(saved)
    info = json.loads((saved / "bundle.json").read_text())
    assert (info["model"], info["version"], info["edgetpu"]) == ("tiny_fp32.tflite", bundle.version, False)
    openvino = tmp_path / "model.xml"
    openvino.write_text('<?xml version="1.0"?>\n<net name="m" version="11"></net>\n')
    with pytest.raises(EdgekitError, match="is a openvino model; edgekit deploy ships TFLite models.*--to tflite"):
        build_bundle(openvino)
    with pytest.raises(EdgekitError, match="invalid model name '.hidden'"):
        build_bundle(artifact, name=".hidden")


def test_remote_run_serve_starts_edgekit_run_on_the_board_and_stops_with_the_client(board, artifact):
    """--serve hands over to `edgekit run` on the board (edgekit is installed in the test "board"'s
    python): the page and its stats answer, and closing the client stops the board's process."""
    import signal
    import urllib.error
    import urllib.request

    code, _, err = cli("deploy", artifact, "--host", board.target, *board.options(), "--name", "served", "--json")
    assert code == 0, err
    port = sshd_helper.free_port()
    client = subprocess.Popen([sys.executable, "-m", "edgekit", "remote", "run", board.target, *board.options(),
                               "--name", "served", "--source", "synthetic", "--serve", f"127.0.0.1:{port}", "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(client.stdout.readline())
        assert first["url"].startswith(f"http://127.0.0.1:{port}/?token=")   # the board's page needs its token
        token = first["url"].split("token=")[1]
        stats = None
        deadline = time.monotonic() + 90       # the board's edgekit imports LiteRT and OpenCV first
        while time.monotonic() < deadline:
            try:
                page = urllib.request.urlopen(first["url"], timeout=5).read().decode()
                stats = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/stats?token={token}",
                                                          timeout=5).read())
                if stats.get("frames"):
                    break
            except OSError:
                pass
            time.sleep(0.5)
        assert stats and stats.get("frames"), (stats, client.poll())
        assert '"/stream.mjpg" + auth' in page
        with pytest.raises(urllib.error.HTTPError, match="401"):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5)
    finally:
        client.send_signal(signal.SIGINT)
        client.wait(timeout=30)
    deadline = time.monotonic() + 30           # stdin EOF on the board ends `edgekit run` there
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=2)
        except OSError:
            break
        time.sleep(0.5)
    else:
        raise AssertionError("edgekit run kept serving after the client went away")


def test_runner_names_the_package_by_its_pypi_name():
    """The board runner cannot import edgekit: its copy of the distribution name must match."""
    import ast

    from edgekit import DISTRIBUTION
    from edgekit.deploy.bundle import RUNNER

    tree = ast.parse(RUNNER.read_text())
    values = [node.value.value for node in tree.body if isinstance(node, ast.Assign)
              and any(getattr(t, "id", None) == "DISTRIBUTION" for t in node.targets)]
    assert values == [DISTRIBUTION] == ["edgekit-vision"]
