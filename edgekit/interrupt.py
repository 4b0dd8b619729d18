"""Stop requests that survive native code: SIGINT (Ctrl-C), SIGTERM (systemd, `docker stop`,
`timeout`, CI cancellation) and SIGHUP (a closed terminal or ssh session) are handled alike.

Each raises `Interrupted`, a KeyboardInterrupt, in the main thread, so every `finally` and every
`except KeyboardInterrupt` that finalizes outputs (a playable MP4, complete JSON lines) or removes
staging directories runs for all three. The CLI then exits 128 + the signal number (130, 143,
129), the shell convention. TensorFlow's bindings may turn KeyboardInterrupt into a RuntimeError
or swallow it; the flag kept here lets convert() and the CLI still honour it.
"""
from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))

_received: int | None = None


class Interrupted(KeyboardInterrupt):
    """A stop request by signal; `exit_code` is 128 + its number."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _on_signal(signum, frame):
    global _received
    if _received is None:
        _received = signum
    raise Interrupted(signum)


def install() -> None:
    """Route SIGINT, SIGTERM and SIGHUP to `Interrupted` (main thread only, as Python requires)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in SIGNALS:
        if signum == getattr(signal, "SIGHUP", None) and signal.getsignal(signum) == signal.SIG_IGN:
            continue  # started under nohup: the user asked to survive a hang-up
        signal.signal(signum, _on_signal)


def interrupted() -> bool:
    return _received is not None


def received() -> int | None:
    """The first stop signal that arrived, or None."""
    return _received


def exit_code() -> int:
    """128 + the signal that stopped us: 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP."""
    return 128 + (_received or signal.SIGINT)


def describe() -> str:
    """How the user stopped us, for the closing message: 'Ctrl-C', 'SIGTERM' or 'SIGHUP'."""
    if _received in (None, signal.SIGINT):
        return "Ctrl-C"
    return signal.Signals(_received).name


def check() -> None:
    """Raise Interrupted if a stop signal arrived, even if a library swallowed it."""
    if _received is not None:
        raise Interrupted(_received)


def reset() -> None:
    """Forget a received signal (for library callers that handled it themselves)."""
    global _received
    _received = None


@contextmanager
def deferred() -> Iterator[None]:
    """Ignore further stop signals while outputs are finalized: a second Ctrl-C or a repeated
    SIGTERM must not cut a video in half. Handlers come back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, _remember) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def _remember(signum, frame):
    global _received
    if _received is None:
        _received = signum
