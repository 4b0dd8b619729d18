"""Errors a user can act on. The CLI prints each as one line and exits with code 2."""
from __future__ import annotations

import difflib
from collections.abc import Iterable

from . import pip_install


def summary(exc: BaseException, last: bool = False, limit: int = 240) -> str:
    """One line from an upstream exception (its first line, or last for tracebacks-as-text)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return (lines[-1] if last else lines[0])[:limit] if lines else type(exc).__name__


class EdgekitError(Exception):
    """A problem with the user's input or environment: what was wrong, and what to do."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        self.message = message
        self.hint = hint
        super().__init__(self.one_line())

    def one_line(self) -> str:
        return f"{self.message}. {self.hint}" if self.hint else self.message


class ModelFormatError(EdgekitError):
    """A model file that is missing, empty, truncated, corrupt or not what its name says."""


class UnknownNameError(EdgekitError):
    """A name (target, precision, backend, ...) that is not one of the valid choices."""

    def __init__(self, kind: str, name: str, valid: Iterable[str]):
        valid = sorted(valid)
        close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
        hint = f"did you mean '{close[0]}'? " if close else ""
        super().__init__(f"unknown {kind} '{name}'", f"{hint}Valid {kind}s: {', '.join(valid)}")
        self.name = name
        self.valid = valid


class MissingDependencyError(EdgekitError):
    """An optional framework is not installed; names the pip extra that brings it."""

    def __init__(self, what: str, module: str, extra: str):
        super().__init__(f"{what} needs the Python package '{module}', which is not installed",
                         f"install it with: {pip_install(extra)}")
        self.module = module
        self.extra = extra


class UnsupportedRouteError(EdgekitError):
    """No sound conversion exists from a source kind to a target."""


class CalibrationError(EdgekitError):
    """Calibration data is missing, empty or does not fit the model input."""


class ConversionError(EdgekitError):
    """An upstream converter failed on a model that edgekit accepted."""


class VerifyFailed(EdgekitError):
    """An artifact did not meet its parity gate. Raised after all artifacts are written."""

    exit_code = 1
