"""Every registered target x every source kind, at every precision the target offers.

Each conversion is verified by edgekit itself against the source on real photos; the test
checks verify's numbers and the manifest. Every source reaches every target (no route is
refused). A target whose dependency or OS is missing skips with its own reason.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from edgekit.convert import ConvertRequest, convert
from edgekit.fsutil import sha256_of
from edgekit.manifest import SCHEMA_VERSION, manifest_path
from edgekit.targets.base import TARGETS
from edgekit.verify import GATES

from conftest import SIZE

SOURCES = {  # fixture -> conversion-graph form
    "keras_file": "keras", "h5_file": "keras", "savedmodel_dir": "savedmodel", "tflite_float_file": "tflite",
    "onnx_file": "onnx", "torchscript_file": "torch", "torch_module": "torch",
}
TARGET_NAMES = TARGETS.names()


@pytest.fixture(scope="session")
def conversions(tmp_path_factory, photos_dir):
    """One convert() per (source, target), shared by the per-precision checks."""
    cache: dict = {}

    def get(request, source: str, target_name: str):
        key = (source, target_name)
        if key not in cache:
            target = TARGETS.get(target_name)
            reason = target.unavailable_reason()
            if reason:
                cache[key] = ("skip", reason)
            else:
                model = request.getfixturevalue(source)
                out = tmp_path_factory.mktemp(f"{source}-{target_name}")
                req = ConvertRequest(targets=[target_name], precisions=["all"], out_dir=out, calib=str(photos_dir),
                                     calib_samples=40, verify_samples=40, input_size=[SIZE, SIZE],
                                     mean=[127.5], std=[127.5], task="classification")
                cache[key] = ("ok", convert(model, req))
        return cache[key]

    return get


@pytest.mark.parametrize("target_name", TARGET_NAMES)
@pytest.mark.parametrize("source", list(SOURCES))
def test_convert_every_precision(request, conversions, source, target_name):
    status, result = conversions(request, source, target_name)
    target = TARGETS.get(target_name)
    if status == "skip":
        pytest.skip(result)
    assert [a.precision for a in result.artifacts] == list(target.precisions)
    for artifact in result.artifacts:
        path = Path(artifact.path)
        assert path.exists() and path.name.endswith(target.suffix)
        report = artifact.verify
        if report.status == "structure-only":  # Core ML on Linux: the program it was converted from is the proof
            assert sys.platform != "darwin"
            assert any("numerics need macOS" in n for n in report.notes)
            assert report.steps and all(s.status == "pass" and s.cosine >= GATES["fp32"]["cosine"]
                                        and s.samples == 40 for s in report.steps), report.steps
            continue
        assert report.status == "pass", (path.name, report.notes)
        gate = GATES[artifact.precision]
        assert report.cosine >= gate["cosine"]
        if "top1_agreement_decisive" in gate and report.top1_agreement_decisive is not None:
            assert report.top1_agreement_decisive >= gate["top1_agreement_decisive"]
        assert report.samples == 40 and "photo" in report.data


@pytest.mark.parametrize("target_name", TARGET_NAMES)
@pytest.mark.parametrize("source", ["onnx_file", "keras_file"])
def test_manifest_travels_with_artifact(request, conversions, source, target_name):
    status, result = conversions(request, source, target_name)
    if status != "ok":
        pytest.skip(f"{source} -> {target_name}: {status}")
    model_path = request.getfixturevalue(source)
    for artifact in result.artifacts:
        path = Path(artifact.path)
        data = json.loads(manifest_path(path).read_text())
        assert data["schema_version"] == SCHEMA_VERSION
        assert data["artifact"] == path.name and data["target"] == target_name
        assert data["source"]["sha256"] == sha256_of(model_path)
        assert data["preprocess"]["input_size"] == [SIZE, SIZE]
        assert data["preprocess"]["mean"] == [127.5] * 3 and data["preprocess"]["std"] == [127.5] * 3
        assert data["task"] == "classification"
        assert data["route"] and data["converters"]["edgekit"]
        assert data["inputs"] and data["outputs"]
        assert data["verify"]["status"] in ("pass", "structure-only")
        if artifact.precision in TARGETS.get(target_name).calibrated:
            assert data["calibration"]["samples"] == 40 and data["calibration"]["real"] is True
        else:   # float, or weights-only int8 (Core ML): no activation ranges were measured
            assert data["calibration"] is None


def test_convert_records_step_timings(request, conversions):
    """Benchmarks read where the seconds went from the result, not from progress text: the
    shared bridge is counted once, in the first artifact, and so are the reference outputs."""
    status, result = conversions(request, "onnx_file", "tflite")
    if status != "ok":
        pytest.skip(str(result))
    first, *later = result.artifacts
    assert list(first.timings.bridges) == ["onnx → savedmodel (onnx2tf)"]
    assert first.timings.bridges["onnx → savedmodel (onnx2tf)"] > 0
    assert all(a.timings.bridges == {} for a in later)            # they reuse the SavedModel
    assert first.timings.reference is not None and all(a.timings.reference is None for a in later)
    assert 0 < first.timings.reference <= first.timings.verify
    for artifact in result.artifacts:
        spent = artifact.timings
        assert spent.convert > 0 and spent.verify > 0
        assert sum(spent.bridges.values()) + spent.convert + spent.verify <= artifact.seconds + 0.005
    setup = result.timings
    assert setup.load_source >= 0 and setup.calibration > 0 and setup.verify_data >= 0   # ms resolution
    assert setup.total + 0.005 >= setup.load_source + setup.calibration + sum(a.seconds for a in result.artifacts)


def test_tflite_int8_is_edgetpu_ready(request, conversions):
    status, result = conversions(request, "onnx_file", "tflite")
    if status != "ok":
        pytest.skip(str(result))
    from edgekit.tflite_model import read_tflite

    int8 = next(a for a in result.artifacts if a.precision == "int8")
    model = read_tflite(int8.path)
    assert model.is_fully_integer() and not model.has_dynamic_shapes()
    assert model.inputs()[0].dtype == "uint8" and model.inputs()[0].shape[0] == 1
    assert model.outputs()[0].dtype == "uint8"


def test_int8_io_type_int8(onnx_file, photos_dir, tmp_path):
    if TARGETS.get("tflite").unavailable_reason():
        pytest.skip(TARGETS.get("tflite").unavailable_reason())
    from edgekit.tflite_model import read_tflite

    result = convert(str(onnx_file), ConvertRequest(targets=["tflite"], precisions=["int8"], out_dir=tmp_path,
                                                    calib=str(photos_dir), calib_samples=16, int8_io="int8",
                                                    mean=[127.5], std=[127.5], task="classification"))
    model = read_tflite(result.artifacts[0].path)
    assert model.inputs()[0].dtype == "int8" and model.outputs()[0].dtype == "int8"
    assert json.loads(manifest_path(Path(result.artifacts[0].path)).read_text())["int8_io"] == "int8"


def test_coreml_package_has_image_input_and_classifier(request, conversions):
    status, result = conversions(request, "torch_module", "coreml")
    if status != "ok":
        pytest.skip(str(result))
    import coremltools as ct

    spec = ct.models.MLModel(result.artifacts[0].path, skip_model_load=True).get_spec()
    image = spec.description.input[0].type.imageType
    assert (image.width, image.height) == (SIZE, SIZE)
    assert spec.description.predictedFeatureName  # classifier config attached
    assert spec.WhichOneof("Type") == "mlProgram"
    assert image.colorSpace == ct.proto.FeatureTypes_pb2.ImageFeatureType.RGB


# The bridges each source needs before coremltools' TensorFlow or PyTorch frontend.
COREML_STEPS = {"keras_file": [], "h5_file": [], "savedmodel_dir": [], "onnx_file": ["onnx → savedmodel (onnx2tf)"],
                "tflite_float_file": ["tflite → onnx (tf2onnx)", "onnx → savedmodel (onnx2tf)"],
                "torchscript_file": [], "torch_module": []}


@pytest.mark.parametrize("source", list(SOURCES))
def test_coreml_records_every_checked_step(request, conversions, source):
    """Each bridge's output and the program handed to coremltools were run on the photos against
    the source; the manifest keeps them, and they chose the route."""
    status, result = conversions(request, source, "coreml")
    if status != "ok":
        pytest.skip(str(result))
    frontend = "torch traced module" if SOURCES[source] == "torch" else "tensorflow concrete function"
    for artifact in result.artifacts:
        steps = json.loads(manifest_path(Path(artifact.path)).read_text())["verify"]["steps"]
        assert [s["step"] for s in steps[:-1]] == COREML_STEPS[source]
        assert steps[-1]["step"].startswith(f"{frontend} → coremltools")
        assert steps[-1]["runtime"] == frontend.split()[0]
        assert all(s["status"] == "pass" and s["samples"] == 40 for s in steps)
        if sys.platform != "darwin":  # where the package itself cannot run, its input program ranks the routes
            candidates = json.loads(manifest_path(Path(artifact.path)).read_text())["route_candidates"]
            assert candidates == [{"route": artifact.route, "cosine": None,
                                   "intermediate_cosine": min(o["cosine"] for o in steps[-1]["outputs"])}]
