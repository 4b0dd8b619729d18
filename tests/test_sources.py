"""Sources: kinds sniffed from content, AutoML/SDK facts picked up without flags."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgekit import formats
from edgekit.convert import ConvertRequest, convert
from edgekit.errors import ModelFormatError
from edgekit.manifest import manifest_path
from edgekit.sources.base import load_source, read_labels

from conftest import CLASSES, SIZE


@pytest.mark.parametrize("fixture, kind", [
    ("keras_file", "keras"), ("h5_file", "keras-h5"), ("savedmodel_dir", "savedmodel"),
    ("tflite_float_file", "tflite"), ("onnx_file", "onnx"), ("torchscript_file", "torchscript"),
])
def test_kind_is_read_from_content_not_suffix(request, fixture, kind, tmp_path):
    path = request.getfixturevalue(fixture)
    assert formats.sniff(path).name == kind
    if path.is_file():  # a misleading suffix changes nothing
        renamed = tmp_path / (path.stem + ".bin")
        shutil.copy(path, renamed)
        assert formats.sniff(renamed).name == kind


def test_torch_export_file_is_a_source(torch_module, tmp_path):
    import torch

    path = tmp_path / "tiny.pt2"
    torch.export.save(torch.export.export(torch_module, (torch.zeros(1, 3, SIZE, SIZE),)), str(path))
    assert formats.sniff(path).name == "torch-export"
    source = load_source(path)
    assert source.inputs()[0].shape == [1, 3, SIZE, SIZE]  # read from the exported program
    x = np.random.default_rng(0).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)
    with torch.no_grad():
        expected = torch_module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(source.infer([x])[0], expected, rtol=1e-5, atol=1e-5)


def test_torchscript_without_input_size_asks_for_it(torchscript_file):
    source = load_source(torchscript_file)
    with pytest.raises(ModelFormatError, match="does not record its input size.*--input-size"):
        source.inputs()
    source.set_input_size([24, 20])    # what convert() resolved: a module records no shape, so it takes it
    assert source.inputs()[0].shape == [1, 3, 24, 20] and source.spatial_size() == [24, 20]


def test_set_input_size_keeps_a_static_size_and_fills_a_dynamic_one(onnx_file, torch_module, tmp_path):
    import torch

    from edgekit.errors import BadInput

    static = load_source(onnx_file)
    static.set_input_size([SIZE, SIZE])                      # the file's own size: accepted
    with pytest.raises(BadInput, match=rf"--input-size 24,24 contradicts onnx model .*, whose input is {SIZE}x{SIZE}"):
        static.set_input_size([24, 24])
    path = tmp_path / "dynamic.onnx"
    torch.onnx.export(torch_module, (torch.zeros(1, 3, SIZE, SIZE),), str(path), input_names=["images"],
                      dynamic_axes={"images": {2: "height", 3: "width"}}, dynamo=False)
    dynamic = load_source(path)
    with pytest.raises(ModelFormatError, match="dynamic dimensions"):
        dynamic.inputs()
    dynamic.set_input_size([24, 20])
    assert dynamic.inputs()[0].shape == [1, 3, 24, 20]
    x = np.random.default_rng(0).standard_normal((1, 3, 24, 20)).astype(np.float32)
    with torch.no_grad():
        expected = torch_module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(dynamic.infer([x])[0], expected, rtol=1e-5, atol=1e-5)


def _with_metadata(tflite_path: Path, out: Path, labels: list[str]) -> Path:
    from edgekit.tflite_metadata import ModelMetadata, TensorMeta, write_metadata

    meta = ModelMetadata(name="AutoML Vision Edge test model", description="image classifier",
                         inputs=[TensorMeta(name="image", mean=[127.5], std=[127.5], color_space="RGB")],
                         outputs=[TensorMeta(name="probability", associated_files=[
                             {"name": "dict.txt", "type": "TENSOR_AXIS_LABELS", "description": "labels"}])],
                         associated_files=[], files={})
    data = write_metadata(tflite_path.read_bytes(), meta, {"dict.txt": "\n".join(labels).encode()})
    out.write_bytes(data)
    return out


def test_tflite_metadata_fills_the_manifest_without_flags(tflite_float_file, tmp_path):
    labels = [f"class_{i}" for i in range(CLASSES)]
    model = _with_metadata(tflite_float_file, tmp_path / "automl.tflite", labels)
    source = load_source(model)
    assert source.facts.labels == labels and source.facts.labels_from == "tflite-metadata"
    assert source.facts.preprocess["mean"] == [127.5] * 3 and source.facts.preprocess["std"] == [127.5] * 3
    assert source.facts.preprocess["input_size"] == [SIZE, SIZE]
    assert source.facts.task == "classification"

    warnings: list[str] = []
    result = convert(str(model), ConvertRequest(targets=["openvino"], out_dir=tmp_path / "out"), warn=warnings.append)
    manifest = json.loads(manifest_path(Path(result.artifacts[0].path)).read_text())
    assert manifest["labels"] == labels
    assert manifest["preprocess"]["mean"] == [127.5] * 3 and manifest["preprocess"]["input_size"] == [SIZE, SIZE]
    assert manifest["task"] == "classification"
    assert not any("--mean" in w or "--std" in w for w in warnings), warnings
    assert result.artifacts[0].verify.status == "pass"


@pytest.mark.parametrize("name, content, expected", [
    ("labels.txt", "cat\ndog\n", ["cat", "dog"]),
    ("dict.txt", "cat\ndog\n", ["cat", "dog"]),
    ("labels.txt", "0 cat\n1 dog\n", ["cat", "dog"]),   # Coral-style label map
    ("labels.json", json.dumps({"0": "cat", "1": "dog"}), ["cat", "dog"]),
    ("labels.json", json.dumps(["cat", "dog"]), ["cat", "dog"]),
])
def test_labels_file_beside_model_is_picked_up(onnx_file, tmp_path, name, content, expected):
    folder = tmp_path / "export"
    folder.mkdir()
    model = folder / "model.onnx"
    shutil.copy(onnx_file, model)
    (folder / name).write_text(content)
    source = load_source(model)
    assert source.facts.labels == expected
    assert read_labels(folder / name) == expected


def test_float_tflite_without_signatures_converts_to_int8_openvino_and_onnx(tflite_float_file, photos_dir, tmp_path):
    from edgekit.tflite_model import read_tflite

    assert read_tflite(tflite_float_file).signature_defs == []
    result = convert(str(tflite_float_file), ConvertRequest(
        targets=["tflite", "openvino", "onnx"], precisions=["fp32", "int8"], out_dir=tmp_path, calib=str(photos_dir),
        calib_samples=32, verify_samples=32, mean=[127.5], std=[127.5], task="classification"))
    assert {(a.target, a.precision) for a in result.artifacts} == {
        (t, p) for t in ("tflite", "openvino", "onnx") for p in ("fp32", "int8")}
    assert all(a.verify.status == "pass" for a in result.artifacts), [a.verify.notes for a in result.artifacts]
    int8 = next(a for a in result.artifacts if a.target == "tflite" and a.precision == "int8")
    assert read_tflite(int8.path).is_fully_integer()
    assert "tflite → onnx → savedmodel → tflite" == int8.route


def test_a_greyscale_torch_module_takes_one_channel_and_a_wrong_one_is_one_line():
    """A PyTorch module records no input shape; --input-size made it [1, 3, H, W], and a
    greyscale module then failed in 'unexpected RuntimeError' (field corpus, torch_grey)."""
    torch = pytest.importorskip("torch")

    grey = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten())
    assert load_source(grey, [1, 3, 16, 16]).inputs()[0].shape == [1, 1, 16, 16]
    colour = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten())
    assert load_source(colour, [1, 3, 16, 16]).inputs()[0].shape == [1, 3, 16, 16]
    two = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), torch.nn.Flatten())
    with pytest.raises(ModelFormatError, match=r"runs on neither a \[1, 3, H, W\] nor a \[1, 1, H, W\] input of "
                                               r"16x16 pixels: .*expected input\[1, 3, 16, 16\] to have 2 channels"):
        load_source(two, [1, 3, 16, 16])
