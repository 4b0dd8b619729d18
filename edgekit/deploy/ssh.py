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
from collections.abc import Callable
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
    # told (host label, fingerprint) when --trust-new-host records a first-contact key: the user must check it
    on_new_host: Callable[[str, str], None] | None = None


class Ssh:
    """One host: builds the ssh argv, runs quoted commands, turns ssh failures into one-line errors."""

    def __init__(self, host: Host, options: SshOptions):
        if shutil.which("ssh") is None:
            raise BadInput("the OpenSSH client 'ssh' is not on PATH", "install it: sudo apt-get install openssh-client")
        self.host = host
        self.options = options
        self.new_host_key: str | None = None   # the fingerprint recorded at first contact, if this session did
        self._contact_checked = not options.trust_new_host
        self._contact_lock = threading.Lock()

    def argv(self, words: list[str], mode: str = "-T") -> list[str]:
        opts = self.options
        argv = ["ssh", mode, "-o", "BatchMode=yes",
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

    # -- host keys ------------------------------------------------------------------------------
    def _lookup(self) -> tuple[str, list[str]]:
        """(the name known_hosts files index this host by, those files), as ssh itself resolves them
        (`ssh -G`: ~/.ssh/config, HostKeyAlias, UserKnownHostsFile, the port)."""
        done = subprocess.run(self.argv(["true"], mode="-G"), capture_output=True, text=True, timeout=30)
        config: dict[str, str] = {}
        for line in done.stdout.splitlines():
            key, _, value = line.partition(" ")
            config.setdefault(key, value)
        name = config.get("hostkeyalias") or config.get("hostname") or self.host.host
        port = config.get("port", "22")
        name = f"[{name}]:{port}" if port != "22" and not config.get("hostkeyalias") else name
        files = [str(Path(f).expanduser()) for f in config.get("userknownhostsfile", "~/.ssh/known_hosts").split()]
        return name, files

    def known_fingerprint(self) -> str | None:
        """The fingerprint known_hosts records for this host (e.g. 'ED25519 SHA256:...'), or None."""
        name, files = self._lookup()
        for known in files:
            if not Path(known).is_file():
                continue
            found = subprocess.run(["ssh-keygen", "-F", name, "-f", known], capture_output=True, text=True, timeout=30)
            entries = "".join(line + "\n" for line in found.stdout.splitlines() if line and not line.startswith("#"))
            if entries:
                return _fingerprint(entries)
        return None

    def offered_fingerprint(self) -> str | None:
        """The fingerprint of the key the host offers now (ssh-keyscan: unauthenticated, for showing
        the user what to check before --trust-new-host), or None."""
        if shutil.which("ssh-keyscan") is None:
            return None
        port = self.host.port or self.options.port or 22
        try:
            scan = subprocess.run(["ssh-keyscan", "-T", "5", "-p", str(port), "-t", "ed25519,ecdsa,rsa", "--",
                                   self.host.host], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return _fingerprint(scan.stdout) if scan.stdout.strip() else None

    def _first_contact(self) -> None:
        """With --trust-new-host, record an unknown host's key with one `ssh true` before anything
        else, and tell the user its fingerprint: accepting a key unseen would trust anyone."""
        with self._contact_lock:
            if self._contact_checked:
                return
            self._contact_checked = True
            if self.known_fingerprint() is not None:
                return
            try:
                done = subprocess.run(self.argv(["true"]), capture_output=True, text=True, timeout=60,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
            except subprocess.TimeoutExpired:
                raise SshError(f"{self.host.label}: no answer within 60 s", "check the board is up") from None
            if done.returncode == 255:
                raise self.error(done.stderr)
            self.new_host_key = self.known_fingerprint()
            if self.new_host_key and self.options.on_new_host:
                self.options.on_new_host(self.host.label, self.new_host_key)

    def popen(self, words: list[str], stdin=subprocess.DEVNULL) -> subprocess.Popen:
        if STOPPING.is_set():
            raise KeyboardInterrupt
        self._first_contact()
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
            offered = self.offered_fingerprint()
            shown = f": it offers {offered}" if offered else ""
            return SshError(f"{label}: unknown host key (first contact{shown}); refusing to connect",
                            "check that fingerprint on the board (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), "
                            f"then rerun with --trust-new-host to record it in {known}")
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


def _fingerprint(key_lines: str) -> str | None:
    """'ED25519 SHA256:...' for known_hosts or ssh-keyscan lines (ED25519 preferred, as ssh does)."""
    try:
        done = subprocess.run(["ssh-keygen", "-l", "-f", "-"], input=key_lines, capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = []
    for line in done.stdout.splitlines():   # "256 SHA256:abc... [host]:port (ED25519)"
        parts = line.split()
        if len(parts) >= 3 and parts[1].startswith("SHA256:"):
            found.append(f"{parts[-1].strip('()')} {parts[1]}")
    found.sort(key=lambda f: not f.startswith("ED25519"))
    return found[0] if found else None


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("@")]
    return lines[-1].strip()[:200] if lines else ""
