"""ONNX source: validated with onnx's checker before any native runtime sees it."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..deps import require
from ..errors import REMEDY_REEXPORT, ModelFormatError, summary
from ..manifest import TensorInfo
from .base import SOURCES, SourceInput, SourceModel
from .graph_norm import EntryAffine, facts_of, per_channel

_ONNX_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64", 9: "bool", 10: "float16", 11: "float64"}


def load_checked(path: Path):
    """onnx.load + structural check; corrupt or truncated protobufs become ModelFormatError."""
    onnx = require("onnx", "reading ONNX models")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends
        raise ModelFormatError(f"{path} is not a valid ONNX model (truncated or corrupt: "
                               f"{type(exc).__name__})", REMEDY_REEXPORT) from None
    if not model.graph.node or not model.graph.input:
        raise ModelFormatError(f"{path} parses as protobuf but holds no ONNX graph", REMEDY_REEXPORT)
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise ModelFormatError(f"{path} fails the ONNX checker: {summary(exc)}", REMEDY_REEXPORT) from None
    return model


def graph_nodes(graph):
    """Every node of an ONNX GraphProto, those inside If/Loop/Scan bodies included."""
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            for body in [attribute.g] if attribute.HasField("g") else list(attribute.graphs):
                yield from graph_nodes(body)


def node_label(node) -> str:
    """How an ONNX node is named in messages: its name, else its first output, else its op type."""
    return node.name or (node.output[0] if node.output else node.op_type)


@SOURCES.register("onnx")
class OnnxSource(SourceModel):
    kind = "onnx"

    def __init__(self, path: Path, model, input_size: list[int] | None = None):
        super().__init__(path)
        self.model = model
        initializers = {i.name for i in model.graph.initializer}
        self._graph_inputs = [i for i in model.graph.input if i.name not in initializers]
        first = _dims(self._graph_inputs[0])
        # the framework convention the classifier reads first: NCHW unless the channels are last
        self.layout = "NHWC" if len(first) == 4 and first[3] in (1, 3) and first[1] not in (1, 3) else "NCHW"
        self._note_input_facts()
        images = self.image_inputs()
        if images:
            found = entry_normalization(model, images[0])
            if found is not None:
                self.facts.preprocess.update(facts_of(found, images[0].channels))
        self._session = None

    @classmethod
    def from_path(cls, path: Path, input_shape=None) -> OnnxSource:
        return cls(path, load_checked(path))

    def declared_inputs(self) -> list[TensorInfo]:
        return [TensorInfo(i.name, [d if isinstance(d, int) and d > 0 else -1 for d in _dims(i)], _dtype(i))
                for i in self._graph_inputs]

    def is_static(self) -> bool:
        """The file declares exactly the shapes `inputs()` gives (nothing was free or pinned)."""
        return [t.shape for t in self.declared_inputs()] == [t.shape for t in self.inputs()]

    def static_model(self):
        """The ONNX ModelProto with each graph input's dims as `inputs()` fixes them (batch 1,
        --input-size): what an artifact or a runtime gets, so that it takes exactly those shapes.
        An output whose first dim was the pinned batch gets 1 there."""
        import copy

        model = copy.deepcopy(self.model)
        pinned = {name: batch for name, batch in self.pinned_batches()}
        fixed = {t.name: t.shape for t in self.inputs()}
        for value in model.graph.input:
            if value.name in fixed:
                for dim, size in zip(value.type.tensor_type.shape.dim, fixed[value.name]):
                    dim.Clear()
                    dim.dim_value = int(size)
        batches = {b for b in pinned.values() if b > 1}
        for value in model.graph.output:
            dims = value.type.tensor_type.shape.dim
            if len(dims) >= 2 and ((dims[0].HasField("dim_value") and dims[0].dim_value in batches)
                                   or (pinned and not dims[0].HasField("dim_value"))):
                dims[0].Clear()
                dims[0].dim_value = 1
        return model

    def save_static(self, path: Path) -> None:
        """Write `static_model()` to PATH (the file as it is when nothing needed fixing)."""
        import shutil

        if self.is_static():
            shutil.copyfile(self.path, path)
            return
        import onnx

        onnx.save(self.static_model(), str(path))

    def outputs(self) -> list[TensorInfo]:
        return [TensorInfo(o.name, [d if isinstance(d, int) else -1 for d in _dims(o)], _dtype(o))
                for o in self.model.graph.output]

    def infer(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        if self._session is None:
            ort = require("onnxruntime", "running ONNX models")
            model = str(self.path) if self.is_static() else self.static_model().SerializeToString()
            self._session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        names = [i.name for i in self._session.get_inputs()]
        return self._session.run(None, dict(zip(names, feeds)))


def entry_normalization(model, image: SourceInput):
    """The GraphNormalization of the constant Add/Sub/Mul/Div nodes that alone consume the
    IMAGE input and each other's output (x op constant; Add/Mul either side), or None."""
    from onnx import numpy_helper

    constants = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = node.attribute[0].t
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    affine, current = EntryAffine.identity(), image.name
    rank, axis = len(image.shape), 1 if image.layout == "NCHW" else -1
    while len(consumers.get(current, [])) == 1:
        node = consumers[current][0]
        if node.op_type not in ("Add", "Sub", "Mul", "Div") or len(node.input) != 2:
            break
        other = node.input[1] if node.input[0] == current else node.input[0]
        if other == current or other not in constants or (node.op_type in ("Sub", "Div") and node.input[0] != current):
            break
        value = per_channel(numpy_helper.to_array(constants[other]), rank, axis, image.channels)
        if value is None or not affine.apply(node.op_type, value, f"{node.op_type} '{node.name or node.output[0]}'"):
            break
        current = node.output[0]
    return affine.normalization(image.channels, "constant ops at the ONNX graph entry")


def _dims(value_info) -> list[int | None]:
    dims = value_info.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else None for d in dims]


def _dtype(value_info) -> str:
    return _ONNX_DTYPES.get(value_info.type.tensor_type.elem_type, "float32")
