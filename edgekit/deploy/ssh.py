"""The system OpenSSH client, driven through subprocess.

Using `ssh` itself gives key authentication through the agent, `--key` and the user's
~/.ssh/config for free. BatchMode=yes means ssh never prompts for (or accepts) a password;
StrictHostKeyChecking=yes refuses unknown and changed host keys unless --trust-new-host asks
for accept-new, which records a first-contact key and still refuses a changed one.
Every remote command is a list of words joined with shlex.quote: no user value reaches a shell unquoted.
"""
from __future__ import annotations

import shlex
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BadInput
from .hosts import Host


_LIVE: set[subprocess.Popen] = set()   # every ssh we started and have not reaped, for kill_all()
_LIVE_LOCK = threading.Lock()
STOPPING = threading.Event()           # set by kill_all(): no new ssh starts after it


def kill_all() -> None:
    """End every ssh still running (Ctrl-C during a fleet deploy): the boards keep their previous version."""
    STOPPING.set()
    with _LIVE_LOCK:
        procs = list(_LIVE)
    for proc in procs:
        if proc.poll() is None:
            proc.kill()


class SshError(BadInput):
    """ssh could not connect, authenticate or verify the host."""


@dataclass
class SshOptions:
    key: Path | None = None
    known_hosts: Path | None = None
    config: Path | None = None
    port: int | None = None
    trust_new_host: bool = False
    connect_timeout: int = 10
    extra: list[str] = field(default_factory=list)   # -o Name=value from --ssh-option


class Ssh:
    """One host: builds the ssh argv, runs quoted commands, turns ssh failures into one-line errors."""

    def __init__(self, host: Host, options: SshOptions):
        if shutil.which("ssh") is None:
            raise BadInput("the OpenSSH client 'ssh' is not on PATH", "install it: sudo apt-get install openssh-client")
        self.host = host
        self.options = options

    def argv(self, words: list[str]) -> list[str]:
        opts = self.options
        argv = ["ssh", "-T", "-o", "BatchMode=yes",
                "-o", f"StrictHostKeyChecking={'accept-new' if opts.trust_new_host else 'yes'}",
                "-o", f"ConnectTimeout={opts.connect_timeout}",
                "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"]
        if opts.config:
            argv += ["-F", str(opts.config)]
        if opts.known_hosts:
            argv += ["-o", f"UserKnownHostsFile={opts.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null"]
        key = self.host.key or opts.key
        if key:
            argv += ["-i", str(Path(key).expanduser()), "-o", "IdentitiesOnly=yes"]
        port = self.host.port or opts.port
        if port:
            argv += ["-p", str(port)]
        for option in opts.extra:
            argv += ["-o", option]
        # "--" ends ssh's options: a host can never be read as an option; the command is one quoted string
        return argv + ["--", self.host.destination, shlex.join(words)]

    def popen(self, words: list[str], stdin=subprocess.DEVNULL) -> subprocess.Popen:
        if STOPPING.is_set():
            raise KeyboardInterrupt
        proc = subprocess.Popen(self.argv(words), stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)  # Ctrl-C reaches us first; we end ssh ourselves
        with _LIVE_LOCK:
            _LIVE.add(proc)
            for done in [p for p in _LIVE if p.returncode is not None]:
                _LIVE.discard(done)
        return proc

    def run(self, words: list[str], stdin_data: bytes | None = None, timeout: float | None = 120) -> tuple[int, str, str]:
        proc = self.popen(words, stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL)
        try:
            out, err = proc.communicate(stdin_data, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise SshError(f"{self.host.label}: no answer within {timeout:.0f} s", "check the board is up and not overloaded")
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        code = proc.returncode
        if code == 255:
            raise self.error(err.decode(errors="replace"))
        return code, out.decode(errors="replace"), err.decode(errors="replace")

    def error(self, stderr: str) -> SshError:
        """ssh exits 255 for its own failures; name the cause and the fix in one line."""
        label = self.host.label
        known = str(self.options.known_hosts or "~/.ssh/known_hosts")
        port = self.host.port or self.options.port
        key_name = f"[{self.host.host}]:{port}" if port and port != 22 else self.host.host
        text = stderr.strip()
        if "REMOTE HOST IDENTIFICATION HAS CHANGED" in text or "Host key for" in text and "has changed" in text:
            return SshError(f"{label}: the host key has CHANGED since it was recorded (a re-flashed board, or someone "
                            "intercepting the connection); refusing to connect",
                            f"if the board was re-flashed, verify its new fingerprint, then remove the old key: "
                            f"ssh-keygen -R '{key_name}' -f {known}")
        if "Host key verification failed" in text or "No ED25519 host key is known" in text or "host key is known" in text:
            return SshError(f"{label}: unknown host key (first contact); refusing to connect",
                            "check the board's fingerprint, then rerun with --trust-new-host to record it in "
                            f"{known}")
        if "Permission denied" in text:
            return SshError(f"{label}: key authentication failed (passwords are never used)",
                            "pass --key FILE, load the key into ssh-agent, or set IdentityFile in ~/.ssh/config; "
                            "install the public key on the board with ssh-copy-id")
        if "Connection refused" in text:
            return SshError(f"{label}: connection refused", "is sshd running on the board, and is the port right?")
        if "timed out" in text or "No route to host" in text or "Network is unreachable" in text:
            return SshError(f"{label}: unreachable ({_last_line(text)})", "is the board powered and on this network?")
        if "Could not resolve hostname" in text:
            return SshError(f"{label}: unknown host name", "check the spelling, or add the board to ~/.ssh/config or /etc/hosts")
        return SshError(f"{label}: ssh failed: {_last_line(text) or 'connection closed'}",
                        "rerun with --debug, or try plain `ssh` to the board")


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("@")]
    return lines[-1].strip()[:200] if lines else ""
