"""Device profiles (devices/*.yaml) and `edgekit devices`: every profile loads, names its runtime,
backend, device, precisions and constraints, and sources every published number."""
from __future__ import annotations

import json

import pytest

from edgekit.bench.profiles import DEVICES_DIR, HostDevices, get_profile, load_profiles, presence
from edgekit.errors import EdgekitError, UnknownNameError

REQUIRED_PROFILES = {  # the hardware the issue asks for
    "coral-dev-board", "coral-dev-board-mini", "coral-usb-x86", "coral-usb-pi4", "coral-usb-pi5", "coral-m2-pcie",
    "intel-cpu", "intel-igpu", "intel-npu", "intel-ncs2", "apple-m-series", "apple-a-series"}
YAML_FILES = sorted(DEVICES_DIR.glob("*.yaml"))


def test_devices_json_lists_every_profile(run_cli):
    code, out, err = run_cli("devices", "--json")
    assert code == 0, err
    listed = json.loads(out)
    assert {p["name"] for p in listed} == set(load_profiles()) >= REQUIRED_PROFILES
    assert len(listed) == len(YAML_FILES)
    for profile in listed:
        assert isinstance(profile["present"], bool) and profile["reason"]
        assert profile["backend"] and profile["runtime"] and profile["precisions"] and profile["constraints"]


def test_devices_table(run_cli):
    code, out, _ = run_cli("devices")
    assert code == 0
    for name in REQUIRED_PROFILES:
        assert name in out
    assert "not on iPhone or iPad" in out  # why the A-series can never be present


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.stem)
def test_every_reference_number_has_a_source(path):
    import yaml

    data = yaml.safe_load(path.read_text())
    assert data["name"] == path.stem  # file name = profile name, so `--profile` and the folder agree
    for ref in data["references"]:
        assert ref["source"].startswith("https://"), ref
        assert isinstance(ref["latency_ms"], (int, float)) and ref["latency_ms"] > 0
        assert ref["model"] and ref["setup"]
    if not data["references"]:
        assert "no" in data["notes"] and "sourced" in data["notes"]  # says why there is no number


def test_coral_table_numbers():
    """Coral's published table: MobileNet v2 224 takes 2.6 ms on the USB Accelerator and the Dev Board."""
    for name in ("coral-usb-x86", "coral-dev-board"):
        refs = {r.model: r for r in get_profile(name).references}
        assert refs["MobileNet v2 (224x224)"].latency_ms == 2.6
        assert refs["MobileNet v2 (224x224)"].source == "https://coral.ai/docs/edgetpu/benchmarks/"


def test_references_match_the_most_specific_model_name():
    usb = get_profile("coral-usb-x86")
    assert [r.latency_ms for r in usb.references_for("out/ssd_mobilenet_v2_int8_edgetpu.tflite")] == [7.2]
    assert [r.latency_ms for r in usb.references_for("mobilenet_v2_1.0_224_int8_edgetpu.tflite")] == [2.6]
    assert usb.references_for("efficientnet_lite0_int8.tflite") == []
    cpus = get_profile("intel-cpu").references_for("mobilenet_v2_int8.xml")   # one row per published CPU
    assert len(cpus) >= 2 and all("mobilenet" in r.model.lower() for r in cpus)


def test_ncs2_is_marked_legacy():
    ncs2 = get_profile("intel-ncs2")
    assert ncs2.device == "MYRIAD" and "2022.3" in ncs2.runtime and ncs2.precisions == ["fp16"]


def test_unknown_profile_suggests_and_lists():
    with pytest.raises(UnknownNameError, match=r"unknown device profile 'intel-gpu'. did you mean 'intel-igpu'\? "
                                               r"Valid device profiles: apple-a-series, "):
        get_profile("intel-gpu")


def host(**changes) -> HostDevices:
    facts = dict(openvino=["CPU"], usb_ids=set(), board="", cpu_flags={"sse4_2", "avx2"}, platform="linux",
                 machine="x86_64")
    facts.update(changes)
    return HostDevices(**facts)


def test_detection_rules():
    usb = get_profile("coral-usb-x86")
    assert presence(usb, host()) == (False, "no USB device 1a6e:089a or 18d1:9302")
    assert presence(usb, host(usb_ids={"18d1:9302"})) == (True, "detected")
    assert presence(usb, host(usb_ids={"1a6e:089a"}, machine="aarch64"))[0] is False
    pi5 = get_profile("coral-usb-pi5")
    assert presence(pi5, host(usb_ids={"1a6e:089a"}, machine="aarch64", board="Raspberry Pi 5 Model B Rev 1.0"))[0]
    assert not presence(pi5, host(usb_ids={"1a6e:089a"}, board="Raspberry Pi 4 Model B Rev 1.4"))[0]
    npu = get_profile("intel-npu")
    assert presence(npu, host(openvino=["CPU", "GPU.0", "NPU"]))[0]
    assert presence(get_profile("intel-igpu"), host(openvino=["CPU", "GPU.0"]))[0]  # GPU.0 counts as GPU
    assert presence(npu, host()) == (False, "OpenVINO lists no NPU device (has: CPU)")
    # capability, not vendor: an AMD host whose OpenVINO lists a CPU runs the CPU plugin
    assert presence(get_profile("intel-cpu"), host())[0]
    assert presence(get_profile("intel-cpu"), host(openvino=[])) == (False, "OpenVINO lists no CPU device (has: none)")
    assert presence(get_profile("intel-cpu"), host(cpu_flags={"avx2"})) == (False, "the CPU lacks sse4_2")
    assert not presence(get_profile("intel-cpu"), host(machine="aarch64"))[0]
    assert presence(get_profile("apple-m-series"), host(openvino=[], platform="darwin", machine="arm64"))[0]
    assert not presence(get_profile("apple-a-series"), host(platform="darwin", machine="arm64"))[0]


def test_this_host_is_read_without_lsusb():
    facts = HostDevices.read()
    assert all(len(i) == 9 and i[4] == ":" for i in facts.usb_ids)
    assert facts.platform and facts.machine


def test_profile_without_source_is_refused(tmp_path):
    (tmp_path / "made-up.yaml").write_text(
        (DEVICES_DIR / "coral-usb-x86.yaml").read_text().replace("name: coral-usb-x86", "name: made-up")
        .replace("source: https://coral.ai/docs/edgetpu/benchmarks/", "source: my notes", 1))
    with pytest.raises(EdgekitError, match=r"made-up.yaml: reference 'MobileNet v1 \(224x224\)' has no source URL"):
        load_profiles(tmp_path)


def test_profile_missing_fields_is_refused(tmp_path):
    (tmp_path / "thin.yaml").write_text("name: thin\ntitle: Thin\n")
    with pytest.raises(EdgekitError, match=r"thin.yaml lacks runtime, backend, device, precisions"):
        load_profiles(tmp_path)


def test_devices_help_has_examples(run_cli):
    code, out, _ = run_cli("devices", "--help")
    assert code == 0 and "Examples:" in out and "edgekit devices --json" in out
    code, out, _ = run_cli("bench", "--help")
    assert code == 0 and "Examples:" in out and "--baseline" in out


def test_profiles_name_real_backends_and_devices():
    """A profile's backend is registered and its device string is one that backend accepts
    (NCS2's MYRIAD excepted: it exists only in OpenVINO 2022.3, which the profile says)."""
    import sys

    from edgekit.runtime.base import BACKENDS

    for profile in load_profiles().values():
        runner = BACKENDS.get(profile.backend)
        # the Edge TPU backend parses usb[:N] / pci[:N] itself and lists the kinds in its module
        kinds = getattr(sys.modules[runner.__module__], "DEVICE_KINDS", runner.device_kinds)
        kind = profile.device.split(":", 1)[0]
        if profile.name == "intel-ncs2":
            assert kind not in kinds
            continue
        assert kind in kinds, (profile.name, profile.device, kinds)
