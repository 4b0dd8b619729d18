"""Coral Edge TPU through the LiteRT interpreter and libedgetpu's delegate (no pycoral needed).

Device selection: "usb", "usb:N", "pci", "pci:N" (N counts devices of that kind), passed to the
delegate as {"device": ...}; None takes the first Edge TPU found.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import platform
import re
from pathlib import Path

from .. import deps
from ..errors import BadInput, EdgekitError, RuntimeFailure, summary
from ..manifest import read_manifest
from ..tflite_model import read_tflite
from .base import BACKENDS, Runner
from .litert import InterpreterSteps

LIBRARIES = {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib", "Windows": "edgetpu.dll"}
LIBRARY = LIBRARIES.get(platform.system(), "libedgetpu.so.1")
PROVIDER = ("the Edge TPU runtime: Coral's apt package libedgetpu1-std (or libedgetpu1-max), or a build from "
            "https://github.com/google-coral/libedgetpu/releases on macOS and Windows")
DEVICE_KINDS = ("usb", "pci")
_DEVICE = re.compile(r"^(usb|pci)(?::(\d+))?$")
_NEWER = re.compile(r"requires runtime version \(?(\d+)\)?.*?this runtime version \(?(\d+)\)?", re.S)


class _Device(ctypes.Structure):   # struct edgetpu_device from edgetpu_c.h
    _fields_ = [("type", ctypes.c_int), ("path", ctypes.c_char_p)]


def parse_device(device: str | None) -> tuple[str, int | None] | None:
    """'usb:1' -> ('usb', 1); None -> None; anything else is refused with the valid forms."""
    if device is None:
        return None
    match = _DEVICE.match(device.strip().lower())
    if not match:
        raise BadInput(f"unknown Edge TPU device '{device}'", "valid devices: usb, usb:N, pci, pci:N")
    return match.group(1), int(match.group(2)) if match.group(2) is not None else None


def library_path() -> str | None:
    """Where the dynamic loader would find libedgetpu, or None."""
    try:
        ctypes.CDLL(LIBRARY)
        return LIBRARY
    except OSError:
        return ctypes.util.find_library("edgetpu")


def load_library():
    try:
        return ctypes.CDLL(LIBRARY)
    except OSError as exc:
        raise BadInput(f"cannot load the Edge TPU runtime library {LIBRARY} ({summary(exc)})",
                       f"install {PROVIDER}") from None


def runtime_version(lib) -> int | None:
    """N of "RuntimeVersion(N)" in edgetpu_version()."""
    lib.edgetpu_version.restype = ctypes.c_char_p
    match = re.search(r"RuntimeVersion\((\d+)\)", (lib.edgetpu_version() or b"").decode(errors="replace"))
    return int(match.group(1)) if match else None


def list_devices(lib) -> list[tuple[str, str]]:
    """(kind, path) of every Edge TPU libedgetpu sees."""
    lib.edgetpu_list_devices.restype = ctypes.POINTER(_Device)
    lib.edgetpu_list_devices.argtypes = [ctypes.POINTER(ctypes.c_size_t)]
    count = ctypes.c_size_t(0)
    devices = lib.edgetpu_list_devices(ctypes.byref(count))
    found = [(("pci", "usb")[devices[i].type] if devices[i].type in (0, 1) else "?",
              (devices[i].path or b"").decode()) for i in range(count.value)]
    if devices:
        lib.edgetpu_free_devices(devices)
    return found


def check_runtime(model: str, required: int | None, installed: int | None) -> None:
    """Refuse a model compiled for a newer runtime than the installed libedgetpu."""
    if required is not None and installed is not None and required > installed:
        raise BadInput(f"{model} was compiled for Edge TPU runtime {required}, but the installed libedgetpu "
                       f"is runtime {installed}",
                       f"update {PROVIDER.split(':')[0]} (libedgetpu1-std), or recompile with "
                       f"`edgekit edgetpu compile --min-runtime {installed}`")


def explain_delegate_error(model: str, text: str) -> EdgekitError:
    """libedgetpu's own failure text -> one actionable line."""
    newer = _NEWER.search(text)
    if newer:
        try:
            check_runtime(model, int(newer.group(1)), int(newer.group(2)))
        except EdgekitError as exc:
            return exc
    return RuntimeFailure(f"the Edge TPU delegate failed on {model}: {summary(Exception(text))}",
                          "check the device with `edgekit devices`, and that the model was compiled by edgetpu_compiler")


def required_runtime(path: Path) -> int | None:
    """The min runtime version recorded when edgekit compiled this model (manifest of the ready model)."""
    ready = path.with_name(path.name.replace("_edgetpu.tflite", "_edgetpu_ready.tflite"))
    for candidate in (path, ready):
        manifest = read_manifest(candidate) if candidate.exists() else None
        if manifest is not None and manifest.edgetpu is not None and manifest.edgetpu.min_runtime_version:
            return manifest.edgetpu.min_runtime_version
    return None


@BACKENDS.register("edgetpu")
class EdgeTPURunner(InterpreterSteps, Runner):
    backend = "edgetpu"
    formats = ("tflite",)
    requires = ("ai_edge_litert",)

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return deps.missing(*cls.requires) or (None if library_path() else f"needs {LIBRARY}, from {PROVIDER}")

    @classmethod
    def host_cannot(cls) -> str | None:
        return None if library_path() else f"needs an Edge TPU and its runtime ({LIBRARY} is not installed here)"

    def __init__(self, path: Path, device: str | None = None):
        super().__init__(path, device)
        wanted = parse_device(device)
        from ..edgetpu.analyze import is_compiled

        if not is_compiled(read_tflite(self.path)):  # bounds-checked before native code sees it
            raise BadInput(f"{self.path.name} is not compiled for the Edge TPU: the delegate would run "
                           "every op on the CPU", f"compile it first: edgekit edgetpu compile {self.path}")
        lib = load_library()
        check_runtime(self.path.name, required_runtime(self.path), runtime_version(lib))
        found = list_devices(lib)
        matching = [d for d in found if wanted is None or d[0] == wanted[0]]
        if not matching or (wanted and wanted[1] is not None and wanted[1] >= len(matching)):
            seen = ", ".join(f"{kind} {path}" for kind, path in found) or "none"
            raise BadInput(f"no Edge TPU device found for '{device or 'any'}' (found: {seen})",
                           "plug in the USB Accelerator (a USB 3 port, and the udev rules from "
                           "libedgetpu1-std), or check the PCIe driver (gasket/apex) for M.2/PCIe modules")
        from ai_edge_litert.interpreter import Interpreter, load_delegate

        try:
            delegate = load_delegate(LIBRARY, {"device": device} if device else {})
            self.interpreter = Interpreter(model_path=str(self.path), experimental_delegates=[delegate])
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise explain_delegate_error(self.path.name, str(exc)) from None
        self._describe_tensors()
