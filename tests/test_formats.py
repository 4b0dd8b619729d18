"""The format registry on real files: each format sniffs its own sample and no other format
claims it, companions travel with their model, and a Core ML .mlmodel is told from ONNX
although both start with the same protobuf tag.

The samples are conftest's tiny models (built with each framework) plus an OpenVINO IR and Core
ML models written by those frameworks here. A format registered without a sample here fails
`test_every_format_has_a_sample`.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edgekit.errors import ModelFormatError
from edgekit.formats import FORMATS, companion_files, for_suffix, sniff


@pytest.fixture(scope="module")
def openvino_ir(onnx_file, tmp_path_factory) -> Path:
    ov = pytest.importorskip("openvino")
    xml = tmp_path_factory.mktemp("ir") / "tiny.xml"
    ov.save_model(ov.convert_model(str(onnx_file)), str(xml), compress_to_fp16=False)
    return xml


@pytest.fixture(scope="module")
def coreml_models(tmp_path_factory) -> dict[str, Path]:
    """A one-layer neural network written by coremltools as .mlmodel and as .mlpackage."""
    ct = pytest.importorskip("coremltools")
    from coremltools.models import datatypes
    from coremltools.models.neural_network import NeuralNetworkBuilder

    builder = NeuralNetworkBuilder([("x", datatypes.Array(4))], [("y", datatypes.Array(4))])
    builder.add_activation("relu", "RELU", "x", "y")
    folder = tmp_path_factory.mktemp("coreml")
    paths = {"mlmodel": folder / "tiny.mlmodel", "mlpackage": folder / "tiny.mlpackage"}
    for path in paths.values():
        ct.models.utils.save_spec(builder.spec, str(path))
    return paths


@pytest.fixture(scope="module")
def torch_export_file(torch_module, tmp_path_factory) -> Path:
    import torch

    path = tmp_path_factory.mktemp("export") / "tiny.pt2"
    torch.export.save(torch.export.export(torch_module, (torch.zeros(1, 3, 32, 32),)), str(path))
    return path


# format -> how to get a real file of it (fixture name, or fixture name and key)
SAMPLES = {
    "keras": "keras_file", "keras-h5": "h5_file", "savedmodel": "savedmodel_dir", "tflite": "tflite_float_file",
    "onnx": "onnx_file", "torchscript": "torchscript_file", "torch-export": "torch_export_file",
    "openvino": "openvino_ir", "coreml": ("coreml_models", "mlpackage"),
}


def sample(request, name: str) -> Path:
    spec = SAMPLES[name]
    if isinstance(spec, tuple):
        return request.getfixturevalue(spec[0])[spec[1]]
    return request.getfixturevalue(spec)


def test_every_format_has_a_sample():
    assert set(SAMPLES) == set(FORMATS.names()), "add a sample for each new format to SAMPLES"


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_each_format_claims_its_sample_and_only_it(request, name):
    from edgekit.formats.base import Evidence, HEAD_BYTES

    path = sample(request, name)
    fmt = sniff(path)
    assert fmt.name == name
    evidence = Evidence(path, b"" if path.is_dir() else path.read_bytes()[:HEAD_BYTES])
    claims = [f.name for f in FORMATS.values() if f.sniff(evidence)]
    assert claims[0] == name and all(FORMATS.get(c).rank > fmt.rank for c in claims[1:]), claims
    fmt.check_structure(path)
    assert fmt.size(path) == sum(f.stat().st_size for f in fmt.files(path)) > 0
    if fmt.suffixes and path.suffix:
        assert for_suffix(path.suffix) is fmt


def test_openvino_weights_are_a_companion(openvino_ir, tmp_path):
    fmt = sniff(openvino_ir)
    weights = openvino_ir.with_suffix(".bin")
    assert fmt.files(openvino_ir) == [openvino_ir, weights]
    assert fmt.size(openvino_ir) == openvino_ir.stat().st_size + weights.stat().st_size
    assert companion_files([openvino_ir, weights]) == {weights}
    lone = tmp_path / "tiny.xml"   # an IR without its weights: the structure check says so
    shutil.copy(openvino_ir, lone)
    with pytest.raises(ModelFormatError, match=r"tiny\.bin \(the IR's weights\) is missing.*keep the \.bin"):
        fmt.check_structure(lone)


def test_mlmodel_is_core_ml_not_onnx(coreml_models, onnx_file):
    mlmodel = coreml_models["mlmodel"]
    assert mlmodel.read_bytes()[:1] == onnx_file.read_bytes()[:1] == b"\x08"   # the same first protobuf tag
    assert sniff(mlmodel).name == "coreml" and sniff(onnx_file).name == "onnx"
    sniff(mlmodel).check_structure(mlmodel)


def test_inspect_reads_a_core_ml_model(coreml_models):
    from edgekit.inspect import inspect_model

    report = inspect_model(coreml_models["mlmodel"])
    assert report.format == "coreml" and [t.name for t in report.inputs] == ["x"]
    assert report.outputs[0].name == "y" and report.details["model type"] == "neuralNetwork"


def test_a_source_format_has_nothing_to_inspect(onnx_file, keras_file):
    fmt = sniff(keras_file)
    assert fmt.inspector is None and fmt.backend is None
    with pytest.raises(Exception, match="source format with nothing to inspect"):
        fmt.inspect(keras_file)
