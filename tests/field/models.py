"""Builders of the field corpus: small models that reproduce what users bring to edgekit (issue 13).

Every builder takes a folder, writes one model file (or SavedModel directory) there and returns
its path. Nothing is downloaded: Keras/TF, torch and onnx.helper build each network here, with
seeded weights. Models are tiny (16x16..40x40 inputs) so the whole corpus converts in minutes.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import tflite_variants

SIZE = 32


def _keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    return keras


def _head(keras, x, classes: int = 5):
    """conv(relu6, /2) -> conv(relu, /2) -> global mean -> dense: the common classifier tail."""
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu6")(x)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.layers.Dense(classes)(x)


def _save_keras(model, folder: Path, name: str) -> Path:
    path = Path(folder) / f"{name}.keras"
    model.save(path)
    return path


# ------------------------------------------------------------------------------ Keras

def keras_grey(folder: Path) -> Path:
    """Greyscale H x W x 1 input (MNIST-style, industrial cameras)."""
    keras = _keras()
    keras.utils.set_random_seed(10)
    inp = keras.Input((SIZE, SIZE, 1), batch_size=1, name="grey")
    return _save_keras(keras.Model(inp, _head(keras, inp)), folder, "keras_grey")


def keras_channelless(folder: Path) -> Path:
    """A rank-3 (1, 28, 28) input without a channel axis, reshaped inside the graph."""
    keras = _keras()
    keras.utils.set_random_seed(11)
    inp = keras.Input((28, 28), batch_size=1, name="digits")
    x = keras.layers.Reshape((28, 28, 1))(inp)
    return _save_keras(keras.Model(inp, _head(keras, x, 10)), folder, "keras_channelless")


def keras_free_size(folder: Path) -> Path:
    """Free height and width (None, None, 3): a fully convolutional network."""
    keras = _keras()
    keras.utils.set_random_seed(12)
    inp = keras.Input((None, None, 3), batch_size=1, name="image")
    return _save_keras(keras.Model(inp, _head(keras, inp)), folder, "keras_free_size")


def keras_batch4(folder: Path) -> Path:
    """A fixed batch of 4, as exported for server throughput."""
    keras = _keras()
    keras.utils.set_random_seed(13)
    inp = keras.Input((SIZE, SIZE, 3), batch_size=4, name="image")
    return _save_keras(keras.Model(inp, _head(keras, inp)), folder, "keras_batch4")


def keras_two_inputs(folder: Path) -> Path:
    """An image and a sensor vector (6 floats) joined before the classifier."""
    keras = _keras()
    keras.utils.set_random_seed(14)
    image = keras.Input((SIZE, SIZE, 3), batch_size=1, name="image")
    sensors = keras.Input((6,), batch_size=1, name="sensors")
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu6")(image)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Concatenate()([x, keras.layers.Dense(8, activation="relu")(sensors)])
    return _save_keras(keras.Model([image, sensors], keras.layers.Dense(4)(x)), folder, "keras_two_inputs")


def keras_audio(folder: Path) -> Path:
    """Audio frames: a (1, 4000) waveform window (non-image), Conv1D keyword spotter."""
    keras = _keras()
    keras.utils.set_random_seed(15)
    inp = keras.Input((4000,), batch_size=1, name="waveform")
    x = keras.layers.Reshape((4000, 1))(inp)
    x = keras.layers.Conv1D(8, 16, strides=8, activation="relu")(x)
    x = keras.layers.Conv1D(16, 8, strides=4, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    return _save_keras(keras.Model(inp, keras.layers.Dense(6)(x)), folder, "keras_audio")


def keras_rescaling(folder: Path) -> Path:
    """Normalization inside the graph: Rescaling(1/127.5, offset=-1) takes raw 0-255 pixels."""
    keras = _keras()
    keras.utils.set_random_seed(16)
    inp = keras.Input((SIZE, SIZE, 3), batch_size=1, name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inp)
    return _save_keras(keras.Model(inp, _head(keras, x)), folder, "keras_rescaling")


def keras_normalization(folder: Path) -> Path:
    """A leading Normalization layer with ImageNet mean/variance in pixel units."""
    keras = _keras()
    keras.utils.set_random_seed(17)
    inp = keras.Input((SIZE, SIZE, 3), batch_size=1, name="image")
    x = keras.layers.Normalization(mean=[123.7, 116.3, 103.5], variance=[58.4 ** 2, 57.1 ** 2, 57.4 ** 2])(inp)
    return _save_keras(keras.Model(inp, _head(keras, x)), folder, "keras_normalization")


def keras_hard_swish(folder: Path) -> Path:
    """MobileNetV3's hard-swish activation (TFLite HARD_SWISH, no Edge TPU kernel)."""
    keras = _keras()
    keras.utils.set_random_seed(18)
    inp = keras.Input((SIZE, SIZE, 3), batch_size=1, name="image")
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same")(inp)
    x = keras.layers.Activation("hard_swish")(x)
    return _save_keras(keras.Model(inp, _head(keras, x)), folder, "keras_hard_swish")


def keras_bicubic(folder: Path) -> Path:
    """Bicubic upsampling (super-resolution style): output [1, 64, 64, 3]."""
    keras = _keras()
    keras.utils.set_random_seed(19)
    inp = keras.Input((SIZE, SIZE, 3), batch_size=1, name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    x = keras.layers.UpSampling2D(2, interpolation="bicubic")(x)
    out = keras.layers.Conv2D(3, 3, padding="same")(x)
    return _save_keras(keras.Model(inp, out), folder, "keras_bicubic")


def keras_segmentation(folder: Path) -> Path:
    """Encoder-decoder segmentation: per-pixel logits of 4 classes, [1, 32, 32, 4]."""
    keras = _keras()
    keras.utils.set_random_seed(20)
    inp = keras.Input((SIZE, SIZE, 3), batch_size=1, name="image")
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu6")(inp)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu6")(x)
    x = keras.layers.Conv2DTranspose(8, 2, strides=2, activation="relu6")(x)
    x = keras.layers.UpSampling2D(2)(x)
    out = keras.layers.Conv2D(4, 1)(x)
    return _save_keras(keras.Model(inp, out), folder, "keras_segmentation")


def keras_yolo_mixed(folder: Path) -> Path:
    """A YOLOv8-style head: one output [1, 4 + 3, 16] whose first 4 rows are boxes in input
    pixels (0..320) and the other 3 rows class scores in 0..1 (what the int8 gate pooled)."""
    keras = _keras()
    keras.utils.set_random_seed(21)
    inp = keras.Input((SIZE, SIZE, 3), batch_size=1, name="images")
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu6")(inp)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu6")(x)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu6")(x)   # 4x4 grid
    boxes = keras.layers.Conv2D(4, 1, activation="sigmoid")(x)
    boxes = keras.layers.Rescaling(320.0)(boxes)
    scores = keras.layers.Conv2D(3, 1, activation="sigmoid")(x)
    out = keras.layers.Reshape((16, 7))(keras.layers.Concatenate()([boxes, scores]))
    out = keras.layers.Permute((2, 1))(out)
    return _save_keras(keras.Model(inp, out), folder, "keras_yolo_mixed")


# -------------------------------------------------------------------------- SavedModel

def _savedmodel(folder: Path, name: str, spec_shape, seed: int) -> Path:
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    w1 = tf.constant(rng.normal(0, 0.3, (3, 3, 3, 8)).astype(np.float32))
    w2 = tf.constant(rng.normal(0, 0.3, (8, 5)).astype(np.float32))

    class Net(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec(spec_shape, tf.float32, name="image")])
        def serve(self, image):
            x = tf.nn.relu6(tf.nn.conv2d(image, w1, 2, "SAME"))
            return {"logits": tf.matmul(tf.reduce_mean(x, axis=[1, 2]), w2)}

    net = Net()
    path = Path(folder) / name
    tf.saved_model.save(net, str(path), signatures={"serving_default": net.serve})
    return path


def savedmodel_free_size(folder: Path) -> Path:
    """A SavedModel whose serving signature has free height and width: [1, None, None, 3]."""
    return _savedmodel(folder, "savedmodel_free_size", (1, None, None, 3), 30)


def savedmodel_dynamic_batch(folder: Path) -> Path:
    """A SavedModel with a free batch: [None, 32, 32, 3], the Keras export default."""
    return _savedmodel(folder, "savedmodel_dynamic_batch", (None, SIZE, SIZE, 3), 31)


# -------------------------------------------------------------------------------- ONNX

def _onnx_save(graph, folder: Path, name: str, opset: int = 17) -> Path:
    import onnx

    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    path = Path(folder) / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def _init(name: str, array: np.ndarray):
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(array), name)


def _conv_classifier(entry: str, channels: int, rng, prefix: list, classes: int = 5):
    """Nodes and initializers of conv(/2, relu) -> conv(/2, relu) -> GAP -> Gemm from `entry` (NCHW)."""
    import onnx.helper as h

    inits = [_init("w1", rng.normal(0, 0.3, (8, channels, 3, 3)).astype(np.float32)),
             _init("b1", rng.normal(0, 0.1, 8).astype(np.float32)),
             _init("w2", rng.normal(0, 0.2, (16, 8, 3, 3)).astype(np.float32)),
             _init("b2", rng.normal(0, 0.1, 16).astype(np.float32)),
             _init("fc", rng.normal(0, 0.3, (16, classes)).astype(np.float32)),
             _init("fcb", rng.normal(0, 0.1, classes).astype(np.float32))]
    conv = dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    nodes = [*prefix,
             h.make_node("Conv", [entry, "w1", "b1"], ["c1"], **conv), h.make_node("Relu", ["c1"], ["r1"]),
             h.make_node("Conv", ["r1", "w2", "b2"], ["c2"], **conv), h.make_node("Relu", ["c2"], ["r2"]),
             h.make_node("GlobalAveragePool", ["r2"], ["gap"]), h.make_node("Flatten", ["gap"], ["flat"]),
             h.make_node("Gemm", ["flat", "fc", "fcb"], ["logits"])]
    return nodes, inits


def _classifier_graph(name: str, input_shape, rng, prefix=(), entry="images", channels=3, inits=()):
    import onnx.helper as h
    from onnx import TensorProto

    nodes, weights = _conv_classifier(entry, channels, rng, list(prefix))
    return h.make_graph(nodes, name, [h.make_tensor_value_info("images", TensorProto.FLOAT, input_shape)],
                        [h.make_tensor_value_info("logits", TensorProto.FLOAT, [input_shape[0], 5])],
                        [*inits, *weights])


def onnx_free_size(folder: Path) -> Path:
    """NCHW with free batch, height and width (torch.onnx dynamic_axes): ['N', 3, 'H', 'W']."""
    rng = np.random.default_rng(40)
    return _onnx_save(_classifier_graph("free", ["N", 3, "H", "W"], rng), folder, "onnx_free_size")


def onnx_sub_div(folder: Path) -> Path:
    """Constant Sub(mean)/Div(std) at the graph entry: the model takes raw 0-255 pixels."""
    import onnx.helper as h

    rng = np.random.default_rng(41)
    prefix = [h.make_node("Sub", ["images", "mean"], ["centred"]), h.make_node("Div", ["centred", "std"], ["normed"])]
    inits = [_init("mean", np.array([123.7, 116.3, 103.5], np.float32).reshape(1, 3, 1, 1)),
             _init("std", np.array([58.4, 57.1, 57.4], np.float32).reshape(1, 3, 1, 1))]
    graph = _classifier_graph("subdiv", [1, 3, SIZE, SIZE], rng, prefix, "normed", inits=inits)
    return _onnx_save(graph, folder, "onnx_sub_div")


def onnx_mul_add(folder: Path) -> Path:
    """Constant Mul(1/127.5) then Add(-1) at the entry (TF-style [-1, 1] inputs from 0-255)."""
    import onnx.helper as h

    rng = np.random.default_rng(42)
    prefix = [h.make_node("Mul", ["images", "scale"], ["scaled"]), h.make_node("Add", ["scaled", "shift"], ["normed"])]
    inits = [_init("scale", np.array(1 / 127.5, np.float32)), _init("shift", np.array(-1.0, np.float32))]
    graph = _classifier_graph("muladd", [1, 3, SIZE, SIZE], rng, prefix, "normed", inits=inits)
    return _onnx_save(graph, folder, "onnx_mul_add")


def onnx_nhwc_nonsquare(folder: Path) -> Path:
    """NHWC input of 24 x 40 (exported from TF with a Transpose at the entry)."""
    import onnx.helper as h

    rng = np.random.default_rng(43)
    prefix = [h.make_node("Transpose", ["images"], ["nchw"], perm=[0, 3, 1, 2])]
    graph = _classifier_graph("nhwc", [1, 24, 40, 3], rng, prefix, "nchw")
    return _onnx_save(graph, folder, "onnx_nhwc_nonsquare")


def onnx_grey(folder: Path) -> Path:
    """Greyscale NCHW [1, 1, 32, 32]."""
    rng = np.random.default_rng(44)
    graph = _classifier_graph("grey", [1, 1, SIZE, SIZE], rng, channels=1)
    return _onnx_save(graph, folder, "onnx_grey")


def onnx_nms(folder: Path) -> Path:
    """A detector with NonMaxSuppression inside: outputs boxes [1, 16, 4], scores [1, 2, 16]
    and selected indices [K, 3] whose K is computed at run time."""
    import onnx.helper as h
    from onnx import TensorProto

    rng = np.random.default_rng(45)
    conv = dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    inits = [_init("w1", rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32)),
             _init("w2", rng.normal(0, 0.2, (8, 8, 3, 3)).astype(np.float32)),
             _init("w3", rng.normal(0, 0.2, (8, 8, 3, 3)).astype(np.float32)),
             _init("wb", rng.normal(0, 0.3, (4, 8, 1, 1)).astype(np.float32)),
             _init("ws", rng.normal(0, 0.3, (2, 8, 1, 1)).astype(np.float32)),
             _init("box_shape", np.array([1, 4, 16], np.int64)), _init("score_shape", np.array([1, 2, 16], np.int64)),
             _init("max_out", np.array([5], np.int64)), _init("iou", np.array([0.5], np.float32)),
             _init("thresh", np.array([0.3], np.float32)), _init("box_scale", np.array(32.0, np.float32))]
    nodes = [h.make_node("Conv", ["images", "w1"], ["c1"], **conv), h.make_node("Relu", ["c1"], ["r1"]),
             h.make_node("Conv", ["r1", "w2"], ["c2"], **conv), h.make_node("Relu", ["c2"], ["r2"]),
             h.make_node("Conv", ["r2", "w3"], ["c3"], **conv), h.make_node("Relu", ["c3"], ["r3"]),
             h.make_node("Conv", ["r3", "wb"], ["bc"], kernel_shape=[1, 1]),
             h.make_node("Sigmoid", ["bc"], ["bs"]), h.make_node("Mul", ["bs", "box_scale"], ["bp"]),
             h.make_node("Reshape", ["bp", "box_shape"], ["b4"]),
             h.make_node("Transpose", ["b4"], ["boxes"], perm=[0, 2, 1]),
             h.make_node("Conv", ["r3", "ws"], ["sc"], kernel_shape=[1, 1]),
             h.make_node("Sigmoid", ["sc"], ["ss"]), h.make_node("Reshape", ["ss", "score_shape"], ["scores"]),
             h.make_node("NonMaxSuppression", ["boxes", "scores", "max_out", "iou", "thresh"], ["selected"],
                         center_point_box=1)]
    graph = h.make_graph(nodes, "nms", [h.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
                         [h.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 16, 4]),
                          h.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 2, 16]),
                          h.make_tensor_value_info("selected", TensorProto.INT64, ["K", 3])], inits)
    return _onnx_save(graph, folder, "onnx_nms")


# ------------------------------------------------------------------------------- torch

def _torchscript(module, shape, folder: Path, name: str) -> Path:
    import torch

    path = Path(folder) / f"{name}.pt"
    torch.jit.trace(module.eval(), torch.rand(*shape)).save(str(path))
    return path


def torch_channel_shuffle(folder: Path) -> Path:
    """A ShuffleNet unit: grouped conv, then channel shuffle (view to 5-D, transpose, view back)."""
    import torch

    class Shuffle(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
            self.group = torch.nn.Conv2d(8, 8, 1, groups=2)
            self.depth = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)
            self.fc = torch.nn.Linear(8, 5)

        def forward(self, x):
            x = torch.relu(self.stem(x))
            x = torch.relu(self.group(x))
            n, c, h, w = x.shape
            x = x.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, c, h, w)
            return self.fc(self.depth(x).mean(dim=(2, 3)))

    torch.manual_seed(50)
    return _torchscript(Shuffle(), (1, 3, SIZE, SIZE), folder, "torch_channel_shuffle")


def torch_grey(folder: Path) -> Path:
    """A greyscale TorchScript classifier ([1, 1, H, W]): the file records no input shape, and
    edgekit guessed 3 channels, so every command ended in 'unexpected RuntimeError'."""
    import torch

    torch.manual_seed(51)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, stride=2, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(8, 16, 3, stride=2, padding=1), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 5))
    return _torchscript(net, (1, 1, SIZE, SIZE), folder, "torch_grey")


def torch_fmod(folder: Path) -> Path:
    """An op Core ML lacks (coremltools 9: "convert function for op 'fmod' not implemented")
    that ONNX (Mod fmod=1) and OpenVINO run: a periodic position feature."""
    import torch

    class Periodic(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
            self.fc = torch.nn.Linear(8, 5)

        def forward(self, x):
            x = torch.fmod(self.conv(x), 0.75)
            return self.fc(torch.relu(x).mean(dim=(2, 3)))

    torch.manual_seed(51)
    return _torchscript(Periodic(), (1, 3, SIZE, SIZE), folder, "torch_fmod")


# ------------------------------------------------------------------------------ TFLite

def _tflite(name: str, builder):
    def build(folder: Path) -> Path:
        path = Path(folder) / f"tflite_{name}.tflite"
        path.write_bytes(builder())
        return path
    build.__doc__ = builder.__doc__
    build.__name__ = f"tflite_{name}"
    return build


tflite_shared_buffers = _tflite("shared_buffers", tflite_variants.shared_buffers)
tflite_offset_buffers = _tflite("offset_buffers", tflite_variants.offset_buffers)
tflite_sparse = _tflite("sparse", tflite_variants.sparse_weights)
tflite_fp16 = _tflite("fp16", tflite_variants.fp16_weights)
tflite_int4 = _tflite("int4", tflite_variants.int4_weights)
tflite_custom_op = _tflite("custom_op", tflite_variants.custom_op)
tflite_ssd = _tflite("ssd", tflite_variants.ssd_postprocess)
tflite_free_size = _tflite("free_size", tflite_variants.free_size)
tflite_dynamic_batch = _tflite("dynamic_batch", tflite_variants.dynamic_batch)
tflite_entry_norm = _tflite("entry_norm", tflite_variants.entry_normalization)
