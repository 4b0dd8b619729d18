"""Device profiles (`devices/*.yaml`) and which of them this host has.

A profile names the runtime, edgekit backend and device string for a piece of hardware, the
precisions it runs, its constraints, and published reference latencies, each with its source.
`detect` says how to see the device from this host; every condition must hold:

    openvino_device: NPU             # in openvino.Core().available_devices
    usb_ids: [1a6e:089a, 18d1:9302]  # any of these vendor:product ids in /sys/bus/usb/devices
    dev_nodes: [/dev/apex_0]         # any of these paths exists
    board_contains: [Raspberry Pi 4] # /proc/device-tree/model contains any of these
    cpu_flags: [avx2]                # every one of these in /proc/cpuinfo's flags
    platform: darwin                 # sys.platform
    machine: [arm64, aarch64]        # platform.machine() is one of these
    not_detectable: "why"            # a device edgekit cannot run on (e.g. an iPhone)

Rules test what the host can do (a runtime's device list, an instruction set, a device node),
never who made it: the OpenVINO CPU plugin runs on AMD CPUs as on Intel ones, so a vendor
string would hide a working device.
"""
from __future__ import annotations

import platform
import sys
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import BadInput, UnknownNameError
from ..resources import shared


DEVICES_DIR = shared("devices")   # the checkout's devices/, else the copy a wheel installs
REQUIRED = ("name", "title", "runtime", "backend", "device", "precisions", "constraints", "detect", "references")


@dataclass
class Reference:
    model: str
    latency_ms: float
    source: str                   # URL of the published table
    setup: str = ""               # what the publisher measured on (host, USB speed, API)
    match: list[str] = field(default_factory=list)  # artifact-name substrings this reference compares with


@dataclass
class Profile:
    name: str
    title: str
    runtime: str
    backend: str
    device: str | None
    precisions: list[str]
    constraints: list[str]
    detect: dict[str, Any]
    references: list[Reference]
    notes: str = ""
    path: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def references_for(self, artifact: str) -> list[Reference]:
        """The references whose match token is the most specific one found in the artifact's name:
        `ssd_mobilenet_v2_int8.tflite` gets the SSD figures, not MobileNet v2's classifier ones."""
        name = Path(artifact).name.lower()
        matched = [(max((len(t) for t in r.match if t.lower() in name), default=0), r) for r in self.references]
        best = max((length for length, _ in matched), default=0)
        return [r for length, r in matched if length and length == best]


def load_profiles(folder: Path | None = None) -> dict[str, Profile]:
    return _load(str(folder or DEVICES_DIR))


@lru_cache(maxsize=4)
def _load(folder: str) -> dict[str, Profile]:
    import yaml

    profiles: dict[str, Profile] = {}
    for path in sorted(Path(folder).glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise BadInput(f"device profile {path} is not valid YAML ({str(exc).splitlines()[0]})") from None
        missing = [key for key in REQUIRED if not isinstance(data, dict) or key not in data]
        if missing:
            raise BadInput(f"device profile {path} lacks {', '.join(missing)}", "see devices/README.md")
        refs = []
        for ref in data["references"] or []:
            if not str(ref.get("source", "")).startswith("https://"):
                raise BadInput(f"device profile {path}: reference '{ref.get('model')}' has no source URL",
                               "every published number needs the https:// address it comes from")
            refs.append(Reference(**ref))
        fields = {k: data[k] for k in REQUIRED if k != "references"}
        profile = Profile(**fields, references=refs, notes=data.get("notes", ""), path=str(path))
        if profile.name in profiles:
            raise BadInput(f"device profile '{profile.name}' is defined twice ({path})")
        profiles[profile.name] = profile
    return profiles


def get_profile(name: str, folder: Path | None = None) -> Profile:
    """The profile called NAME (devices/), or the one in NAME when it is a .yaml file (a board
    of your own, written as devices/README.md says)."""
    if name.endswith((".yaml", ".yml")) and Path(name).is_file():
        path = Path(name).resolve()
        found = [p for p in _load(str(path.parent)).values() if Path(p.path).resolve() == path]
        if found:
            return found[0]
    profiles = load_profiles(folder)
    if name not in profiles:
        raise UnknownNameError("device profile", name, profiles)
    return profiles[name]


@dataclass
class HostDevices:
    """What this host exposes, read once: OpenVINO devices, USB ids, device nodes, board."""
    openvino: list[str]
    usb_ids: set[str]
    board: str
    cpu_flags: set[str]
    platform: str
    machine: str

    @classmethod
    def read(cls) -> HostDevices:
        from .sysinfo import all_cpu_flags

        board = ""
        try:
            board = Path("/proc/device-tree/model").read_text().strip("\x00\n ")
        except OSError:
            pass
        return cls(openvino=_openvino_devices(), usb_ids=_usb_ids(), board=board, cpu_flags=all_cpu_flags(),
                   platform=sys.platform, machine=platform.machine())


def _openvino_device(want: str, host: HostDevices) -> str | None:
    if any(d.split(".")[0] == want for d in host.openvino):  # GPU.0 counts as GPU
        return None
    return f"OpenVINO lists no {want} device (has: {', '.join(host.openvino) or 'none'})"


def _usb(want: list[str], host: HostDevices) -> str | None:
    return None if host.usb_ids & {w.lower() for w in want} else f"no USB device {' or '.join(want)}"


def _dev_nodes(want: list[str], host: HostDevices) -> str | None:
    return None if any(Path(p).exists() for p in want) else f"no {' or '.join(want)}"


def _board(want: list[str], host: HostDevices) -> str | None:
    if any(w in host.board for w in want):
        return None
    return f"board is '{host.board or 'not a device-tree board'}', not {' / '.join(want)}"


def _cpu_flags(want: list[str], host: HostDevices) -> str | None:
    missing = [flag for flag in want if flag.lower() not in host.cpu_flags]
    return f"the CPU lacks {', '.join(missing)}" if missing else None


def _platform(want: str, host: HostDevices) -> str | None:
    return None if host.platform == want else f"platform is {host.platform}, not {want}"


def _machine(want: list[str], host: HostDevices) -> str | None:
    return None if host.machine in want else f"machine is {host.machine}, not {' / '.join(want)}"


# detect rule -> check(wanted value, host) returning why the rule fails, or None when it holds
DETECT_RULES = {"openvino_device": _openvino_device, "usb_ids": _usb, "dev_nodes": _dev_nodes,
                "board_contains": _board, "cpu_flags": _cpu_flags, "platform": _platform, "machine": _machine}


def presence(profile: Profile, host: HostDevices) -> tuple[bool, str]:
    """(present, why): every detect rule must hold; `why` names the first that does not."""
    rules = profile.detect or {}
    if "not_detectable" in rules:
        return False, str(rules["not_detectable"])
    for key, want in rules.items():
        if key not in DETECT_RULES:
            raise UnknownNameError("detect rule", key, DETECT_RULES)
        why = DETECT_RULES[key](want, host)
        if why:
            return False, why
    return True, "detected"


def _openvino_devices() -> list[str]:
    from .. import deps

    if deps.missing("openvino"):
        return []
    try:
        import openvino as ov

        return list(ov.Core().available_devices)
    except Exception:  # a broken plugin must not stop the listing
        return []


def _usb_ids(root: Path = Path("/sys/bus/usb/devices")) -> set[str]:
    """vendor:product of every USB device, from sysfs (no lsusb needed)."""
    ids = set()
    for device in root.glob("*") if root.is_dir() else []:
        try:
            vendor = (device / "idVendor").read_text().strip()
            product = (device / "idProduct").read_text().strip()
        except OSError:
            continue
        ids.add(f"{vendor}:{product}".lower())
    return ids


@dataclass
class DeviceStatus:
    profile: Profile
    present: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {**self.profile.to_dict(), "present": self.present, "reason": self.reason}


def survey(folder: Path | None = None, host: HostDevices | None = None) -> list[DeviceStatus]:
    host = host or HostDevices.read()
    return [DeviceStatus(p, *presence(p, host)) for p in load_profiles(folder).values()]
