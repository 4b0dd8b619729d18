"""Errors a user can act on. The CLI prints each as one line, `error: message. remedy`.

Two branches, told apart by their exit code:

    EdgekitError                    message + remedy; exit_code says which branch
    ├── BadInput                    exit 2: the input, an option or this host's set-up is wrong;
    │   │                           the user fixes it and runs again. Nothing was written.
    │   ├── ModelFormatError        a model file (or its manifest) missing, empty, damaged, unreadable
    │   ├── UnknownNameError        a name not among the valid choices (suggests the closest)
    │   ├── MissingDependencyError  an optional package is missing (names the pip extra)
    │   ├── UnsupportedRouteError   no sound conversion from this source kind to this target
    │   └── CalibrationError        calibration data missing, empty or not fitting the input
    └── RuntimeFailure              exit 1: an upstream converter, compiler or device failed on
        │                           input edgekit accepted, or the result missed a gate
        ├── ConversionError         a converter (onnx2tf, TFLite, OpenVINO, coremltools, ...) failed
        └── VerifyFailed            an artifact missed its parity gate (raised after all are written)

Errors of one area subclass a branch where they live: deploy's DeviceError and SshError are
BadInput; bench's RegressionError and ArtifactsFailed (a finding, like VerifyFailed) are
RuntimeFailure. A bare `EdgekitError` counts as bad input (exit 2), the safe reading for code
written before the two branches existed; new raise sites pick a branch.

Two judgement calls, pinned by tests: a native runtime failing on a model that passed the
structure checks is bad input (ModelFormatError: the model file), because damaged files are
what the fuzz corpus shows causes it (tests/test_fuzz.py); a live stream that stays down after
its retries is bad input too (the address given), as tests/test_stream.py pins.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable

from . import pip_install

# The remedy for a model file that is damaged, truncated or not what it claims to be.
REMEDY_REEXPORT = "re-export or re-download the model"


def summary(exc: BaseException, last: bool = False, limit: int = 240) -> str:
    """One line from an upstream exception (its first line, or last for tracebacks-as-text)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return (lines[-1] if last else lines[0])[:limit] if lines else type(exc).__name__


class EdgekitError(Exception):
    """A problem the user can act on: what was wrong (`message`) and what to do (`remedy`)."""

    exit_code = 2

    def __init__(self, message: str, remedy: str | None = None):
        self.message = message
        self.remedy = remedy
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """`message. remedy`, or the message alone: what the CLI prints after `error: `."""
        return f"{self.message}. {self.remedy}" if self.remedy else self.message


class BadInput(EdgekitError):
    """The user's input, options or environment are wrong (exit 2); nothing was written."""

    exit_code = 2


class NoRuntimeHere(BadInput):
    """This host has no runtime for an artifact (Core ML on Linux, an Edge TPU model without a
    Coral). Alone it is bad input (exit 2); beside artifacts that did run, `edgekit verify`
    reports that one as not verified here."""


class RuntimeFailure(EdgekitError):
    """An upstream converter, compiler or device failed on input edgekit accepted, or the
    result missed a gate (exit 1)."""

    exit_code = 1


class ModelFormatError(BadInput):
    """A model file that is missing, empty, truncated, corrupt or not what its name says."""


class UnknownNameError(BadInput):
    """A name (target, precision, backend, ...) that is not one of the valid choices."""

    def __init__(self, kind: str, name: str, valid: Iterable[str]):
        valid = sorted(valid)
        close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
        suggestion = f"did you mean '{close[0]}'? " if close else ""
        super().__init__(f"unknown {kind} '{name}'", f"{suggestion}Valid {kind}s: {', '.join(valid)}")
        self.name = name
        self.valid = valid


class MissingDependencyError(BadInput):
    """An optional framework is not installed; names the pip extra that brings it."""

    def __init__(self, what: str, module: str, extra: str):
        super().__init__(f"{what} needs the Python package '{module}', which is not installed",
                         f"install it with: {pip_install(extra)}")
        self.module = module
        self.extra = extra


class UnsupportedRouteError(BadInput):
    """No sound conversion exists from a source kind to a target."""


class CalibrationError(BadInput):
    """Calibration data is missing, empty or does not fit the model input."""


class ConversionError(RuntimeFailure):
    """An upstream converter failed on a model that edgekit accepted."""


class VerifyFailed(RuntimeFailure):
    """An artifact did not meet its parity gate. Raised after all artifacts are written."""
