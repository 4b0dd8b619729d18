"""Core ML from Keras, SavedModel, ONNX and TFLite sources, and the model card in every format.

Each format's metadata is read back with that format's own library (coremltools' spec, OpenVINO's
Core.read_model rt_info, onnx.load metadata_props, TFLite Metadata through the flatc-generated
reader of the official schema), never with edgekit's readers. Artifacts whose file edgekit
rewrote to add metadata run on their raw runtime against Keras itself.
"""
from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edgekit.convert import ConvertRequest, convert
from edgekit.errors import EdgekitError, UnsupportedRouteError
from edgekit.manifest import ModelCard, manifest_path
from edgekit.targets.base import TARGETS

from conftest import CLASSES, SIZE, _photo_batch, _photo_classes

pytestmark = pytest.mark.skipif(TARGETS.get("coreml").unavailable_reason() is not None,
                                reason=str(TARGETS.get("coreml").unavailable_reason()))

LABELS = [f"scene {i}" for i in range(CLASSES)]
CARD = {"description": "Tiny scene classifier for tests", "author": "Edge Kit Tests <tests@example.com>",
        "version": "1.2.0"}


def _application_like_net():
    """What Keras applications are made of, small: built-in preprocessing (Rescaling: the model
    takes raw 0-255 pixels), BatchNorm, depthwise convolution and a softmax head. (Hard-swish, as in
    MobileNetV3, converts too, but NNCF int8 of it scored cosine 0.967 on this non-VNNI CPU.)"""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3), batch_size=1, name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Activation("relu6")(x)
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="same")(x)
    x = keras.layers.Conv2D(16, 1, activation="relu6")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(CLASSES, activation="softmax", name="scores")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    pixels = _photo_batch() * 127.5 + 127.5   # conftest's photos, back to 0-255 pixels
    model.fit(pixels, _photo_classes(), batch_size=1, epochs=10, verbose=0)
    return model


@pytest.fixture(scope="session")
def classifier(tmp_path_factory):
    """flowers.keras with labels.txt and flowers.model_card.yaml beside it."""
    pytest.importorskip("tensorflow")
    import yaml

    folder = tmp_path_factory.mktemp("classifier")
    model = _application_like_net()
    path = folder / "flowers.keras"
    model.save(path)
    (folder / "labels.txt").write_text("\n".join(LABELS) + "\n")
    card = {**CARD, "outputs": {"scores": "probability of each scene"}}
    (folder / "flowers.model_card.yaml").write_text(yaml.safe_dump(card))
    return path, model


@pytest.fixture(scope="session")
def every_target(classifier, photos_dir, tmp_path_factory):
    """The issue's command: `edgekit convert flowers.keras --to coreml,tflite,openvino,onnx
    --precision int8 --calib photos/`, plus a licence and an input description as options."""
    out = tmp_path_factory.mktemp("every-target")
    # a real process: in click's test runner NNCF's progress bars would land in the JSON on stdout
    result = subprocess.run([
        sys.executable, "-m", "edgekit", "convert", str(classifier[0]), "--to", "coreml,tflite,openvino,onnx",
        "--precision", "int8", "--calib", str(photos_dir), "--calib-samples", "24", "--mean", "0", "--std", "1",
        "--license", "Apache-2.0", "--input-description", "image=RGB photo, raw 0-255 pixels",
        "-o", str(out), "--json"], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return {a["target"]: a for a in json.loads(result.stdout)}


def test_every_target_is_built_and_verified(every_target):
    assert set(every_target) == {"coreml", "tflite", "openvino", "onnx"}
    for name, artifact in every_target.items():
        verify = artifact["verify"]
        if name == "coreml":   # Core ML predicts on macOS only: its input program is the proof here
            assert verify["status"] == "structure-only", verify["notes"]
            steps = verify["steps"]
            assert [s["runtime"] for s in steps] == ["tensorflow"] and steps[0]["status"] == "pass"
            assert steps[0]["cosine"] >= 0.9999
        else:
            assert verify["status"] == "pass", (name, verify["notes"])
        manifest = json.loads(manifest_path(Path(artifact["path"])).read_text())
        assert manifest["model_card"] == {"name": "flowers", "license": "Apache-2.0", **CARD,
                                          "inputs": {"image": "RGB photo, raw 0-255 pixels"},
                                          "outputs": {"scores": "probability of each scene"}}
        assert manifest["labels"] == LABELS


def test_coreml_metadata_is_what_xcode_shows(every_target):
    import coremltools as ct

    spec = ct.models.MLModel(every_target["coreml"]["path"], skip_model_load=True).get_spec()
    meta = spec.description.metadata
    assert (meta.author, meta.license, meta.versionString, meta.shortDescription) == (
        CARD["author"], "Apache-2.0", "1.2.0", CARD["description"])
    assert meta.userDefined["name"] == "flowers"
    (image,) = spec.description.input
    assert image.shortDescription == "RGB photo, raw 0-255 pixels"
    assert image.type.WhichOneof("Type") == "imageType"
    assert (image.type.imageType.width, image.type.imageType.height) == (SIZE, SIZE)
    outputs = {f.name: f.shortDescription for f in spec.description.output}
    assert outputs[spec.description.predictedProbabilitiesName] == "probability of each scene"
    assert outputs[spec.description.predictedFeatureName] == "the class label with the highest score"
    serialized = spec.SerializeToString()   # the classifier's labels are constants of its program
    assert all(label.encode() in serialized for label in LABELS)


def _tflite_metadata(path: Path):
    """Model schema from TensorFlow's own generated reader, metadata from the schema's."""
    from tensorflow.lite.python import schema_py_generated as model_schema

    import tflite_metadata_schema_generated as metadata_schema

    data = path.read_bytes()
    model = model_schema.ModelT.InitFromPackedBuf(data, 0)
    (entry,) = [m for m in model.metadata if m.name == b"TFLITE_METADATA"]
    raw = bytes(model.buffers[entry.buffer].data)
    assert metadata_schema.ModelMetadata.ModelMetadataBufferHasIdentifier(raw, 0)
    files = zipfile.ZipFile(io.BytesIO(data))
    return metadata_schema.ModelMetadataT.InitFromPackedBuf(raw, 0), files, metadata_schema


def test_tflite_metadata_reads_back_with_the_official_schema(every_target):
    meta, files, schema = _tflite_metadata(Path(every_target["tflite"]["path"]))
    assert (meta.name, meta.description, meta.version, meta.author, meta.license) == (
        b"flowers", CARD["description"].encode(), b"1.2.0", CARD["author"].encode(), b"Apache-2.0")
    (subgraph,) = meta.subgraphMetadata
    (image,) = subgraph.inputTensorMetadata
    assert image.name == b"image" and image.description == b"RGB photo, raw 0-255 pixels"
    assert image.content.contentPropertiesType == schema.ContentProperties.ImageProperties
    assert image.content.contentProperties.colorSpace == schema.ColorSpaceType.RGB
    (unit,) = image.processUnits
    assert unit.optionsType == schema.ProcessUnitOptions.NormalizationOptions
    assert list(unit.options.mean) == [0.0] * 3 and list(unit.options.std) == [1.0] * 3
    (scores,) = subgraph.outputTensorMetadata
    assert scores.description == b"probability of each scene"
    (labels_file,) = scores.associatedFiles
    assert labels_file.type == schema.AssociatedFileType.TENSOR_AXIS_LABELS
    assert files.read(labels_file.name.decode()).decode().splitlines() == LABELS


def test_openvino_rt_info_reads_back_with_openvino(every_target):
    import openvino as ov

    model = ov.Core().read_model(every_target["openvino"]["path"])

    def info(*path):
        return model.get_rt_info(["model_info", *path]).astype(str)

    assert (info("name"), info("description"), info("author"), info("license"), info("version")) == (
        "flowers", CARD["description"], CARD["author"], "Apache-2.0", "1.2.0")
    assert info("inputs", model.inputs[0].get_any_name()) == "RGB photo, raw 0-255 pixels"
    assert info("outputs", model.outputs[0].get_any_name()) == "probability of each scene"


def test_onnx_metadata_props_read_back_with_onnx(every_target):
    import onnx

    model = onnx.load(every_target["onnx"]["path"])
    props = {p.key: p.value for p in model.metadata_props}
    assert props["model_author"] == CARD["author"] and props["model_license"] == "Apache-2.0"
    assert props["name"] == "flowers" and props["version"] == "1.2.0"
    assert model.doc_string == CARD["description"]
    assert model.graph.input[0].doc_string == "RGB photo, raw 0-255 pixels"
    assert model.graph.output[0].doc_string == "probability of each scene"


def test_rewritten_files_still_match_keras(classifier, every_target):
    """Adding metadata re-packs the TFLite flatbuffer and re-saves the ONNX protobuf: both must
    still compute what Keras computes, within int8 rounding (softmax scores in [0, 1]; 0.06 is
    about 15 steps of the uint8 output's 1/256 scale)."""
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    pixels = (_photo_batch()[:12] * 127.5 + 127.5).astype(np.float32)
    expected = np.asarray(classifier[1](pixels, training=False))

    interpreter = Interpreter(model_path=every_target["tflite"]["path"])
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    got = []
    for sample in pixels:
        scale, zero = inp["quantization"]
        interpreter.set_tensor(inp["index"], np.clip(np.round(sample / scale + zero), 0, 255).astype(np.uint8)[None])
        interpreter.invoke()
        scale, zero = out["quantization"]
        got.append((interpreter.get_tensor(out["index"]).astype(np.float32) - zero) * scale)
    np.testing.assert_allclose(np.concatenate(got), expected, atol=0.06)

    session = ort.InferenceSession(every_target["onnx"]["path"], providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    got = np.concatenate([session.run(None, {name: sample[None]})[0] for sample in pixels])
    np.testing.assert_allclose(got, expected, atol=0.06)


def test_openvino_int8_matches_keras_on_the_raw_runtime(classifier, every_target):
    """The int8 IR (NNCF; its accuracy control keeps ops in float where plain int8 strays, as the
    Dense + softmax head of this net did at cosine 0.95) against Keras itself, on OpenVINO."""
    import openvino as ov

    pixels = (_photo_batch()[:12] * 127.5 + 127.5).astype(np.float32)
    expected = np.asarray(classifier[1](pixels, training=False))
    compiled = ov.Core().compile_model(every_target["openvino"]["path"], "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    layout_nchw = list(compiled.inputs[0].shape)[1] == 3
    got = np.concatenate([compiled([(s.transpose(2, 0, 1) if layout_nchw else s)[None]])[0] for s in pixels])
    # int8 activations move softmax scores by up to ~0.1 on hesitant photos: each score within
    # 0.15, the scores at mean cosine >= 0.98 (verify's int8 gate), and the same top-1 wherever
    # Keras leads its runner-up by 0.1 or more (where it hesitates, top-1 flips under any noise)
    np.testing.assert_allclose(got, expected, atol=0.15)
    cosine = (got * expected).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(expected, axis=1)
    runner_up, top = np.sort(expected, axis=1)[:, -2:].T
    decisive = top - runner_up >= 0.1
    assert cosine.mean() >= 0.98 and decisive.sum() >= 6, (cosine, decisive)
    np.testing.assert_array_equal(got.argmax(1)[decisive], expected.argmax(1)[decisive])


def test_inspect_shows_the_metadata_of_every_format(every_target, run_cli):
    for name, artifact in every_target.items():
        code, out, err = run_cli("inspect", artifact["path"], "--json")
        assert code == 0, err
        metadata = json.loads(out)["metadata"]
        assert (metadata["author"], metadata["license"], metadata["version"]) == (
            CARD["author"], "Apache-2.0", "1.2.0"), name
        assert "probability of each scene" in metadata["outputs"].values(), name
        code, out, _ = run_cli("inspect", artifact["path"])
        assert code == 0 and "model metadata" in out and "Apache-2.0" in out


def test_an_op_coremltools_lacks_is_named(tmp_path):
    """A true refusal names the op, read from coremltools' own error."""
    tf = pytest.importorskip("tensorflow")

    class LogGamma(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec((1, SIZE, SIZE, 3), tf.float32)])
        def serve(self, image):
            return {"scores": tf.reduce_mean(tf.math.lgamma(image + 3.0), axis=[1, 2])}

    module = LogGamma()
    tf.saved_model.save(module, str(tmp_path / "lgamma"), signatures={"serving_default": module.serve})
    with pytest.raises(UnsupportedRouteError, match=r"coremltools cannot convert the tensorflow op 'Lgamma'.*"
                                              r"replace that op in the model, or try the other targets"):
        convert(str(tmp_path / "lgamma"), ConvertRequest(targets=["coreml"], out_dir=tmp_path / "out",
                                                         verify=False, mean=[127.5], std=[127.5], task="other"))
    assert not list((tmp_path / "out").glob("*.mlpackage"))


@pytest.mark.parametrize("frontend, message, remedy", [
    # no target is known to compute it (TFLite, OpenVINO and tf2onnx lack it): none is promised
    ("tensorflow", "Conversion for TF op 'Lgamma' not implemented.", "or try the other targets (convert builds "
                                                                     "every target it can)"),
    ("tensorflow", "Conversion for TF op 'Erfinv' not implemented.", "with an approximation built from builtin ops"),
    # TFLite has no kernel and OpenVINO no exact rule for it: only ONNX Runtime is a way out
    ("tensorflow", "Conversion for TF op 'ResizeBicubic' not implemented.", "use bilinear resize (Keras "
                                                                            "UpSampling2D/Resizing interpolation="
                                                                            "'bilinear'), or convert to onnx"),
    # the route to TFLite makes floor modulo of it (edgekit.bridges.onnx_to_savedmodel refuses it)
    ("torch", "PyTorch convert function for op 'fmod' not implemented.", "or convert to openvino or onnx"),
])
def test_a_missing_op_names_only_targets_that_compute_it(frontend, message, remedy):
    from edgekit.targets.coreml import _conversion_error

    error = _conversion_error(NotImplementedError(message), frontend)
    assert isinstance(error, UnsupportedRouteError) and error.one_line().endswith(remedy), error.one_line()


def test_model_card_mistakes_are_one_line_errors(classifier, tmp_path, run_cli):
    model = tmp_path / "m.keras"
    model.write_bytes(classifier[0].read_bytes())
    (tmp_path / "m.model_card.yaml").write_text("author: x\nlicence: MIT\n")
    code, _, err = run_cli("convert", model, "--to", "coreml", "--no-verify", "-o", tmp_path / "out")
    assert code == 2 and err.strip().count("\n") == 0
    assert "model card" in err and "unknown field(s) licence" in err and "valid fields:" in err
    (tmp_path / "m.model_card.yaml").write_text("author: x\n")
    code, _, err = run_cli("convert", model, "--to", "coreml", "--no-verify", "--output-description", "logits=x",
                           "-o", tmp_path / "out")
    assert code == 2 and "the model has no output named 'logits'. its outputs are: scores" in err
    code, _, err = run_cli("convert", model, "--to", "coreml", "--input-description", "RGB photo")
    assert code == 2 and "--input-description 'RGB photo' is not NAME=TEXT" in err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_model_card_file_schema(tmp_path):
    from edgekit.modelcard import check_tensor_names, find_card, read_card, resolve_card

    model = tmp_path / "net.onnx"
    model.write_bytes(b"")
    assert find_card(model) is None
    (tmp_path / "model_card.yaml").write_text("name: folder card\n")
    assert find_card(model) == tmp_path / "model_card.yaml"
    (tmp_path / "net.model_card.yaml").write_text("name: Net\nversion: 2\ninputs: {images: photos}\n")
    assert find_card(model) == tmp_path / "net.model_card.yaml"   # the model's own card wins
    assert read_card(find_card(model)) == ModelCard(name="Net", version="2", inputs={"images": "photos"})
    card, path = resolve_card(model, ModelCard(version="3", author="B", outputs={"logits": "scores"}))
    assert (card.name, card.version, card.author) == ("Net", "3", "B")   # options override the file
    check_tensor_names(card, path, ModelCard(), ["images"], ["logits"])
    with pytest.raises(EdgekitError, match=r"no input named 'images' \(model card .*net.model_card.yaml\)"):
        check_tensor_names(card, path, ModelCard(), ["input"], ["logits"])
    (tmp_path / "net.model_card.yaml").write_text("inputs: [photos]\n")
    with pytest.raises(EdgekitError, match=r"'inputs' must map tensor names to descriptions"):
        read_card(tmp_path / "net.model_card.yaml")
