"""Operations on one device (probe, checks, deploy, rollback, bench, run) and a fleet deploy.

Management commands (probe, receive, rollback, list) run the runner that ships with this
edgekit, sent over ssh's stdin (length-prefixed, then the tar stream for `receive`), so they
work before anything is installed on the board. `bench` and `run` execute the runner inside
the deployed bundle (`current/edgekit_runner.py`), as the board will run it later.
"""
from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from ..errors import BadInput, EdgekitError, summary
from ..ui import human_size
from .bundle import RUNNER, Bundle, check_name
from .hosts import Host
from .ssh import STOPPING, Ssh, SshOptions, kill_all

DEFAULT_ROOT = "~/.edgekit"
MIN_PYTHON = (3, 7)
# reads the runner source (length-prefixed) from stdin, then leaves the rest of stdin to it
BOOT_STDIN = ("import sys;n=int(sys.stdin.buffer.readline());s=sys.stdin.buffer.read(n);"
              "sys.argv=['edgekit_runner']+sys.argv[1:];"
              "exec(compile(s,'edgekit_runner.py','exec'),{'__name__':'__main__','__file__':'edgekit_runner.py'})")
# runs ROOT/models/NAME/current/edgekit_runner.py (expanding ~ on the device)
BOOT_BUNDLE = ("import os,sys,json,runpy;sys.dont_write_bytecode=True;d=os.path.join(os.path.expanduser(sys.argv[1]),'models',sys.argv[2],'current');"
               "p=os.path.join(d,'edgekit_runner.py');sys.argv=[p]+sys.argv[3:];sys.path.insert(0,d);"
               "os.path.isfile(p) or sys.exit(json.dumps({'error':'no deployed bundle at '+d}));"
               "runpy.run_path(p,run_name='__main__')")


class DeviceError(BadInput):
    """The device answered, but refused or failed the operation."""


@dataclass
class DeployResult:
    host: str
    name: str
    version: str | None = None
    status: str = "failed"          # ok | failed
    verified: bool = False          # every file's sha256 matched on the device
    seconds: float = 0.0
    previous: str | None = None
    bytes: int = 0
    error: str | None = None
    unchanged: bool = False         # the same content was already current: nothing uploaded or switched
    host_key: str | None = None     # fingerprint recorded at first contact (--trust-new-host)
    current: str | None = None      # the version current on the device afterwards
    verify: dict | None = None      # --verify-on-device: the board's reference-pack report (remote verify's)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RollbackResult:
    host: str
    name: str
    version: str | None = None      # now current
    previous: str | None = None     # was current
    status: str = "failed"
    verified: bool = False
    error: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


class Device:
    def __init__(self, host: Host, options: SshOptions, python: str = "python3", root: str = DEFAULT_ROOT):
        self.host = host
        self.ssh = Ssh(host, options)
        self.python = host.python or python
        self.root = host.root or root

    # ---------------------------------------------------------- plumbing
    def _manage(self, action: str, args: list[str], timeout: float = 60) -> dict:
        source = RUNNER.read_bytes()
        words = [self.python, "-c", BOOT_STDIN, action, "--root", self.root, *args]
        code, out, err = self.ssh.run(words, stdin_data=b"%d\n" % len(source) + source, timeout=timeout)
        return self._answer(code, out, err)

    def _answer(self, code: int, out: str, err: str) -> dict:
        lines = [line for line in out.splitlines() if line.strip()]
        data = None
        if lines:
            try:
                data = json.loads(lines[-1])
            except ValueError:
                data = None
        if isinstance(data, dict) and "error" in data:
            raise DeviceError(f"{self.host.label}: {data['error']}")
        if code != 0 or not isinstance(data, dict):
            detail = summary(Exception(err), last=True) if err.strip() else f"exit code {code}"
            if code == 127:
                raise DeviceError(f"{self.host.label}: '{self.python}' was not found on the device",
                                  "install Python 3.7+ there, or pass --remote-python PATH")
            try:  # BOOT_BUNDLE reports a missing bundle through sys.exit's message
                data = json.loads(err.strip().splitlines()[-1])
                raise DeviceError(f"{self.host.label}: {data['error']}", "deploy a model first: edgekit deploy MODEL --to HOST")
            except (ValueError, IndexError, KeyError, TypeError):
                pass
            raise DeviceError(f"{self.host.label}: the device runner failed ({detail})",
                              f"is '{self.python}' Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]}+? pass --remote-python PATH")
        return data

    # ---------------------------------------------------------- operations
    def probe(self, name: str) -> dict:
        return self._manage("probe", ["--name", name])

    def models(self) -> dict:
        """{name: {current, previous, versions, details: {version: {created, content_sha256, ...}}}}."""
        return self._manage("list", [])["models"]

    def resolve_name(self, name: str | None) -> str:
        """--name, or the only model on the device."""
        if name:
            return check_name(name)
        models = self.models()
        if len(models) == 1:
            return next(iter(models))
        if not models:
            raise DeviceError(f"{self.host.label}: no model is deployed under {self.root}",
                              "deploy one first: edgekit deploy MODEL --to HOST")
        raise DeviceError(f"{self.host.label} has several models deployed: {', '.join(models)}",
                          "pick one with --name")

    def check(self, bundle: Bundle, facts: dict, upload: bool = True) -> None:
        """Refuse before uploading anything the device could not run or store; each error names the fix.
        `upload` False: the content is already there, so free space does not matter."""
        label = self.host.label
        if not facts.get("python_ok"):
            raise DeviceError(f"{label}: Python {facts.get('python')} is too old for the device runner (needs "
                              f"{MIN_PYTHON[0]}.{MIN_PYTHON[1]}+)", "install a newer python3, or pass --remote-python PATH")
        packages = facts.get("packages", {})
        if not packages.get("numpy"):
            raise DeviceError(f"{label}: numpy is not installed for {facts.get('python_executable')}",
                              "on the board: pip3 install numpy (or sudo apt-get install python3-numpy)")
        if not facts.get("runtime"):
            raise DeviceError(f"{label}: no TFLite runtime for {facts.get('python_executable')}",
                              "on the board: pip3 install ai-edge-litert (Python 3.9+), or tflite-runtime on older boards")
        if bundle.edgetpu:
            tpu = facts.get("libedgetpu")
            if not tpu:
                raise DeviceError(f"{label}: {bundle.model} is compiled for the Edge TPU but libedgetpu is not "
                                  "installed on the device",
                                  "install the Edge TPU runtime from Coral's apt repository: sudo apt-get install libedgetpu1-std")
            have, need = tpu.get("runtime_version"), bundle.min_runtime_version
            if need is not None and have is not None and have < need:
                raise DeviceError(f"{label}: {bundle.model} needs Edge TPU runtime {need}+, the device's libedgetpu "
                                  f"is runtime {have}",
                                  f"upgrade it (sudo apt-get install --only-upgrade libedgetpu1-std), or recompile "
                                  f"with edgetpu_compiler -m {have}")
        needed = int(bundle.size * 1.1) + (1 << 20)
        if upload and facts.get("free_bytes", 0) < needed:
            raise DeviceError(f"{label}: only {human_size(facts.get('free_bytes', 0))} free under {facts.get('root')}, "
                              f"the bundle needs {human_size(needed)}",
                              "free space on the board (old versions: --keep 1), or pass --remote-root on a larger disk")

    def deploy(self, bundle: Bundle, keep: int = 3, progress: Callable[[int], None] | None = None,
               upload: bool = True, verify: bool = False) -> dict:
        """Upload into .incoming-*, verify every sha256 on the device, then switch `current` atomically.
        The device answers `unchanged` (and switches nothing) when the same content is current;
        `upload` False sends no bundle, for when the probe already said so. VERIFY: the device first
        runs the bundle's reference pack and switches only if it passes (answer: `switched`, `verify`)."""
        source = RUNNER.read_bytes()
        words = [self.python, "-c", BOOT_STDIN, "receive", "--root", self.root, "--name", bundle.name,
                 "--version", bundle.version, "--sums-sha256", bundle.sums_sha256, "--keep", str(keep),
                 "--content-sha256", bundle.content_sha256] + (["--verify"] if verify else [])
        proc = self.ssh.popen(words, stdin=subprocess.PIPE)
        output: dict[str, bytes] = {}
        readers = [threading.Thread(target=lambda k=k, s=s: output.__setitem__(k, s.read()), daemon=True)
                   for k, s in (("out", proc.stdout), ("err", proc.stderr))]
        for reader in readers:
            reader.start()
        try:
            try:
                proc.stdin.write(b"%d\n" % len(source) + source)
                if upload:
                    bundle.write_tar(proc.stdin, progress)
                proc.stdin.close()
            except (BrokenPipeError, ConnectionResetError, OSError):
                pass  # the device or the connection went away: its answer (or ssh's) says why
            proc.wait()
        except BaseException:  # Ctrl-C: end the upload; the device keeps the previous version
            proc.kill()
            proc.wait()
            raise
        for reader in readers:
            reader.join()
        out = output.get("out", b"").decode(errors="replace")
        err = output.get("err", b"").decode(errors="replace")
        if proc.returncode == 255:
            raise self.ssh.error(err)
        if proc.returncode != 0 and not out.strip():
            raise DeviceError(f"{self.host.label}: the upload was interrupted (exit code {proc.returncode}); "
                              "the previous version is still current", "rerun the deploy")
        return self._answer(proc.returncode, out, err)

    def rollback(self, name: str, to: str | None = None) -> dict:
        return self._manage("rollback", ["--name", name] + (["--to", to] if to else []))

    def _bundle_words(self, name: str, action: str, args: list[str]) -> list[str]:
        return [self.python, "-c", BOOT_BUNDLE, self.root, name, action, *args]

    def bench(self, name: str, runs: int, warmup: int, threads: int | None, timeout: float | None = None) -> dict:
        args = ["--runs", str(runs), "--warmup", str(warmup)] + (["--threads", str(threads)] if threads else [])
        code, out, err = self.ssh.run(self._bundle_words(name, "bench", args), timeout=timeout)
        return self._answer(code, out, err)

    def verify(self, name: str, threads: int | None = None, timeout: float | None = None) -> dict:
        """Run the current bundle's reference pack with its own runner on the board's runtime: the
        report (status, runtime, device, samples, outputs, gate, notes, version, at_conversion).
        The board adds it to the model's deploy history."""
        args = ["--threads", str(threads)] if threads else []
        code, out, err = self.ssh.run(self._bundle_words(name, "verify", args), timeout=timeout)
        if code == 2 and "invalid choice: 'verify'" in err:
            raise DeviceError(f"{self.host.label}: the bundle deployed as '{name}' predates remote verify",
                              "deploy the model again with this edgekit (its bundle carries the reference pack)")
        return self._answer(code, out, err)

    def run(self, name: str, source: str, frames: int | None, top_k: int = 5, serve: str | None = None) -> Iterator[dict]:
        """Result lines as the device produces them (one JSON object per frame)."""
        args = ["--source", source, "--top-k", str(top_k)] + (["--frames", str(frames)] if frames else [])
        args += ["--serve", serve] if serve else []
        # stdin stays open while we read: the device runner stops when it sees EOF (connection gone)
        proc = self.ssh.popen(self._bundle_words(name, "run", args), stdin=subprocess.PIPE)
        errors: list[bytes] = []
        reader = threading.Thread(target=lambda: errors.append(proc.stderr.read()), daemon=True)
        reader.start()
        last = None
        try:
            for raw in proc.stdout:
                line = raw.decode(errors="replace").strip()
                if not line.startswith("{"):
                    continue
                data = json.loads(line)
                last = line
                if "error" in data:
                    break
                yield data
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            reader.join()
            proc.stdin.close()
        err = b"".join(errors).decode(errors="replace")
        if proc.returncode == 255:
            raise self.ssh.error(err)
        if proc.returncode not in (0, -9) or (last and '"error"' in last):
            self._answer(proc.returncode, last or "", err)


def deploy_one(device: Device, bundle: Bundle, keep: int, progress=None, verify: bool = False) -> DeployResult:
    """Probe DEVICE, refuse what it cannot run (Device.check), upload BUNDLE and switch to it,
    keeping KEEP versions. Never raises: a failure is the result's `error` (one line) and
    status "failed"; `seconds` is wall time, `bytes` what was uploaded. PROGRESS(n) gets bytes sent.
    VERIFY (--verify-on-device): the board runs the bundle's reference pack first and switches
    only if it passes; otherwise the version it ran stays current and `error` says why."""
    start = time.monotonic()
    result = DeployResult(host=device.host.label, name=bundle.name)
    try:
        facts = device.probe(bundle.name)
        result.host_key = device.ssh.new_host_key
        same = bool(bundle.content_sha256) and facts.get("current_content_sha256") == bundle.content_sha256
        device.check(bundle, facts, upload=not same)
        answer = device.deploy(bundle, keep=keep, progress=progress, upload=not same, verify=verify)
        result.version = answer["version"]
        result.previous = answer.get("previous")
        result.verified = bool(answer.get("verified"))
        result.unchanged = bool(answer.get("unchanged"))
        result.bytes = int(answer.get("bytes", 0))
        result.current = answer.get("current", result.version)
        result.verify = answer.get("verify")
        result.status = "ok" if result.verified else "failed"
        if result.verify is not None and result.verify.get("status") != "pass":
            result.status = "failed"
            result.error = _parity_failure(device.host.label, result)
    except EdgekitError as exc:
        result.error = exc.one_line()
    except Exception as exc:  # one board's surprise must not stop the fleet
        result.error = f"{type(exc).__name__}: {summary(exc)}"
    result.seconds = round(time.monotonic() - start, 2)
    return result


def _parity_failure(label: str, result: DeployResult) -> str:
    """Why --verify-on-device kept the old version, in one line: the board's failed gates."""
    notes = "; ".join((result.verify or {}).get("notes") or []) or "no parity was measured"
    where = (result.verify or {}).get("runtime") or "the board's runtime"
    kept = f"{result.current} stays current" if result.current else "no version is current"
    what = "the current version" if result.unchanged else f"version {result.version}"
    return f"{label}: {what} failed its reference pack on {where} ({notes}); {kept}"


def deploy_fleet(hosts: list[Host], bundle: Bundle, options: SshOptions, python: str, root: str, keep: int,
                 parallel: int, progress_for: Callable[[Host], Callable[[int], None] | None] | None = None,
                 verify: bool = False) -> list[DeployResult]:
    """`edgekit deploy`: BUNDLE (build_bundle) to every host in HOSTS, at most PARALLEL at a time,
    over the system ssh with OPTIONS; the board runs it with PYTHON under ROOT (~/.edgekit) and
    keeps KEEP versions for rollback. One DeployResult per host, in the order of HOSTS; a host
    that fails does not stop the others (see deploy_one). PROGRESS_FOR(host) gives its bytes
    callback; VERIFY gates the switch on the reference pack (deploy_one)."""
    def work(host: Host) -> DeployResult:
        try:
            device = Device(host, options, python, root)
        except EdgekitError as exc:
            return DeployResult(host=host.label, name=bundle.name, error=exc.one_line())
        return deploy_one(device, bundle, keep, progress_for(host) if progress_for else None, verify)

    return _concurrently(work, hosts, parallel)


def rollback_fleet(hosts: list[Host], options: SshOptions, python: str, root: str, name: str | None, to: str | None,
                   parallel: int) -> list[RollbackResult]:
    def work(host: Host) -> RollbackResult:
        result = RollbackResult(host=host.label, name=name or "")
        try:
            device = Device(host, options, python, root)
            result.name = device.resolve_name(name)
            answer = device.rollback(result.name, to)
            result.version, result.previous = answer["version"], answer.get("previous")
            result.verified, result.status = bool(answer.get("verified")), "ok"
        except EdgekitError as exc:
            result.error = exc.one_line()
        except Exception as exc:
            result.error = f"{type(exc).__name__}: {summary(exc)}"
        return result

    return _concurrently(work, hosts, parallel)


def _concurrently(work, hosts: list[Host], parallel: int) -> list:
    """work(host) for every host, `parallel` at a time, results in order; Ctrl-C ends every ssh at once."""
    STOPPING.clear()
    pool = ThreadPoolExecutor(max_workers=max(1, parallel))
    try:
        futures = [pool.submit(work, host) for host in hosts]
        return [future.result() for future in futures]
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        kill_all()
        raise
    finally:
        pool.shutdown(wait=True)
