"""SIGTERM and SIGHUP are handled like Ctrl-C: a real signal to a real `python -m edgekit`.

systemd, `docker stop`, `timeout` and CI cancellation send SIGTERM to the main process only; a
closed terminal or ssh session sends SIGHUP. Either way outputs are finalized or removed, the
exit code is 128 + the signal (143, 129), and a staging directory left by a process that could
not clean up (SIGKILL) is removed by the next run into the same -o. `run` and `deploy` have their
signal tests beside their other tests (test_stream_outputs.py, test_deploy.py).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TIMEOUT = 180
STAGING = ".edgekit-staging-*"
pytest.importorskip("onnxruntime")


def start(*args, cwd: Path | None = None, env: dict | None = None) -> tuple[subprocess.Popen, Path]:
    """`python -m edgekit ARGS` with stderr in a file (a chatty converter never blocks on a pipe)."""
    log = Path(cwd or ".") / f"stderr-{time.monotonic_ns()}.txt"
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "edgekit", *map(str, args)], stdout=subprocess.PIPE,
                                stderr=err, stdin=subprocess.DEVNULL, text=True, cwd=cwd,
                                env={**os.environ, **(env or {})})
    return proc, log


def wait_until(condition, proc: subprocess.Popen, what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"edgekit ended (exit {proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.05)


def stop(proc: subprocess.Popen, signum: int) -> str:
    proc.send_signal(signum)
    try:
        out, _ = proc.communicate(timeout=TIMEOUT)
    finally:
        proc.kill()
        proc.wait()
    return out


def convert_args(onnx_file: Path, photos_dir: Path, out: Path) -> list:
    """ONNX to ONNX fp32 and int8 (ONNX Runtime calibration): seconds of work, no TensorFlow to wait for."""
    return ["convert", onnx_file, "--to", "onnx", "--precision", "fp32,int8", "--calib", photos_dir,
            "--mean", "127.5", "--std", "127.5", "-o", out]


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)], ids=["SIGTERM", "SIGHUP"])
def test_convert_stopped_by_signal_leaves_no_staging_and_exits_128_plus_signal(onnx_file, photos_dir, tmp_path, signum,
                                                                               code):
    out = tmp_path / "out"
    proc, log = start(*convert_args(onnx_file, photos_dir, out), cwd=tmp_path)
    wait_until(lambda: list(out.glob(STAGING)), proc, "staging directory")
    stop(proc, signum)
    stderr = log.read_text()
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == (f"interrupted ({signal.Signals(signum).name}): no partial artifact "
                                               "was left behind")
    assert not list(out.glob(STAGING)) and not list(out.glob(".*"))
    for path in out.glob("*") if out.exists() else []:   # only complete artifacts, each with its manifest
        if path.name.endswith(".edgekit.ref.npz"):          # a reference pack: its artifact's manifest too
            assert path.with_name(path.name.removesuffix(".edgekit.ref.npz") + ".edgekit.json").is_file(), path
        elif not path.name.endswith(".edgekit.json"):
            assert path.with_name(path.name + ".edgekit.json").is_file(), path


def test_staging_left_by_a_killed_convert_is_removed_by_the_next_run(onnx_file, photos_dir, tmp_path):
    out = tmp_path / "out"
    proc, _ = start(*convert_args(onnx_file, photos_dir, out), cwd=tmp_path)
    wait_until(lambda: list(out.glob(STAGING + "/.owner")), proc, "staging directory with its owner")
    stop(proc, signal.SIGKILL)   # no handler runs: the staging stays, with the dead process's PID in it
    (stale,) = out.glob(STAGING)
    assert int((stale / ".owner").read_text().split()[0]) == proc.pid
    live = out / ".edgekit-staging-live"   # another run into the same -o, still going: this test's process
    live.mkdir()
    import psutil

    (live / ".owner").write_text(f"{os.getpid()} {psutil.Process().create_time():.2f}\n")
    reused = out / ".edgekit-staging-reused"   # a dead owner whose PID now belongs to another process
    reused.mkdir()
    (reused / ".owner").write_text(f"{os.getpid()} 12345.00\n")

    proc, log = start("convert", onnx_file, "--to", "onnx", "--mean", "127.5", "--std", "127.5", "--no-verify",
                      "-o", out, cwd=tmp_path)
    proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, log.read_text()
    assert not stale.exists() and not reused.exists()
    assert live.is_dir()
    assert (out / "tiny_fp32.onnx").is_file()


def test_bench_stopped_by_sigterm_writes_no_partial_report(stream_model, tmp_path):
    csv = tmp_path / "bench.csv"
    proc, log = start("bench", stream_model, "--duration", "120", "--csv", csv, cwd=tmp_path)
    # stderr is a file, not a terminal: the step lines say when measuring the model has run a second
    wait_until(lambda: f"progress: {Path(stream_model).name} started" in log.read_text(), proc, "the benchmark's start")
    time.sleep(1.0)
    stop(proc, signal.SIGTERM)
    stderr = log.read_text()
    assert proc.returncode == 143, stderr
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1].startswith("interrupted (SIGTERM)")
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("stderr-")) == []


def test_edgetpu_compile_stopped_by_sigterm_ends_the_compiler_and_leaves_nothing(stream_model, tmp_path):
    """The real edgetpu_compiler cannot be installed here (Coral's apt repository only); a
    stand-in that answers --version and then works for a minute, as the compiler does on a large
    model, shows what edgekit does with its child and its folders when SIGTERM comes."""
    compiler = tmp_path / "edgetpu_compiler"
    pid_file = tmp_path / "compiler.pid"
    compiler.write_text("#!/bin/sh\n"
                        "if [ \"$1\" = --version ]; then echo 'Edge TPU Compiler version 16.0.384591198'; exit 0; fi\n"
                        f"echo $$ > {pid_file}\nexec sleep 60\n")
    compiler.chmod(0o755)
    out = tmp_path / "compiled"
    proc, log = start("edgetpu", "compile", stream_model, "-o", out, cwd=tmp_path,
                      env={"EDGEKIT_EDGETPU_COMPILER": str(compiler)})
    wait_until(pid_file.exists, proc, "the compiler to start")
    wait_until(lambda: pid_file.read_text().strip(), proc, "the compiler's pid")
    stop(proc, signal.SIGTERM)
    stderr = log.read_text()
    assert proc.returncode == 143, stderr
    assert f"progress: edgetpu_compiler {stream_model.name} started" in stderr
    compiler_pid = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while _alive(compiler_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(compiler_pid), "the compiler outlived edgekit"
    assert not out.exists(), "an interrupted compile left its output folder"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:   # a zombie is dead for our purpose
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_files_are_created_with_the_users_umask(onnx_file, stream_model, tmp_path):
    """Manifests, artifacts, JSON lines, videos and bench reports get the umask's modes (0644 under
    umask 022, 0664 under 002), not mkstemp's 0600: a CI step or web server running as another user
    reads them."""
    pytest.importorskip("av")
    out = tmp_path / "out"
    env = {"PYTHONUNBUFFERED": "1"}
    script = ("import os, sys, runpy; os.umask(0o002); sys.argv = ['edgekit'] + sys.argv[1:]; "
              "runpy.run_module('edgekit', run_name='__main__')")

    def run(*args):
        done = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                              timeout=TIMEOUT, cwd=tmp_path, env={**os.environ, **env})
        assert done.returncode == 0, done.stderr
        return done

    run("convert", onnx_file, "--to", "onnx", "--mean", "127.5", "--std", "127.5", "--no-verify", "-o", out)
    run("run", stream_model, "--source", "synthetic", "--size", "64x48", "--max-frames", "5", "--save",
        tmp_path / "v.mp4", "--jsonl", tmp_path / "r.jsonl")
    run("bench", stream_model, "--runs", "3", "--warmup", "0", "--csv", tmp_path / "b.csv", "--md", tmp_path / "b.md")
    for path in (out / "tiny_fp32.onnx", out / "tiny_fp32.onnx.edgekit.json", tmp_path / "v.mp4",
                 tmp_path / "r.jsonl", tmp_path / "b.csv", tmp_path / "b.md"):
        assert oct(path.stat().st_mode & 0o777) == oct(0o664), path
    assert json.loads((out / "tiny_fp32.onnx.edgekit.json").read_text())["artifact_sha256"]
