"""Tests for the pure-Python TFLite reader (edgekit.tflite_model) and TFLite Metadata."""
from __future__ import annotations

import os
import random
import struct
import subprocess
import sys
import time
import warnings
from collections import Counter

import numpy as np
import pytest

from edgekit.errors import ModelFormatError
from edgekit.tflite_metadata import (METADATA_NAME, ModelMetadata, TensorMeta, read_metadata,
                                     write_metadata)
from edgekit.tflite_model import _OPS, _Reader, parse_tflite, read_tflite

LABELS = b"cat\ndog\nbird\nfish\nfrog\n"
JPEG_HEADER = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"


# ---------------------------------------------------------------- tiny models, built once


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return pytest.importorskip("tensorflow")


def _keras_net(tf, batch_size=None):
    """conv(relu6, stride 2) -> depthwise(relu) -> maxpool -> mean -> dense -> softmax."""
    inp = tf.keras.Input((16, 16, 3), batch_size=batch_size, name="image")
    x = tf.keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu6")(inp)
    x = tf.keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = tf.keras.layers.MaxPooling2D()(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    x = tf.keras.layers.Dense(5)(x)
    return tf.keras.Model(inp, tf.keras.layers.Softmax()(x))


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    """Paths of: float (dynamic batch), int8 (full integer, batch 1), offset (>2 GiB layout)."""
    tf = _tf()
    tf.keras.utils.set_random_seed(0)
    out = tmp_path_factory.mktemp("tflite")

    def save(name, converter):
        path = out / f"{name}.tflite"
        path.write_bytes(converter.convert())
        return str(path)

    net = _keras_net(tf)
    paths = {"float": save("float", tf.lite.TFLiteConverter.from_keras_model(net))}

    def representative():
        rng = np.random.default_rng(0)
        for _ in range(8):
            yield [rng.random((1, 16, 16, 3), dtype=np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(_keras_net(tf, batch_size=1))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    with warnings.catch_warnings():  # "statistics for quantized inputs": the dataset gives them
        warnings.simplefilter("ignore", UserWarning)
        paths["int8"] = save("int8", conv)

    conv = tf.lite.TFLiteConverter.from_keras_model(net)
    conv._experimental_use_buffer_offset = True  # weights after the flatbuffer, as for >2 GiB
    paths["offset"] = save("offset", conv)
    return paths


def _data(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _interpreter(content: bytes, delegates: bool = False):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    # Without XNNPACK, op details list the model's own operators and no DELEGATE node.
    resolver = (OpResolverType.AUTO if delegates
                else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp = Interpreter(model_content=content, experimental_op_resolver_type=resolver)
    interp.allocate_tensors()
    return interp


def _run(content: bytes) -> np.ndarray:
    interp = _interpreter(content, delegates=True)
    (inp,), (out,) = interp.get_input_details(), interp.get_output_details()
    x = np.random.default_rng(1).random(inp["shape"], dtype=np.float32)
    if inp["dtype"] != np.float32:
        scale, zero = inp["quantization"]
        x = np.clip(np.round(x / scale + zero), -128, 127).astype(inp["dtype"])
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    return interp.get_tensor(out["index"])


def _metadata() -> ModelMetadata:
    return ModelMetadata(
        name="tiny classifier", description="five animals", version="v2", author="edgekit",
        license="Apache-2.0",
        inputs=[TensorMeta(name="image", description="RGB image", mean=[127.5, 127.0, 126.5],
                           std=[127.5], color_space="RGB", min=[-1.0], max=[1.0])],
        outputs=[TensorMeta(name="probability", associated_files=[
            {"name": "labels.txt", "type": "TENSOR_AXIS_LABELS", "description": "animals"}])],
        associated_files=[{"name": "README.md", "type": "DESCRIPTIONS", "description": "about",
                           "locale": "en"}])


def _with_metadata(data: bytes) -> bytes:
    return write_metadata(data, _metadata(), {"labels.txt": LABELS, "README.md": b"# tiny\n"})


# ------------------------------------------------------------------- reading real models


def test_import_needs_no_tensorflow():
    code = ("import sys, edgekit.tflite_model, edgekit.tflite_metadata; "
            "print(sorted({'tensorflow', 'flatbuffers', 'numpy'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("kind", ["float", "int8", "offset"])
def test_tensors_match_interpreter(models, kind):
    data = _data(models[kind])
    model = read_tflite(models[kind])
    interp = _interpreter(data)
    tensors = model.subgraphs[0].tensors
    # Kernels may append scratch tensors after the model's own.
    details = [d for d in interp.get_tensor_details() if d["index"] < len(tensors)]
    assert len(details) == len(tensors)
    for detail in details:
        t = tensors[detail["index"]]
        assert (t.name, t.shape, t.dtype) == (detail["name"], list(detail["shape"]),
                                              np.dtype(detail["dtype"]).name)
        assert (t.shape_signature or t.shape) == list(detail["shape_signature"])
        q = detail["quantization_parameters"]
        if t.quantization is None:
            assert q["scales"].size == 0
        else:
            np.testing.assert_allclose(t.quantization.scale, q["scales"], rtol=1e-7)
            zero_points = t.quantization.zero_point
            # LiteRT reports one zero point for per-channel tensors whose zero points are equal.
            np.testing.assert_array_equal(np.broadcast_to(q["zero_points"], len(zero_points)),
                                          zero_points)
            assert t.quantization.quantized_dimension == q["quantized_dimension"]
    for ours, theirs in ((model.inputs(), interp.get_input_details()),
                         (model.outputs(), interp.get_output_details())):
        assert [t.index for t in ours] == [d["index"] for d in theirs]
        assert [t.shape for t in ours] == [list(d["shape"]) for d in theirs]
    assert model.version == 3 and model.file_size == len(data)


@pytest.mark.parametrize("kind", ["float", "int8"])
def test_operators_and_options(models, kind):
    model = read_tflite(models[kind])
    interp = _interpreter(_data(models[kind]))
    assert model.op_counts() == dict(Counter(d["op_name"] for d in interp._get_ops_details()))
    assert list(model.op_counts()) == sorted(model.op_counts())  # all counts are 1: by name
    conv, dw, pool, _mean, fc, softmax = model.subgraphs[0].operators
    assert (conv.name, conv.builtin) == ("CONV_2D", "CONV_2D")
    assert conv.options == {"padding": "SAME", "stride_w": 2, "stride_h": 2,
                            "fused_activation_function": "RELU6", "dilation_w_factor": 1,
                            "dilation_h_factor": 1}
    assert dw.options["fused_activation_function"] == "RELU"
    assert dw.options["depth_multiplier"] == 1
    assert pool.options == {"padding": "VALID", "stride_w": 2, "stride_h": 2, "filter_width": 2,
                            "filter_height": 2, "fused_activation_function": "NONE"}
    assert fc.options == {"fused_activation_function": "NONE", "keep_num_dims": False}
    assert softmax.options == {"beta": 1.0}
    assert fc.inputs[2] == -1  # optional bias absent
    for d in interp._get_ops_details():
        op = model.subgraphs[0].operators[d["index"]]
        assert (op.name, op.inputs, op.outputs) == (d["op_name"], list(d["inputs"]),
                                                    list(d["outputs"]))


def test_integer_and_dynamic_shapes(models):
    flt, int8 = read_tflite(models["float"]), read_tflite(models["int8"])
    assert int8.is_fully_integer() and not flt.is_fully_integer()
    # a free batch (-1 in the signature, 1 in the shape) is not a size computed at run time
    assert not flt.has_dynamic_shapes() and not int8.has_dynamic_shapes()
    assert flt.inputs()[0].shape_signature == [-1, 16, 16, 3]
    assert int8.inputs()[0].dtype == "int8" and int8.inputs()[0].quantization.zero_point == [-128]


@pytest.mark.parametrize("kind", ["float", "int8", "offset"])
def test_buffers_hold_the_constant_tensors(models, kind):
    model = read_tflite(models[kind])
    interp = _interpreter(_data(models[kind]))
    constants = [t for t in model.subgraphs[0].tensors if model.buffers[t.buffer].size]
    assert constants
    for t in constants:
        value = np.frombuffer(model.buffer_bytes(t.buffer), t.dtype).reshape(t.shape)
        np.testing.assert_array_equal(value, interp.get_tensor(t.index))
    # The converter lets equal constants share one buffer; it counts once.
    used = {t.buffer for t in constants}
    assert model.parameter_bytes() == sum(model.buffers[b].size for b in used)
    assert set(model.metadata) >= {"min_runtime_version"}


def test_offset_layout_keeps_data_after_the_flatbuffer(models):
    inline, offset = read_tflite(models["float"]), read_tflite(models["offset"])
    assert "buffer_location" in offset.metadata
    named = {t.name: t for t in inline.subgraphs[0].tensors}
    moved = 0
    for t in offset.subgraphs[0].tensors:
        if offset.buffers[t.buffer].size:
            assert offset.buffer_bytes(t.buffer) == inline.buffer_bytes(named[t.name].buffer)
            moved += offset.buffers[t.buffer].offset % 16 == 0
    assert moved and offset.parameter_bytes() == inline.parameter_bytes()


def test_signature_defs(models):
    model = read_tflite(models["float"])
    interp = _interpreter(_data(models["float"]))
    (sig,) = model.signature_defs
    runner = interp.get_signature_runner(sig.key)
    assert interp.get_signature_list() == {sig.key: {"inputs": list(sig.inputs),
                                                     "outputs": list(sig.outputs)}}
    assert sig.inputs == {k: d["index"] for k, d in runner.get_input_details().items()}
    assert sig.subgraph_index == 0


def test_custom_ops_and_extended_builtin_codes(models):
    from tensorflow.lite.python import schema_py_generated as schema
    import flatbuffers

    m = schema.ModelT.InitFromPackedBuf(_data(models["float"]), 0)
    conv_code = m.subgraphs[0].operators[0].opcodeIndex
    m.operatorCodes[conv_code].builtinCode = schema.BuiltinOperator.CUSTOM
    m.operatorCodes[conv_code].deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    m.operatorCodes[conv_code].customCode = "edgetpu-custom-op"
    m.subgraphs[0].operators[0].customOptions = list(range(40))
    softmax = m.subgraphs[0].operators[-1].opcodeIndex
    m.operatorCodes[softmax].deprecatedBuiltinCode = 127  # codes >= 127 live in builtin_code
    m.operatorCodes[softmax].builtinCode = schema.BuiltinOperator.STABLEHLO_ADD
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    model = parse_tflite(bytes(b.Output()))
    first, last = model.subgraphs[0].operators[0], model.subgraphs[0].operators[-1]
    assert (first.name, first.builtin, first.options) == (
        "edgetpu-custom-op", "CUSTOM", {"custom_options_size": 40})
    assert last.name == "STABLEHLO_ADD" and model.op_counts()["edgetpu-custom-op"] == 1
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    assert _OPS == tuple(names[i] for i in range(len(names)))


# ---------------------------------------------------------------------------- metadata


@pytest.mark.parametrize("kind", ["float", "int8", "offset"])
def test_metadata_round_trip_and_model_still_runs(models, kind):
    data = _data(models[kind])
    assert read_metadata(parse_tflite(data), data) is None
    out = _with_metadata(data)
    model = parse_tflite(out, "with_metadata.tflite")
    md = read_metadata(model, out)
    assert (md.name, md.description, md.version, md.author, md.license) == (
        "tiny classifier", "five animals", "v2", "edgekit", "Apache-2.0")
    (inp,), (outp,) = md.inputs, md.outputs
    assert (inp.name, inp.description, inp.color_space) == ("image", "RGB image", "RGB")
    assert (inp.mean, inp.std, inp.min, inp.max) == ([127.5, 127.0, 126.5], [127.5], [-1.0], [1.0])
    assert outp.color_space is None and outp.mean is None
    assert md.labels() == ["cat", "dog", "bird", "fish", "frog"]
    assert md.files == {"labels.txt": LABELS, "README.md": b"# tiny\n"}
    assert md.associated_files == [{"name": "README.md", "type": "DESCRIPTIONS",
                                    "description": "about", "locale": "en"}]
    assert md.min_parser_version == "1.0.0"
    assert model.buffer_bytes(model.metadata[METADATA_NAME])[4:8] == b"M001"
    np.testing.assert_array_equal(_run(out), _run(data))
    # Writing again replaces the entry and keeps the packed files.
    md.name, md.files = "renamed", {}
    again = write_metadata(out, md)
    model2 = parse_tflite(again)
    assert len(model2.buffers) == len(model.buffers)
    assert read_metadata(model2, again).name == "renamed"
    assert read_metadata(model2, again).files == {"labels.txt": LABELS, "README.md": b"# tiny\n"}
    np.testing.assert_array_equal(_run(again), _run(data))


def test_write_metadata_checks_and_defaults(models):
    data = _data(models["float"])
    with pytest.raises(ValueError, match=r"\['labels.txt'\] are named in the metadata"):
        write_metadata(data, _metadata(), {"README.md": b""})
    with pytest.raises(ValueError, match="describes 2 inputs and 1 outputs, the model has 1 and 1"):
        write_metadata(data, ModelMetadata(inputs=[TensorMeta(), TensorMeta()]))
    with pytest.raises(ValueError, match="unknown associated file type 'LABELS'"):
        write_metadata(data, ModelMetadata(associated_files=[{"name": "a", "type": "LABELS"}]))
    vocab = {"name": "vocab.txt", "type": "VOCABULARY", "description": "", "version": "3"}
    out = write_metadata(data, ModelMetadata(associated_files=[vocab]), {"vocab.txt": b"a"})
    md = read_metadata(parse_tflite(out), out)
    assert (md.associated_files, md.min_parser_version) == ([vocab], "1.4.1")
    blank = write_metadata(data, ModelMetadata(name="n"))
    md = read_metadata(parse_tflite(blank), blank)
    assert (md.name, len(md.inputs), len(md.outputs), md.labels(), md.files) == (
        "n", 1, 1, None, {})


def test_corrupt_metadata_raises(models):
    out = bytearray(_with_metadata(_data(models["float"])))
    model = parse_tflite(bytes(out), "m.tflite")
    meta = model.buffers[model.metadata[METADATA_NAME]]
    at = out.rindex(LABELS)
    bad_zip = bytes(out[:at]) + LABELS.upper() + bytes(out[at + len(LABELS):])  # CRC mismatch
    with pytest.raises(ModelFormatError, match="m.tflite is truncated or corrupt: the zip archive"):
        read_metadata(parse_tflite(bad_zip, "m.tflite"), bad_zip)
    struct.pack_into("<I", out, meta.offset, meta.size + 100)  # root offset out of the buffer
    with pytest.raises(ModelFormatError, match="metadata points past the end of the "
                                               "TFLITE_METADATA buffer"):
        read_metadata(model, bytes(out))
    out[meta.offset + 4:meta.offset + 8] = b"XXXX"
    with pytest.raises(ModelFormatError, match="buffer that is not TFLite Metadata"):
        read_metadata(model, bytes(out))


# ------------------------------------------------------------------------ corrupt input


@pytest.mark.parametrize("content, message", [
    (b"", r"^x.tflite is empty \(0 bytes\)\. re-export or re-download the model$"),
    (b"garbage", r"x.tflite is truncated or corrupt: only 7 bytes"),
    (JPEG_HEADER, r"x.tflite is not a TFLite model: expected file identifier 'TFL3' at bytes "
                  r"4..8, found a JPEG image"),
    (b"\x00" * 64, r"found b'\\x00\\x00\\x00\\x00'"),
    (b"\x08\x00\x00\x00TFL3", r"model points past the end of the file \(offset 8 of 8 bytes\)"),
])
def test_garbage_raises(content, message):
    with pytest.raises(ModelFormatError, match=message):
        parse_tflite(content, "x.tflite")


def test_bad_paths_raise(tmp_path):
    with pytest.raises(ModelFormatError, match="missing.tflite does not exist"):
        read_tflite(tmp_path / "missing.tflite")
    with pytest.raises(ModelFormatError, match="is a directory, not a .tflite file"):
        read_tflite(tmp_path)
    (tmp_path / "empty.tflite").write_bytes(b"")
    with pytest.raises(ModelFormatError, match=r"empty.tflite is empty \(0 bytes\)"):
        read_tflite(tmp_path / "empty.tflite")


def _parse_or_error(content: bytes) -> bool:
    """True when content parses, False on ModelFormatError; anything else fails the test."""
    start = time.perf_counter()
    try:
        model = parse_tflite(content, "fuzz.tflite")
        read_metadata(model, content)
        model.op_counts(), model.is_fully_integer(), model.parameter_bytes()
        return True
    except ModelFormatError as e:
        assert e.message.startswith("fuzz.tflite ") and "\n" not in str(e)
        return False
    finally:
        assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("kind", ["int8", "offset", "metadata"])
def test_truncated_files_raise(models, kind):
    data = _with_metadata(_data(models["float"])) if kind == "metadata" else _data(models[kind])
    cuts = np.linspace(1, len(data) - 1, 30).astype(int)
    results = [_parse_or_error(data[:n]) for n in cuts]
    assert results.count(False) >= 25
    with pytest.raises(ModelFormatError, match="is truncated or corrupt: .* points past the end"):
        parse_tflite(data[:len(data) // 2])


@pytest.mark.parametrize("kind", ["float", "int8", "metadata"])
def test_random_byte_corruption_never_crashes(models, kind):
    data = _with_metadata(_data(models["float"])) if kind == "metadata" else _data(models[kind])
    rng = random.Random(1234)
    for _ in range(200):
        corrupt = bytearray(data)
        corrupt[rng.randrange(len(data))] = rng.randrange(256)
        _parse_or_error(bytes(corrupt))


def test_specific_corruptions_are_named(models):
    data = _data(models["float"])
    sg = _Reader(data, "x").root("model").tables(2, "subgraph")[0]  # to find what to break

    bad = bytearray(data)
    struct.pack_into("<I", bad, sg._ref(0, "tensors"), 0xFFFFFFFF)
    with pytest.raises(ModelFormatError, match=r"x.tflite is truncated or corrupt: subgraph 0 "
                                               r"tensors has 4294967295 elements and runs past"):
        parse_tflite(bytes(bad), "x.tflite")

    bad = bytearray(data)
    op = sg.tables(3, "operator")[1]
    struct.pack_into("<i", bad, op.vector(1, 4, "inputs")[0], 99)
    with pytest.raises(ModelFormatError, match="operator 1 refers to tensor 99 but there are only "
                                               "12. re-export or re-download the model"):
        parse_tflite(bytes(bad), "x.tflite")

    bad = bytearray(data)
    tensor = sg.tables(0, "tensor")[7]
    struct.pack_into("<i", bad, tensor.pos, 1 << 30)  # vtable far before the file start
    with pytest.raises(ModelFormatError, match="tensor 7 vtable points before the start"):
        parse_tflite(bytes(bad), "x.tflite")

    bad = bytearray(data)
    bad[4:8] = b"TFL2"
    with pytest.raises(ModelFormatError, match="found b'TFL2'"):
        parse_tflite(bytes(bad), "x.tflite")


def _shared_shape_model(references: int, dims: int) -> bytes:
    """A model whose tensors all point at one tensor table with a large shape vector."""
    import flatbuffers

    b = flatbuffers.Builder(4 * dims + 1024)
    b.StartVector(4, dims, 4)
    for _ in range(dims):
        b.PrependInt32(1)
    shape = b.EndVector()
    b.StartObject(1)
    b.PrependUOffsetTRelativeSlot(0, shape, 0)
    tensor = b.EndObject()
    b.StartVector(4, references, 4)
    for _ in range(references):
        b.PrependUOffsetTRelative(tensor)
    tensors = b.EndVector()
    b.StartObject(1)
    b.PrependUOffsetTRelativeSlot(0, tensors, 0)
    subgraph = b.EndObject()
    b.StartVector(4, 1, 4)
    b.PrependUOffsetTRelative(subgraph)
    subgraphs = b.EndVector()
    b.StartObject(3)
    b.PrependUint32Slot(0, 3, 0)
    b.PrependUOffsetTRelativeSlot(2, subgraphs, 0)
    b.Finish(b.EndObject(), file_identifier=b"TFL3")
    return bytes(b.Output())


def test_overlapping_references_are_bounded():
    pytest.importorskip("flatbuffers")
    assert len(parse_tflite(_shared_shape_model(3, 1000)).subgraphs[0].tensors) == 3
    start = time.perf_counter()
    with pytest.raises(ModelFormatError, match="reference the same data over and over"):
        parse_tflite(_shared_shape_model(40, 100_000))
    assert time.perf_counter() - start < 2.0
