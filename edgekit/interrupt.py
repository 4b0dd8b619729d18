"""Ctrl-C that survives native code. TensorFlow's bindings may turn KeyboardInterrupt into a
RuntimeError or swallow it; the flag set here lets convert() and the CLI still honour it."""
from __future__ import annotations

import signal

_interrupted = False


def _on_sigint(signum, frame):
    global _interrupted
    _interrupted = True
    raise KeyboardInterrupt


def install() -> None:
    signal.signal(signal.SIGINT, _on_sigint)


def interrupted() -> bool:
    return _interrupted


def check() -> None:
    """Raise KeyboardInterrupt if Ctrl-C arrived, even if a library swallowed it."""
    if _interrupted:
        raise KeyboardInterrupt
