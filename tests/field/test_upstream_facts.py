"""The upstream facts edgekit's refusals rest on, checked with the raw runtimes: when an upstream
release changes one, its test fails and the refusal can go.

- OpenVINO cannot compute ONNX Resize with exclude_outside=1 (TensorFlow's bicubic resize, as
  tf2onnx writes it): its Interpolate has no such attribute. edgekit.targets.openvino refuses it
  (`onnx_resize_problem`); the field corpus's keras_bicubic went through at cosine 0.99999, 2 % of
  a channel's scale off Keras at the borders, before the fp32 relative-error gate and the refusal.
- ONNX NonMaxSuppression has an output whose size is computed at run time; onnx2tf pads it
  (edgekit.bridges.onnx_to_savedmodel.onnx2tf_problem). The corpus's onnx_nms key cell tflite
  fp32 checks the refusal end to end.
- ONNX Mod with fmod=1 (torch.fmod) is not TensorFlow's FloorMod, which onnx2tf makes of it: the
  corpus's torch_fmod went to TFLite at cosine 0.80 (verify failed it) before the refusal.
"""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _resize(path, exclude_outside: int) -> np.ndarray:
    """A one-node ONNX model: Resize x2 of [1, 3, 8, 8] as tf2onnx writes TensorFlow's bicubic."""
    from onnx import TensorProto, helper

    scales = helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, 2, 2])
    roi = helper.make_tensor("roi", TensorProto.FLOAT, [0], [])
    node = helper.make_node("Resize", ["x", "roi", "scales"], ["y"], name="Resize__11", mode="cubic",
                            coordinate_transformation_mode="half_pixel", cubic_coeff_a=-0.5,
                            exclude_outside=exclude_outside)
    graph = helper.make_graph([node], "bicubic", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 16, 16])], [roi, scales])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8   # what ONNX Runtime 1.23 reads (onnx 1.19 writes 12)
    onnx.save(model, str(path))
    return np.random.default_rng(11).normal(0, 1, (1, 3, 8, 8)).astype(np.float32)


def _both(path, x) -> tuple[np.ndarray, np.ndarray]:
    import openvino as ov

    expected = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    compiled = ov.Core().compile_model(ov.convert_model(str(path)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return expected, np.asarray(compiled(x)[0])


@pytest.mark.parametrize("exclude_outside", [1, 0])
def test_openvino_ignores_exclude_outside_and_edgekit_refuses_only_that(tmp_path, exclude_outside):
    pytest.importorskip("openvino")
    from edgekit.targets.openvino import onnx_resize_problem

    path = tmp_path / f"resize{exclude_outside}.onnx"
    x = _resize(path, exclude_outside)
    expected, got = _both(path, x)
    scale = float(expected.max() - expected.min())
    worst = float(np.abs(got - expected).max()) / scale
    problem = onnx_resize_problem(onnx.load(str(path)))
    if exclude_outside:
        assert worst > 0.01, f"OpenVINO now computes exclude_outside ({worst:.2g} of the scale): drop the refusal"
        assert problem and "Resize '" + "Resize__11" + "'" in problem and "exclude_outside" in problem
    else:
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * scale)
        assert problem is None


def test_nms_is_named_as_a_run_time_size(tmp_path):
    from onnx import TensorProto, helper

    from edgekit.bridges.onnx_to_savedmodel import onnx2tf_problem

    inits = [helper.make_tensor("max_out", TensorProto.INT64, [1], [5]),
             helper.make_tensor("iou", TensorProto.FLOAT, [1], [0.5]),
             helper.make_tensor("threshold", TensorProto.FLOAT, [1], [0.3])]
    node = helper.make_node("NonMaxSuppression", ["boxes", "scores", "max_out", "iou", "threshold"], ["selected"],
                            name="nms")
    graph = helper.make_graph([node], "nms", [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 16, 4]),
                                              helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 2, 16])],
                              [helper.make_tensor_value_info("selected", TensorProto.INT64, ["K", 3])], inits)
    path = tmp_path / "nms.onnx"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8   # what ONNX Runtime 1.23 reads (onnx 1.19 writes 12)
    onnx.save(model, str(path))
    problem = onnx2tf_problem(onnx.load(str(path)))
    assert problem and "NonMaxSuppression node 'nms' has an output whose size is set at run time" in problem[0]
    boxes = np.random.default_rng(3).uniform(0, 1, (1, 16, 4)).astype(np.float32)
    scores = np.random.default_rng(4).uniform(0, 1, (1, 2, 16)).astype(np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    sizes = [session.run(None, {"boxes": boxes, "scores": scores * scale})[0].shape[0] for scale in (1.0, 0.1)]
    assert sizes[0] > 0 and sizes[1] == 0, sizes   # the same graph: the data decides how many rows come out


@pytest.mark.parametrize("fmod", [1, 0])
def test_fmod_is_not_floor_modulo_and_only_fmod_is_refused(tmp_path, fmod):
    """ONNX Runtime computes Mod as the ONNX spec says: fmod=1 (floats need it) differs from floor
    modulo (np.mod, TensorFlow's FloorMod) exactly on the negative values; fmod=0 (integers) is
    floor modulo, which onnx2tf keeps, and is not refused."""
    from onnx import TensorProto, helper

    from edgekit.bridges.onnx_to_savedmodel import onnx2tf_problem

    kind, dtype, d = (TensorProto.FLOAT, np.float32, 0.75) if fmod else (TensorProto.INT32, np.int32, 3)
    divisor = helper.make_tensor("d", kind, [1], [d])
    node = helper.make_node("Mod", ["x", "d"], ["y"], name="periodic", fmod=fmod)
    graph = helper.make_graph([node], "mod", [helper.make_tensor_value_info("x", kind, [1, 8])],
                              [helper.make_tensor_value_info("y", kind, [1, 8])], [divisor])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8   # what ONNX Runtime 1.23 reads
    path = tmp_path / f"mod{fmod}.onnx"
    onnx.save(model, str(path))
    x = (np.linspace(-2, 2, 8) if fmod else np.arange(-4, 4)).astype(dtype)[None]
    y = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    floor = np.mod(x, dtype(d))
    problem = onnx2tf_problem(onnx.load(str(path)))
    if fmod:
        np.testing.assert_allclose(y, np.fmod(x, dtype(d)), atol=1e-6)
        assert not np.allclose(y[x < 0], floor[x < 0]) and np.allclose(y[x >= 0], floor[x >= 0])
        assert problem and "Mod node 'periodic' is fmod" in problem[0] and "onnx or openvino" in problem[1]
    else:
        np.testing.assert_array_equal(y, floor)
        assert problem is None
