"""Float .tflite files that use the TFLite schema features real model zoos ship, built here from a
tiny Keras network (no downloads). Shared by the field corpus and the differential test of the
pure-Python structure check against LiteRT's own loader (tests/field/test_tflite_schema.py).

Each builder returns the flatbuffer bytes. Where the TF converter cannot write a feature, the
converted model is rewritten with TensorFlow's own generated schema classes
(`tensorflow.lite.python.schema_py_generated`), the way AutoML and vendor toolchains post-edit
their files; LiteRT running the result is the proof that it is a valid model.
"""
from __future__ import annotations

import os

import numpy as np

SIZE = 16


def tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow

    return tensorflow


def keras_net(size: int = SIZE, batch=1, spatial=None, channels: int = 3, seed: int = 0):
    """conv(relu6) -> conv(relu) -> mean -> dense(5): weights large enough to quantize."""
    import keras

    keras.utils.set_random_seed(seed)
    hw = (spatial, spatial) if spatial is not None or size is None else (size, size)
    inp = keras.Input((*hw, channels), batch_size=batch, name="image")
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu6")(inp)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(5)(x))


def _convert(model, configure=None) -> bytes:
    t = tf()
    converter = t.lite.TFLiteConverter.from_keras_model(model)
    if configure:
        configure(t, converter)
    return converter.convert()


def _unpack(data: bytes):
    from tensorflow.lite.python import schema_py_generated as schema

    return schema, schema.ModelT.InitFromPackedBuf(bytearray(data), 0)


def _pack(model) -> bytes:
    import flatbuffers

    builder = flatbuffers.Builder(1 << 16)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def plain() -> bytes:
    """The reference: a float model as the converter writes it (batch 1)."""
    return _convert(keras_net())


def offset_buffers() -> bytes:
    """Weights stored after the flatbuffer (Buffer.offset/size), the >2 GiB layout."""
    def configure(t, converter):
        converter._experimental_use_buffer_offset = True
    return _convert(keras_net(), configure)


def fp16_weights() -> bytes:
    """fp16 weights behind DEQUANTIZE ops (the converter's float16 post-training quantization)."""
    def configure(t, converter):
        converter.optimizations = [t.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [t.float16]
    return _convert(keras_net(), configure)


def sparse_weights() -> bytes:
    """A sparse (block-compressed) weight tensor read through DENSIFY: the converter's
    EXPERIMENTAL_SPARSITY on a layer whose weights are mostly zero, as pruned models ship."""
    import keras

    keras.utils.set_random_seed(1)
    inp = keras.Input((SIZE, SIZE, 3), batch_size=1, name="image")
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    dense = keras.layers.Dense(64, activation="relu")
    x = dense(x)
    out = keras.layers.Dense(5)(x)
    model = keras.Model(inp, out)
    kernel, bias = dense.get_weights()
    mask = np.random.default_rng(0).random(kernel.shape) < 0.1   # 90 % zeros
    dense.set_weights([kernel * mask * 4, bias])

    def configure(t, converter):
        converter.optimizations = [t.lite.Optimize.EXPERIMENTAL_SPARSITY]
    return _convert(model, configure)


def shared_buffers() -> bytes:
    """Two weight tensors that point at one buffer (deduplicated constants), and every
    bias/shape constant that is all-zero sharing the same buffer too."""
    import keras

    keras.utils.set_random_seed(2)
    inp = keras.Input((SIZE, SIZE, 3), batch_size=1, name="image")
    stem = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    a = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(stem)
    b = keras.layers.Conv2D(8, 3, padding="same", dilation_rate=2, activation="relu")(stem)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Add()([a, b]))
    model = keras.Model(inp, keras.layers.Dense(5)(x))
    data = _convert(model)
    schema, m = _unpack(data)
    graph = m.subgraphs[0]
    by_shape: dict = {}
    for tensor in graph.tensors:
        if tensor.buffer and m.buffers[tensor.buffer].data is not None and len(tensor.shape) == 4 \
                and list(tensor.shape) == [8, 3, 3, 8]:
            by_shape.setdefault(tuple(tensor.shape), []).append(tensor)
    twins = by_shape[(8, 3, 3, 8)]
    assert len(twins) >= 2, "expected two 8x3x3x8 conv kernels"
    twins[1].buffer = twins[0].buffer       # the second conv now reads the first one's weights
    return _pack(m)


def int4_weights() -> bytes:
    """int4 weights (two per byte) behind DEQUANTIZE, as weight-only int4 exports write them:
    the fp16 model with its fp16 conv kernel replaced by a packed INT4 tensor."""
    schema, m = _unpack(fp16_weights())
    graph = m.subgraphs[0]
    opcodes = m.operatorCodes
    for op in graph.operators:
        code = max(opcodes[op.opcodeIndex].builtinCode, opcodes[op.opcodeIndex].deprecatedBuiltinCode)
        if code != schema.BuiltinOperator.DEQUANTIZE:
            continue
        tensor = graph.tensors[op.inputs[0]]
        if len(tensor.shape) != 4:
            continue
        values = np.frombuffer(bytes(m.buffers[tensor.buffer].data), np.float16).astype(np.float32)
        scale = float(np.abs(values).max() / 7) or 1.0
        q = np.clip(np.round(values / scale), -8, 7).astype(np.int8)
        if q.size % 2:
            q = np.append(q, np.int8(0))
        packed = ((q[0::2] & 0x0F) | ((q[1::2] & 0x0F) << 4)).astype(np.uint8)
        m.buffers[tensor.buffer].data = packed
        tensor.type = schema.TensorType.INT4
        quant = schema.QuantizationParametersT()
        quant.scale, quant.zeroPoint = [scale], [0]
        tensor.quantization = quant
        return _pack(m)
    raise AssertionError("no DEQUANTIZE of a conv kernel in the fp16 model")


def custom_op(code: str = "AcmeSwish") -> bytes:
    """A float model whose activation is a CUSTOM op that only its author's runtime registers
    (LiteRT's stock resolver does not): the sigmoid (LOGISTIC) after the conv becomes CUSTOM
    `code`, as vendor SDKs ship fused activations."""
    import keras

    keras.utils.set_random_seed(3)
    inp = keras.Input((SIZE, SIZE, 3), batch_size=1, name="image")
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same")(inp)
    x = keras.layers.Activation("sigmoid")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    data = _convert(keras.Model(inp, keras.layers.Dense(5)(x)))
    schema, m = _unpack(data)
    code_t = schema.OperatorCodeT()
    code_t.builtinCode = code_t.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    code_t.customCode, code_t.version = code.encode(), 1
    m.operatorCodes.append(code_t)
    for op in m.subgraphs[0].operators:
        opcode = m.operatorCodes[op.opcodeIndex]
        if max(opcode.builtinCode, opcode.deprecatedBuiltinCode) == schema.BuiltinOperator.LOGISTIC:
            op.opcodeIndex = len(m.operatorCodes) - 1
            op.builtinOptionsType, op.builtinOptions = 0, None
            op.customOptions = b""
            return _pack(m)
    raise AssertionError("no LOGISTIC op to replace")


def dynamic_batch() -> bytes:
    """Batch -1 in the signature (shape [1, 16, 16, 3], shape_signature [-1, 16, 16, 3])."""
    return _convert(keras_net(batch=None))


def free_size() -> bytes:
    """Free height and width: shape_signature [1, -1, -1, 3]."""
    return _convert(keras_net(size=None))


def entry_normalization() -> bytes:
    """Normalization inside the graph: MUL/ADD of Keras Rescaling(1/127.5, offset=-1) before the
    first conv, so the model takes raw 0-255 pixels."""
    import keras

    keras.utils.set_random_seed(4)
    inp = keras.Input((SIZE, SIZE, 3), batch_size=1, name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inp)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu6")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return _convert(keras.Model(inp, keras.layers.Dense(5)(x)))


def ssd_postprocess(num_classes: int = 3, anchors_per_side: int = 4, quantize: bool = False) -> bytes:
    """An SSD head ending in TFLite_Detection_PostProcess, the way TF Object Detection API's
    export_tflite_graph_tf2 writes it: a tf.function that `experimental_implements` the op,
    converted with allow_custom_ops. Outputs: boxes [1, 10, 4], classes, scores, count."""
    t = tf()
    rng = np.random.default_rng(5)
    n = anchors_per_side * anchors_per_side

    def conv(x, cin, cout, k, stride, act=True):   # constant weights: nothing left to freeze
        w = t.constant(rng.normal(0, (2 / (k * k * cin)) ** 0.5, (k, k, cin, cout)).astype(np.float32))
        y = t.nn.conv2d(x, w, stride, "SAME") + t.constant(rng.normal(0, 0.1, cout).astype(np.float32))
        return t.nn.relu6(y) if act else y

    def head(image):
        x = conv(conv(conv(image, 3, 8, 3, 2), 8, 8, 3, 2), 8, 8, 3, 2)     # 4x4
        boxes = t.reshape(conv(x, 8, 4, 1, 1, act=False), (1, n, 4))
        return boxes, t.reshape(conv(x, 8, num_classes + 1, 1, 1, act=False), (1, n, num_classes + 1))

    centers = (np.arange(anchors_per_side) + 0.5) / anchors_per_side
    yy, xx = np.meshgrid(centers, centers, indexing="ij")
    anchors = np.stack([yy.ravel(), xx.ravel(), np.full(n, 0.3), np.full(n, 0.3)], 1).astype(np.float32)
    implements = " ".join([
        'name: "TFLite_Detection_PostProcess"',
        'attr { key: "max_detections" value { i: 10 } }',
        'attr { key: "max_classes_per_detection" value { i: 1 } }',
        'attr { key: "detections_per_class" value { i: 100 } }',
        'attr { key: "use_regular_nms" value { b: false } }',
        'attr { key: "nms_score_threshold" value { f: 0.000000 } }',
        'attr { key: "nms_iou_threshold" value { f: 0.600000 } }',
        'attr { key: "y_scale" value { f: 10.000000 } }',
        'attr { key: "x_scale" value { f: 10.000000 } }',
        'attr { key: "h_scale" value { f: 5.000000 } }',
        'attr { key: "w_scale" value { f: 5.000000 } }',
        f'attr {{ key: "num_classes" value {{ i: {num_classes} }} }}'])

    @t.function(experimental_implements=implements)
    def postprocess(box_encodings, class_predictions, anchor_boxes):
        b = t.constant(0.0, t.float32, name="boxes")
        s = t.constant(0.0, t.float32, name="scores")
        c = t.constant(0.0, t.float32, name="classes")
        d = t.constant(0.0, t.float32, name="num_detections")
        return b, c, s, d

    module = t.Module()

    @t.function(input_signature=[t.TensorSpec((1, 32, 32, 3), t.float32)])
    def detect(image):
        box_encodings, logits = head(image)
        return postprocess(box_encodings, t.sigmoid(logits), t.constant(anchors))

    import tempfile

    with tempfile.TemporaryDirectory() as folder:   # the OD API's route: SavedModel, then convert
        module.detect = detect
        t.saved_model.save(module, folder, signatures={"serving_default": detect})
        converter = t.lite.TFLiteConverter.from_saved_model(folder)
        converter.allow_custom_ops = True
        if quantize:   # as Coral's SSD models: uint8 graph, the post-processing op on float inputs
            rng = np.random.default_rng(0)
            converter.optimizations = [t.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([rng.random((1, 32, 32, 3), dtype=np.float32) * 2 - 1]
                                                        for _ in range(8))
            converter.target_spec.supported_ops = [t.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = t.uint8
        return converter.convert()


BUILDERS = {
    "plain": plain, "offset_buffers": offset_buffers, "fp16_weights": fp16_weights,
    "sparse_weights": sparse_weights, "shared_buffers": shared_buffers, "int4_weights": int4_weights,
    "custom_op": custom_op, "dynamic_batch": dynamic_batch, "free_size": free_size,
    "entry_normalization": entry_normalization, "ssd_postprocess": ssd_postprocess,
}


def ssd_postprocess_int8() -> bytes:
    """The SSD quantized for the Edge TPU: uint8 input, int8 graph, then DEQUANTIZE and
    TFLite_Detection_PostProcess on the CPU (the layout of Coral's ssd_mobilenet_*_edgetpu models)."""
    return ssd_postprocess(quantize=True)


def litert_run(data: bytes, feeds: list[np.ndarray] | None = None) -> list[np.ndarray]:
    """LiteRT's own loader: allocate + invoke on FEEDS (zeros when None); its outputs."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=data)
    interp.allocate_tensors()
    for i, detail in enumerate(interp.get_input_details()):
        value = feeds[i] if feeds is not None else np.zeros(detail["shape"], detail["dtype"])
        interp.set_tensor(detail["index"], np.asarray(value, detail["dtype"]))
    interp.invoke()
    return [interp.get_tensor(d["index"]).copy() for d in interp.get_output_details()]
