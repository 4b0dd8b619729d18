"""Edge TPU: offline analyzer on tiny int8 models built here, the compiler-log parser on real public
compiler outputs (tests/fixtures/edgetpu_logs/README.md names each source), the compiler driver's
command line and absent-compiler path, the edgetpu runtime's errors, and the CLI."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from edgekit.edgetpu import ops as tpu
from edgekit.edgetpu.analyze import analyze
from edgekit.edgetpu.logparse import merge, parse_log, parse_output
from edgekit.edgetpu.report import EdgeTPUReport, side_by_side
from edgekit.errors import EdgekitError

LOGS = Path(__file__).parent / "fixtures" / "edgetpu_logs"
KiB, MiB = 1024, 1024 ** 2

# file -> exact numbers the compiler printed (or that its table adds up to, for .log files)
LOG_EXPECTATIONS = {
    "tiny_yolo_v14_edgetpu.log": dict(model="tiny_yolo.tflite", compiler_version="14.1.317412892", ops_total=25,
                                      ops_on_tpu=19, ops_on_cpu=6, rows=8),
    "mnist4_v15_edgetpu.log": dict(model="mnist4.tflite", compiler_version="15.0.340273435", ops_total=10,
                                   ops_on_tpu=8, ops_on_cpu=2, rows=7),
    "mnist7_v15_edgetpu.log": dict(model="mnist7.tflite", compiler_version="15.0.340273435", ops_total=8,
                                   ops_on_tpu=8, ops_on_cpu=0, rows=5),
    "yolov3_tiny_v15.stdout": dict(model="yolov3-tiny_int8.tflite", compiler_version="15.0.340273435", ops_total=36,
                                   ops_on_tpu=2, ops_on_cpu=34, partitions=1, rows=9, on_chip_bytes=3 * KiB,
                                   on_chip_remaining_bytes=round(7.67 * MiB), off_chip_bytes=0,
                                   input_size_bytes=round(8.58 * MiB), output_size_bytes=round(8.70 * MiB)),
    "yolov5s_v15.stdout": dict(model="yolov5s_int8.tflite", compiler_version="15.0.340273435", ops_total=294,
                               ops_on_tpu=1, ops_on_cpu=293, partitions=1, rows=18, on_chip_bytes=0,
                               on_chip_remaining_bytes=round(8.05 * MiB), off_chip_bytes=0),
    "issue572_offchip_v16.stdout": dict(model="quantized_model.tflite", compiler_version="16.0.384591198",
                                        ops_total=50, ops_on_tpu=50, ops_on_cpu=0, partitions=1, rows=0,
                                        on_chip_bytes=round(604.5 * KiB), on_chip_remaining_bytes=round(511.5 * KiB),
                                        off_chip_bytes=round(3.45 * MiB)),
    "issue168_not_quantized_v14.stdout": dict(model="my_mnist_quant.tflite", compiler_version="14.1.317412892",
                                              error="Model not quantized", ops_total=0),
    "yolov5n_v16_edgetpu.log": dict(model="yolov5n-int8.tflite", compiler_version="16.0.384591198", ops_total=262,
                                    ops_on_tpu=262, ops_on_cpu=0, rows=11),
    "issue169_v2.stdout": dict(model="model_classifier_CNN.tflite", compiler_version="2.0.291256449", ops_total=13,
                               ops_on_tpu=13, ops_on_cpu=0, partitions=1, rows=6, on_chip_bytes=round(891.5 * KiB),
                               on_chip_remaining_bytes=round(5.95 * MiB) - round(891.5 * KiB), off_chip_bytes=0),
}


def _parse(path: Path) -> EdgeTPUReport:
    text = path.read_text()
    if path.suffix == ".log":
        return parse_log(text)
    (report,) = parse_output(text)
    return report


@pytest.mark.parametrize("name", sorted(LOG_EXPECTATIONS))
def test_real_compiler_outputs_parse_to_exact_numbers(name):
    report = _parse(LOGS / name)
    expected = dict(LOG_EXPECTATIONS[name])
    assert len(report.rows) == expected.pop("rows", 0)
    for key, value in expected.items():
        assert getattr(report, key) == value, key
    assert report.kind == "compiler"
    if report.rows:
        assert sum(r.count for r in report.rows) == report.ops_total
        assert sum(r.count for r in report.rows if r.status == tpu.MAPPED) == report.ops_on_tpu


def test_parsed_statuses_use_the_compilers_wording():
    yolov5 = _parse(LOGS / "yolov5s_v15.stdout")
    statuses = {(r.op, r.status): r.count for r in yolov5.rows}
    assert statuses[("TRANSPOSE", tpu.NOT_SUPPORTED)] == 3
    assert statuses[("STRIDED_SLICE", tpu.NON_UNIT_STRIDES)] == 4
    assert statuses[("MUL", tpu.MULTIPLE_SUBGRAPHS)] == 80
    mnist4 = {r.op: r.status for r in _parse(LOGS / "mnist4_v15_edgetpu.log").rows}
    assert mnist4["DEQUANTIZE"] == tpu.UNSUPPORTED_TYPE and mnist4["QUANTIZE"] == tpu.UNSPECIFIED
    tiny = {(r.op, r.status) for r in _parse(LOGS / "tiny_yolo_v14_edgetpu.log").rows}
    assert ("RESIZE_NEAREST_NEIGHBOR", tpu.VERSION_NOT_SUPPORTED) in tiny


def test_stdout_and_log_merge_and_compare():
    stdout = parse_output((LOGS / "yolov3_tiny_v15.stdout").read_text())[0]
    merged = merge(stdout, parse_log((LOGS / "tiny_yolo_v14_edgetpu.log").read_text()))
    assert merged.off_chip_bytes == 0 and len(merged.rows) == 8   # memory from stdout, rows from the log
    mnist4, mnist7 = _parse(LOGS / "mnist4_v15_edgetpu.log"), _parse(LOGS / "mnist7_v15_edgetpu.log")
    rows = {r["op"]: r for r in side_by_side(mnist7, mnist4)}
    assert rows["CONV_2D"]["agree"] and not rows["DEQUANTIZE"]["agree"]
    assert rows["DEQUANTIZE"]["compiler"] == {tpu.UNSUPPORTED_TYPE: 1} and rows["DEQUANTIZE"]["predicted"] == {}


def test_parser_reports_garbage_as_an_error_not_a_crash():
    (report,) = parse_output("Segmentation fault (core dumped)\n")
    assert report.error and report.ops_total == 0


# ---------------------------------------------------------------- models built here


def _int8(model, path: Path, builtins_fallback: bool = False, float_model: bool = False) -> Path:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if not float_model:
        rng = np.random.default_rng(0)
        shape = (1, *model.input_shape[1:])
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([rng.random(shape, dtype=np.float32) * 2 - 1] for _ in range(16))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8] + (
            [tf.lite.OpsSet.TFLITE_BUILTINS] if builtins_fallback else [])
        converter.inference_input_type = converter.inference_output_type = tf.uint8
    path.write_bytes(converter.convert())
    return path


def _mobilenet(keras, batch_size=1):
    """MobileNet-style: Conv2D / DepthwiseConv2D / BatchNorm / ReLU6 / GlobalAveragePooling / Dense."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((64, 64, 3), batch_size=batch_size)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False)(inputs)
    x = keras.layers.ReLU(6.0)(keras.layers.BatchNormalization()(x))
    for filters, stride in ((32, 1), (64, 2), (64, 1), (128, 2)):
        x = keras.layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x)
        x = keras.layers.ReLU(6.0)(keras.layers.BatchNormalization()(x))
        x = keras.layers.Conv2D(filters, 1, use_bias=False)(x)
        x = keras.layers.ReLU(6.0)(keras.layers.BatchNormalization()(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(100)(x))


def _free_size(keras):
    """A fully convolutional net with free height and width: shape_signature [1, -1, -1, 3]."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, None, 3), batch_size=1)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(x)))


def _upsample(keras):
    """conv -> tf.image.resize(nearest) as YOLOv5's TF export upsamples (TF2: RESIZE_NEAREST_NEIGHBOR
    v3, half_pixel_centers) -> conv."""
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3), batch_size=1)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inputs)
    x = keras.layers.Lambda(lambda t: tf.image.resize(t, (16, 16), method="nearest"))(x)
    return keras.Model(inputs, keras.layers.Conv2D(4, 3, padding="same")(x))


def _with_middle(keras, layer, channels=8):
    """conv -> conv -> LAYER -> conv -> conv -> pool -> dense: the unsupported op sits in the middle."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3), batch_size=1)
    x = keras.layers.Conv2D(channels, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(channels, 3, padding="same", activation="relu")(x)
    x = layer(x)
    x = keras.layers.Conv2D(channels, 3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(channels, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(4)(x))


@pytest.fixture(scope="session")
def tpu_models(tmp_path_factory):
    """Every model of this file, converted once per session (a few seconds each)."""
    pytest.importorskip("tensorflow")
    import keras
    import tensorflow as tf

    folder = tmp_path_factory.mktemp("edgetpu")
    mobilenet = _mobilenet(keras)
    lam = keras.layers.Lambda
    five_d = lam(lambda t: tf.reshape(tf.transpose(tf.reshape(t, [1, 16, 16, 2, 4]), [0, 1, 2, 4, 3]), [1, 16, 16, 8]))
    models = {
        "mobilenet": _int8(mobilenet, folder / "mobilenet.tflite"),
        "sin": _int8(_with_middle(keras, lam(tf.sin)), folder / "sin.tflite", builtins_fallback=True),
        "floor_mod": _int8(_with_middle(keras, lam(lambda t: tf.math.floormod(t, 0.5))), folder / "floor_mod.tflite",
                           builtins_fallback=True),
        "five_d": _int8(_with_middle(keras, five_d), folder / "five_d.tflite"),
        "hard_swish": _int8(_with_middle(keras, keras.layers.Activation("hard_swish")), folder / "hard_swish.tflite"),
        "float": _int8(mobilenet, folder / "float.tflite", float_model=True),
        "dynamic": _int8(_free_size(keras), folder / "dynamic.tflite", float_model=True),
        "free_batch": _int8(_mobilenet(keras, batch_size=None), folder / "free_batch.tflite"),
        "upsample": _int8(_upsample(keras), folder / "upsample.tflite"),
    }
    models["mobilenet_keras"] = folder / "mobilenet.keras"
    mobilenet.save(models["mobilenet_keras"])
    data = models["mobilenet"].read_bytes()
    models["truncated"] = folder / "truncated.tflite"
    models["truncated"].write_bytes(data[: len(data) // 3])
    models["not_tflite"] = folder / "notes.tflite"
    models["not_tflite"].write_text("these are my notes, not a model\n")
    return {"paths": models, "mobilenet_keras": mobilenet}


def _int8_weight_bytes(keras_model) -> int:
    """Independent of the flatbuffer: 1 byte per conv/dense kernel weight, 4 per int32 bias channel
    (batch norm folds into a per-output-channel bias)."""
    total = 0
    for layer in keras_model.layers:
        kernels = [w for w in layer.weights if "kernel" in w.path]
        for kernel in kernels:
            total += int(np.prod(kernel.shape)) + 4 * int(kernel.shape[-1] if "depthwise" not in kernel.path
                                                          else kernel.shape[-2])
    return total


def test_mobilenet_style_int8_is_predicted_fully_mapped(tpu_models):
    report = analyze(tpu_models["paths"]["mobilenet"])
    assert report.partitions == 1 and report.split is None
    assert report.ops_on_cpu == 0 and report.ops_on_tpu == report.ops_total
    assert all(row.status == tpu.MAPPED for row in report.rows)
    assert {r.op for r in report.rows} >= {"CONV_2D", "DEPTHWISE_CONV_2D", "MEAN", "FULLY_CONNECTED", "QUANTIZE"}
    expected = _int8_weight_bytes(tpu_models["mobilenet_keras"])
    assert abs(report.parameter_bytes - expected) <= 0.10 * expected, (report.parameter_bytes, expected)
    assert report.on_chip_bytes == report.parameter_bytes and report.off_chip_bytes == 0


@pytest.mark.parametrize("name, split_op, cause", [
    ("sin", "DEQUANTIZE", "SIN"),            # float island: the converter dequantizes for SIN
    ("floor_mod", "DEQUANTIZE", "FLOOR_MOD"),
    ("five_d", "RESHAPE", "RESHAPE"),        # a 5-D reshape: more than 3 dims > 1
    ("hard_swish", "HARD_SWISH", "HARD_SWISH"),
])
def test_split_point_is_predicted_at_exactly_the_unsupported_op(tpu_models, name, split_op, cause):
    from edgekit.tflite_model import read_tflite

    model = read_tflite(tpu_models["paths"][name])
    operators = model.subgraphs[0].operators
    culprit = next(op for op in operators if op.name == cause if cause != "RESHAPE" or any(
        len(model.subgraphs[0].tensors[i].shape) == 5 for i in op.outputs))
    expected_split = culprit.index - 1 if split_op == "DEQUANTIZE" else culprit.index
    assert operators[expected_split].name == split_op
    report = analyze(model)
    assert report.split["index"] == expected_split and report.split["op"] == split_op
    assert report.split["cause"] == cause and report.split["cause_index"] == culprit.index
    # everything before the split that is integer maps; the split op and every later op is on the CPU
    assert report.placement[:expected_split] == ["tpu"] * expected_split
    assert report.placement[expected_split:] == ["cpu"] * (len(operators) - expected_split)
    later_convs = [r for r in report.rows if r.op == "CONV_2D" and r.status == tpu.MULTIPLE_SUBGRAPHS]
    assert later_convs and later_convs[0].count == 2
    assert report.partitions == 1 and report.ops_on_tpu == expected_split


def test_split_reasons_and_suggestions(tpu_models):
    rows = {r.op: r for r in analyze(tpu_models["paths"]["hard_swish"]).rows}
    assert rows["HARD_SWISH"].status == tpu.NOT_SUPPORTED
    assert "replace HARD_SWISH with ReLU6" in rows["HARD_SWISH"].suggestion
    five_d = [r for r in analyze(tpu_models["paths"]["five_d"]).rows if r.op == "RESHAPE"][0]
    assert five_d.status == tpu.UNSUPPORTED_RANK and "avoid 5-D reshapes" in five_d.suggestion
    sin = {r.op: r for r in analyze(tpu_models["paths"]["sin"]).rows}
    assert sin["SIN"].status == tpu.UNSUPPORTED_TYPE and "SIN" in sin["DEQUANTIZE"].reason


def test_resize_nearest_v3_maps_from_compiler_16_only(tpu_models):
    """Compiler 16 maps RESIZE_NEAREST_NEIGHBOR v3 (fixture yolov5n_v16_edgetpu.log); 14 and 15
    answer "Operation version not supported" (tiny_yolo_v14_edgetpu.log, google-coral/edgetpu#420).
    Where it maps, the compiler still decides by size: the prediction says "may not map"."""
    from edgekit.tflite_model import read_tflite

    model = read_tflite(tpu_models["paths"]["upsample"])
    resize = next(op for op in model.subgraphs[0].operators if op.name == "RESIZE_NEAREST_NEIGHBOR")
    assert resize.version == 3
    rows = {r.op: r for r in analyze(model, compiler=16).rows}
    assert rows["RESIZE_NEAREST_NEIGHBOR"].status == tpu.MAY_NOT_MAP
    assert "Depending on input/output size" in rows["RESIZE_NEAREST_NEIGHBOR"].reason
    report = analyze(model, compiler=16)
    assert report.split is None and report.ops_on_cpu == 0 and any("decides by tensor size" in n for n in report.notes)
    for old in (14, 15):
        rows = {r.op: r for r in analyze(model, compiler=old).rows}
        assert rows["RESIZE_NEAREST_NEIGHBOR"].status == tpu.VERSION_NOT_SUPPORTED
        assert f"edgetpu_compiler {old} knows up to 2" in rows["RESIZE_NEAREST_NEIGHBOR"].reason


def test_free_batch_is_not_a_dynamic_shape(tpu_models):
    """batch -1 in the signature (every Keras export), batch 1 in the shape: the compiler runs it."""
    from edgekit.tflite_model import read_tflite

    model = read_tflite(tpu_models["paths"]["free_batch"])
    assert model.inputs()[0].shape_signature[0] == -1 and model.inputs()[0].shape[0] == 1
    assert not model.has_dynamic_shapes()
    report = analyze(model)
    assert report.ops_on_cpu == 0 and report.split is None


def test_ssd_postprocess_stays_on_the_cpu_after_the_segment(tmp_path):
    """Coral's SSD layout: int8 graph, DEQUANTIZE, TFLite_Detection_PostProcess on the CPU. The
    post-processing op neither refuses the model nor splits the Edge TPU segment."""
    pytest.importorskip("tensorflow")
    from field.tflite_variants import ssd_postprocess_int8

    from edgekit.tflite_model import read_tflite

    path = tmp_path / "ssd_int8.tflite"
    path.write_bytes(ssd_postprocess_int8())
    model = read_tflite(path)
    assert model.is_fully_integer()
    report = analyze(model)
    assert report.split is None and report.partitions == 1
    on_cpu = [op.name for op, where in zip(model.subgraphs[0].operators, report.placement) if where == "cpu"]
    assert sorted(on_cpu) == ["DEQUANTIZE", "DEQUANTIZE", "TFLite_Detection_PostProcess"]
    rows = {r.op: r for r in report.rows}
    assert "after the Edge TPU segment" in rows["TFLite_Detection_PostProcess"].reason
    assert rows["CONV_2D"].status == tpu.MAPPED and rows["CONV_2D"].count == 5


def test_fully_connected_keep_num_dims_is_a_version_the_compiler_rejects(tmp_path):
    pytest.importorskip("tensorflow")
    import keras

    inputs = keras.Input((4, 8, 8), batch_size=1)
    outputs = keras.layers.Dense(6)(keras.layers.Conv2D(8, 1)(inputs))    # Dense on a 4-D tensor
    path = _int8(keras.Model(inputs, outputs), tmp_path / "fc.tflite")
    rows = {r.op: r for r in analyze(path).rows}
    assert rows["FULLY_CONNECTED"].status == tpu.VERSION_NOT_SUPPORTED
    assert "keep_num_dims" in rows["FULLY_CONNECTED"].reason


@pytest.mark.parametrize("name, message", [
    ("float", r"^error: float\.tflite is not fully integer-quantized: \d+ float tensors, first at op 0 CONV_2D\. "),
    ("dynamic", r"^error: dynamic\.tflite has dynamic shapes: input '.*' is \[1, -1, -1, 3\]\. "),
    ("truncated", r"^error: .*truncated\.tflite is truncated or corrupt: "),
    ("not_tflite", r"^error: .*notes\.tflite is not a TFLite model: expected file identifier 'TFL3'"),
])
def test_bad_input_gives_one_line_diagnosis_and_exit_2(tpu_models, run_cli, name, message):
    import re

    code, out, err = run_cli("edgetpu", "check", tpu_models["paths"][name])
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert re.match(message, err), err


def test_float_model_counts_its_float_tensors(tpu_models):
    with pytest.raises(EdgekitError, match=r"not fully integer-quantized: (\d+) float tensors") as info:
        analyze(tpu_models["paths"]["float"])
    from edgekit.tflite_model import read_tflite

    graph = read_tflite(tpu_models["paths"]["float"]).subgraphs[0]
    used = {i for op in graph.operators for i in (*op.inputs, *op.outputs) if i >= 0}
    floats = sum(1 for i in used if graph.tensors[i].dtype == "float32")
    assert f": {floats} float tensors" in str(info.value)


def test_check_cli_table_and_json(tpu_models, run_cli):
    code, out, _ = run_cli("edgetpu", "check", tpu_models["paths"]["sin"], "--json")
    assert code == 0
    data = json.loads(out)["predicted"]
    assert data["split"]["cause"] == "SIN" and data["ops_on_cpu"] > 0 and data["partitions"] == 1
    code, out, _ = run_cli("edgetpu", "check", tpu_models["paths"]["mobilenet"])
    assert code == 0 and tpu.MAPPED in out and "on CPU: 0" in out
    code, out, _ = run_cli("edgetpu", "check", tpu_models["paths"]["mobilenet"], "--log",
                           LOGS / "mnist7_v15_edgetpu.log", "--json")
    assert code == 0 and json.loads(out)["side_by_side"]


def test_check_help_has_examples(run_cli):
    for command in (["edgetpu", "--help"], ["edgetpu", "check", "--help"], ["edgetpu", "compile", "--help"]):
        code, out, _ = run_cli(*command)
        assert code == 0 and "Examples:" in out


def test_convert_to_edgetpu_stores_the_report_and_says_how_to_get_the_compiler(tpu_models, run_cli, tmp_path,
                                                                                monkeypatch):
    from edgekit.edgetpu.compiler import find_compiler
    from edgekit.manifest import manifest_path

    monkeypatch.delenv("EDGEKIT_EDGETPU_COMPILER", raising=False)
    code, out, err = run_cli("convert", tpu_models["paths"]["mobilenet_keras"], "--to", "edgetpu", "--precision",
                             "int8", "--calib", "synthetic", "--mean", "127.5", "--std", "127.5", "-o", tmp_path,
                             "--no-verify", "--json")   # untrained weights: parity is test_targets' job
    assert code == 0, err
    (artifact,) = json.loads(out)
    ready = Path(artifact["path"])
    assert ready.name == "mobilenet_int8_edgetpu_ready.tflite" and artifact["verify"]["status"] == "skipped"
    edgetpu = json.loads(manifest_path(ready).read_text())["edgetpu"]
    assert edgetpu["predicted"]["ops_on_cpu"] == 0 and edgetpu["predicted"]["partitions"] == 1
    assert edgetpu["predicted"] == analyze(ready).to_dict()
    if find_compiler() is None:
        assert edgetpu["compiled"] is None
        notes = [line for line in err.splitlines() if "was not compiled" in line]
        assert len(notes) == 1 and "scripts/edgetpu-compiler/edgetpu_compiler.sh" in notes[0]
        assert sorted(p.name for p in tmp_path.iterdir()) == [ready.name, ready.name + ".edgekit.json"]
    else:
        compiled = tmp_path / edgetpu["compiled"]["artifact"]
        assert compiled.name == "mobilenet_int8_edgetpu.tflite" and compiled.is_file()
        assert edgetpu["compiled"]["compiler_version"]


# ---------------------------------------------------------------- compiler driver


def test_compile_without_compiler_names_the_container_recipe(tpu_models, run_cli, monkeypatch):
    from edgekit.edgetpu.compiler import find_compiler

    monkeypatch.delenv("EDGEKIT_EDGETPU_COMPILER", raising=False)
    if find_compiler():
        pytest.skip("edgetpu_compiler is installed here")
    code, out, err = run_cli("edgetpu", "compile", tpu_models["paths"]["mobilenet"])
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "edgetpu_compiler was not found" in err and "scripts/edgetpu-compiler/edgetpu_compiler.sh" in err


@pytest.mark.parametrize("compiler", [None, "/bin/false"], ids=["no compiler", "compiler fails"])
def test_failed_compile_leaves_no_output_folder(tpu_models, run_cli, monkeypatch, tmp_path, compiler):
    from edgekit.edgetpu.compiler import find_compiler

    if compiler:
        monkeypatch.setenv("EDGEKIT_EDGETPU_COMPILER", compiler)
    else:
        monkeypatch.delenv("EDGEKIT_EDGETPU_COMPILER", raising=False)
        if find_compiler():
            pytest.skip("edgetpu_compiler is installed here")
    code, _, err = run_cli("edgetpu", "compile", tpu_models["paths"]["mobilenet"], "-o", tmp_path / "new" / "deep")
    assert code in (1, 2) and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []   # neither new/ nor new/deep/ is left behind


def test_compiler_env_var_must_point_at_an_executable(tpu_models, run_cli, monkeypatch, tmp_path):
    monkeypatch.setenv("EDGEKIT_EDGETPU_COMPILER", str(tmp_path / "nope"))
    code, _, err = run_cli("edgetpu", "compile", tpu_models["paths"]["mobilenet"])
    assert code == 2 and "EDGEKIT_EDGETPU_COMPILER=" in err and "is not an executable file" in err


def test_compiler_command_line():
    from edgekit.edgetpu.compiler import build_command

    command = build_command("edgetpu_compiler", "16.0.384591198", ["in/a.tflite"], "out", min_runtime=13,
                            intermediate=["x", "y"], segments=None, timeout=60)
    assert command == ["edgetpu_compiler", "-o", "out", "-s", "-m", "13", "-i", "x,y", "--timeout_sec", "60",
                       "in/a.tflite"]
    assert build_command("c", "15.0.340273435", ["a", "b"], "o", show_ops=False) == ["c", "-o", "o", "a", "b"]
    assert "-n" in build_command("c", "16.0", ["a"], "o", segments=2)
    with pytest.raises(EdgekitError, match=r"--segments 2 needs a single model"):
        build_command("c", "16.0", ["a", "b"], "o", segments=2)
    with pytest.raises(EdgekitError, match=r"--min-runtime 9 is not a runtime version .* choose 10\.\.16"):
        build_command("c", "16.0", ["a"], "o", min_runtime=9)


def test_real_compiler_matches_prediction(tpu_models, tmp_path):
    from edgekit.edgetpu.compiler import compile_models, find_compiler

    if find_compiler() is None:
        pytest.skip("edgetpu_compiler not installed (x86-64 Linux only; see scripts/edgetpu-compiler/)")
    result = compile_models([tpu_models["paths"]["mobilenet"]], tmp_path)
    (compiled,) = result.models
    assert compiled.output.endswith("mobilenet_edgetpu.tflite") and Path(compiled.output).is_file()
    assert compiled.report.ops_on_cpu == 0 and compiled.report.partitions == 1


# ---------------------------------------------------------------- compiled models and the runtime


@pytest.fixture(scope="session")
def compiled_lookalike(tpu_models, tmp_path_factory) -> Path:
    """The MobileNet int8 with its ops replaced by one `edgetpu-custom-op`, as the compiler lays out
    a fully mapped model (the payload is opaque bytes: nothing here can execute it)."""
    from tensorflow.lite.python import schema_py_generated as schema

    import flatbuffers

    model = schema.ModelT.InitFromPackedBuf(tpu_models["paths"]["mobilenet"].read_bytes(), 0)
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    code.customCode = "edgetpu-custom-op"
    code.version = 1
    model.operatorCodes.append(code)
    graph = model.subgraphs[0]
    op = schema.OperatorT()
    op.opcodeIndex = len(model.operatorCodes) - 1
    op.inputs, op.outputs = list(graph.inputs), list(graph.outputs)
    op.customOptions = list(b"\x01" * 4096)
    graph.operators = [op]
    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path = tmp_path_factory.mktemp("compiled") / "mobilenet_edgetpu.tflite"
    path.write_bytes(bytes(builder.Output()))
    return path


def test_compiled_model_without_delegate_is_refused_before_the_interpreter(compiled_lookalike):
    from edgekit.runtime.base import open_runner

    with pytest.raises(EdgekitError, match=r"compiled for the Edge TPU: LiteRT alone cannot resolve its custom op "
                                           r"'edgetpu-custom-op'. run it with --backend edgetpu"):
        open_runner(compiled_lookalike, backend="litert")
    with pytest.raises(EdgekitError, match=r"already compiled for the Edge TPU"):
        analyze(compiled_lookalike)


def test_inspect_shows_edgetpu_custom_op(compiled_lookalike, run_cli):
    code, out, _ = run_cli("inspect", compiled_lookalike, "--json")
    details = json.loads(out)["details"]
    assert code == 0 and details["custom ops"] == "edgetpu-custom-op"
    assert details["edge tpu custom ops"] == "1 x edgetpu-custom-op"
    assert details["edge tpu compiled size"].startswith("4096 bytes")


def test_edgetpu_backend_names_the_missing_library(compiled_lookalike):
    from edgekit.runtime.base import BACKENDS, open_runner
    from edgekit.runtime.edgetpu import EdgeTPURunner, library_path

    if library_path():
        pytest.skip("libedgetpu is installed here")
    reason = BACKENDS.get("edgetpu").unavailable_reason()
    assert "libedgetpu" in reason and "libedgetpu1-std" in reason
    with pytest.raises(EdgekitError, match=r"backend 'edgetpu' is unavailable on this host: needs libedgetpu"):
        open_runner(compiled_lookalike, backend="edgetpu")
    with pytest.raises(EdgekitError, match=r"cannot load the Edge TPU runtime library libedgetpu\.so\.1 .*"
                                           r"install the Edge TPU runtime: Coral's apt package libedgetpu1-std"):
        EdgeTPURunner(compiled_lookalike, device="usb")


def test_edgetpu_backend_refuses_uncompiled_models_and_bad_devices(tpu_models):
    pytest.importorskip("ai_edge_litert")
    from edgekit.runtime.edgetpu import EdgeTPURunner, parse_device

    with pytest.raises(EdgekitError, match=r"mobilenet\.tflite is not compiled for the Edge TPU.*edgekit edgetpu compile"):
        EdgeTPURunner(tpu_models["paths"]["mobilenet"])
    assert parse_device("usb") == ("usb", None) and parse_device("pci:1") == ("pci", 1) and parse_device(None) is None
    with pytest.raises(EdgekitError, match=r"unknown Edge TPU device 'gpu:0'.*usb, usb:N, pci, pci:N"):
        parse_device("gpu:0")


def test_runtime_newer_than_installed_is_explained():
    from edgekit.runtime.edgetpu import check_runtime, explain_delegate_error

    with pytest.raises(EdgekitError, match=r"m_edgetpu\.tflite was compiled for Edge TPU runtime 14, but the installed "
                                           r"libedgetpu is runtime 13.*--min-runtime 13"):
        check_runtime("m_edgetpu.tflite", 14, 13)
    check_runtime("m_edgetpu.tflite", 13, 14)   # older models run on newer runtimes
    # libedgetpu's own wording when the package is newer than the runtime
    error = explain_delegate_error("m_edgetpu.tflite", "Failed precondition: Package requires runtime version (14), "
                                                       "which is newer than this runtime version (13).")
    assert "compiled for Edge TPU runtime 14" in error.one_line()


@pytest.mark.hardware
def test_inference_on_a_real_edge_tpu(tpu_models):
    from edgekit.edgetpu.compiler import compile_models, find_compiler
    from edgekit.runtime.base import BACKENDS, open_runner

    reason = BACKENDS.get("edgetpu").unavailable_reason()
    if reason or find_compiler() is None:
        pytest.skip(reason or "edgetpu_compiler not installed")
    out = tpu_models["paths"]["mobilenet"].parent / "compiled"
    (compiled,) = compile_models([tpu_models["paths"]["mobilenet"]], out).models
    try:
        runner = open_runner(compiled.output, backend="edgetpu", device=os.environ.get("EDGEKIT_EDGETPU_DEVICE"))
    except EdgekitError as exc:
        pytest.skip(f"no usable Edge TPU: {exc.one_line()}")
    with runner:
        (logits,) = runner.infer(np.zeros((1, 64, 64, 3), np.float32))
    assert logits.shape == (1, 100)
