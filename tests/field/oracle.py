"""The independent oracle of the field corpus: an artifact's raw runtime against the SOURCE
framework, on real photos, with np.testing.assert_allclose and a tolerance per precision.

Nothing here asks edgekit how to run a model. The source gets each photo the way the model truly
wants it (corpus.Pixels: the model's own normalization, channels, layout); the artifact gets it
the way its manifest says. So an artifact built with wrong preprocessing facts fails here even
when edgekit's own verify (which feeds both sides the same wrong input) passes.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .corpus import FieldModel

PHOTOS = 4
# atol as a fraction of the reference's range (max - min), per precision
TOLERANCE = {"fp32": 1e-4, "fp16": 2e-2, "dynamic": 5e-2, "int8": 8e-2}


def photos(count: int = PHOTOS) -> list[np.ndarray]:
    from edgekit.photos import photo_set

    return [image for _, image in photo_set(count)]


def _image(photo: np.ndarray, size: tuple[int, int], channels: int, mean: list[float], std: list[float]) -> np.ndarray:
    """RGB uint8 photo -> float32 [H, W, C] (stretch resize, luminance for one channel)."""
    import cv2

    pixels = cv2.resize(photo, (size[1], size[0]), interpolation=cv2.INTER_AREA).astype(np.float32)
    if channels == 1:
        pixels = (pixels @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    mean = np.asarray(mean, np.float32)[:channels] if len(mean) >= channels else np.float32(mean[0])
    std = np.asarray(std, np.float32)[:channels] if len(std) >= channels else np.float32(std[0])
    return (pixels - mean) / std


def _layout(shape: list[int]) -> str:
    return "NCHW" if len(shape) == 4 and shape[1] in (1, 3) and shape[3] not in (1, 3) else "NHWC"


def feeds(model: FieldModel, shapes: list[list[int]], data: dict[str, Path], pre: dict | None, photo: int) -> list:
    """One sample for inputs of SHAPES: photos normalized per PRE (a manifest's preprocessing) or,
    when PRE is None, per the model's true Pixels; arrays for non-image inputs."""
    result = []
    for shape in shapes:
        if model.data == "audio":
            result.append(np.load(data["audio"])[photo % PHOTOS][None].astype(np.float32).reshape(shape))
            continue
        if model.data == "image+sensors" and len(shape) == 2:
            result.append(np.load(data["image+sensors"])["sensors"][photo][None].astype(np.float32))
            continue
        layout = _layout(shape)
        channels = (shape[1] if layout == "NCHW" else shape[3]) if len(shape) == 4 else 1
        size = ((shape[2], shape[3]) if layout == "NCHW" else (shape[1], shape[2])) if len(shape) == 4 \
            else (shape[-2], shape[-1])
        # the manifest's channel count is what predict, run and the board feed: it must be the input's
        assert not pre or pre.get("channels", channels) == channels, \
            f"the manifest says {pre.get('channels')} channel(s), the input {shape} takes {channels}"
        truth = model.pixels
        mean, std = (pre.get("mean", [0.0]), pre.get("std", [255.0])) if pre else ([truth.mean], [truth.std])
        image = _image(photos()[photo], size, channels, mean, std)
        if layout == "NCHW":
            image = image.transpose(2, 0, 1)
        result.append(image.reshape(shape).astype(np.float32))
    return result


# ----------------------------------------------------------------------------- the source

class Source:
    """MODEL run by its own framework."""

    def __init__(self, model: FieldModel, path: Path):
        self.model, self.path = model, Path(path)
        self.nms: _Nms | None = None
        suffix = self.path.suffix
        if self.path.is_dir():
            import tensorflow as tf

            self.loaded = tf.saved_model.load(str(path))
            self.signature = self.loaded.signatures["serving_default"]
            _, specs = self.signature.structured_input_signature
            self.names = sorted(specs)
            self.shapes = [[d or -1 for d in specs[n].shape.as_list()] for n in self.names]
            self.kind = "savedmodel"
        elif suffix == ".keras":
            import keras

            self.net = keras.models.load_model(path, compile=False)
            self.shapes = [[d or -1 for d in t.shape] for t in self.net.inputs]
            self.kind = "keras"
        elif suffix == ".onnx":
            import onnxruntime as ort

            self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            self.shapes = [[d if isinstance(d, int) else -1 for d in i.shape] for i in self.session.get_inputs()]
            self.kind = "onnx"
            self.nms = _Nms.of(path, [o.name for o in self.session.get_outputs()])
        elif suffix == ".pt":
            import torch

            self.net = torch.jit.load(str(path)).eval()
            self.shapes = [[1, model.pixels.channels, 32, 32]]   # TorchScript records no shape
            self.kind = "torch"
        else:
            self.runner = _LiteRT(path)
            self.shapes = self.runner.signature_shapes
            self.kind = "tflite"

    def fix_size(self, size: list[int] | None) -> None:
        """Free height/width: the size the user asked the artifact for; the batch, free or not,
        is 1 (what an edge artifact takes; Keras and TF run any batch), as is any other free dim."""
        for shape in self.shapes:
            if size and len(shape) == 4:
                hw = (2, 3) if _layout(shape) == "NCHW" and shape[1] in (1, 3) else (1, 2)
                shape[hw[0]], shape[hw[1]] = size
            shape[:] = [1 if (i == 0 and len(shape) >= 2) or d <= 0 else d for i, d in enumerate(shape)]

    def __call__(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        if self.kind == "keras":
            out = self.net(inputs if len(inputs) > 1 else inputs[0], training=False)
            return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]
        if self.kind == "savedmodel":
            out = self.signature(**dict(zip(self.names, inputs)))
            return [np.asarray(out[k]) for k in sorted(out)]
        if self.kind == "onnx":
            names = [i.name for i in self.session.get_inputs()]
            return [np.asarray(o) for o in self.session.run(None, dict(zip(names, inputs)))]
        if self.kind == "torch":
            import torch

            with torch.no_grad():
                out = self.net(*[torch.from_numpy(i) for i in inputs])
            return [o.numpy() for o in (out if isinstance(out, (list, tuple)) else [out])]
        return self.runner(inputs)


# --------------------------------------------------------------------------- the artifact

class _LiteRT:
    def __init__(self, path: Path):
        from ai_edge_litert.interpreter import Interpreter

        self.interp = Interpreter(model_path=str(path))
        self.interp.allocate_tensors()
        self.inputs, self.outputs = self.interp.get_input_details(), self.interp.get_output_details()
        self.shapes = [list(d["shape"]) for d in self.inputs]
        self.signature_shapes = [[int(v) for v in d["shape_signature"]] for d in self.inputs]
        self.scales = [d["quantization"][0] for d in self.outputs]

    def __call__(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        if [list(v.shape) for v in inputs] != self.shapes:   # a free size or batch, fixed by the caller
            for detail, value in zip(self.inputs, inputs):
                self.interp.resize_tensor_input(detail["index"], list(value.shape))
            self.interp.allocate_tensors()
            self.inputs, self.outputs = self.interp.get_input_details(), self.interp.get_output_details()
            self.shapes = [list(v.shape) for v in inputs]
        for detail, value in zip(self.inputs, inputs):
            scale, zero = detail["quantization"]
            if detail["dtype"] in (np.uint8, np.int8) and scale:
                info = np.iinfo(detail["dtype"])
                value = np.clip(np.round(value / scale + zero), info.min, info.max)
            self.interp.set_tensor(detail["index"], value.astype(detail["dtype"]))
        self.interp.invoke()
        result = []
        for detail in self.outputs:
            value = self.interp.get_tensor(detail["index"]).astype(np.float32)
            scale, zero = detail["quantization"]
            result.append((value - zero) * scale if scale else value)
        return result


class Artifact:
    """An artifact run by its raw runtime, fed as its manifest says."""

    def __init__(self, path: Path):
        self.path = Path(path)
        sidecar = self.path.with_name(self.path.name + ".edgekit.json")
        self.manifest = json.loads(sidecar.read_text()) if sidecar.exists() else {}
        self.scales: list = []
        if self.path.suffix == ".tflite":
            self.runner = _LiteRT(self.path)
            self.shapes, self.scales = self.runner.shapes, self.runner.scales
        elif self.path.suffix == ".onnx":
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.add_session_config_entry("session.x64quantprecision", "1")
            session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
            names = [i.name for i in session.get_inputs()]
            self.shapes = [[d if isinstance(d, int) else 1 for d in i.shape] for i in session.get_inputs()]
            self.runner = lambda xs: [np.asarray(o) for o in session.run(None, dict(zip(names, xs)))]
        elif self.path.suffix == ".xml":
            import openvino as ov

            # CPUs with AVX512_BF16/AMX run f32 IRs in bf16 unless told: the oracle wants the IR's own precision
            compiled = ov.Core().compile_model(str(self.path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
            self.shapes = [list(i.get_partial_shape().get_min_shape()) for i in compiled.inputs]
            self.runner = lambda xs: [np.asarray(v) for v in compiled(xs).values()]
        else:
            raise ValueError(f"no raw runtime for {self.path}")

    @property
    def preprocess(self) -> dict:
        return self.manifest.get("preprocess", {})

    def __call__(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return self.runner(inputs)


def _pair(reference: list[np.ndarray], got: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """Each source output with the artifact output of the same size that agrees with it best
    (converters reorder outputs); (reference, artifact output reshaped, artifact index)."""
    pairs, free = [], list(range(len(got)))
    for ref in reference:
        candidates = [j for j in free if got[j].size == ref.size]
        assert candidates, f"no artifact output of size {ref.size} (shape {ref.shape}) among {[g.shape for g in got]}"

        def error(j):
            g = got[j].reshape(ref.shape) if got[j].shape == ref.shape or got[j].ndim != ref.ndim \
                else _transposed(got[j], ref)
            return float(np.abs(g - ref).mean()), g

        best = min(candidates, key=lambda j: error(j)[0])
        pairs.append((ref, error(best)[1], best))
        free.remove(best)
    return pairs


def _transposed(value: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """A channels-first/last twin of REF's shape (ONNX/OpenVINO keep NCHW outputs)."""
    if value.ndim == 4 and value.shape == (ref.shape[0], ref.shape[3], ref.shape[1], ref.shape[2]):
        return value.transpose(0, 2, 3, 1)
    if value.ndim == 4 and value.shape == (ref.shape[0], ref.shape[2], ref.shape[3], ref.shape[1]):
        return value.transpose(0, 3, 1, 2)
    return value.reshape(ref.shape)


def channel_axis(shape: tuple[int, ...]) -> int | None:
    """The oracle's own reading of an output's channel axis (not edgekit's): of [1, A, B] the
    shorter of A and B (YOLO rows [1, 4 + C, N], SSD columns [1, N, 4]); of [1, H, W, C] or
    [1, C, H, W] the shorter of the first and last; None for vectors and square maps."""
    dims = [a for a in range(1, len(shape)) if shape[a] > 1]
    if len(dims) == 2 and shape[dims[0]] != shape[dims[1]]:
        return min(dims, key=lambda a: shape[a])
    if len(dims) == 3 and shape[dims[0]] != shape[dims[-1]]:
        return min((dims[0], dims[-1]), key=lambda a: shape[a])
    return None


def tolerance(ref: np.ndarray, precision: str, step: float | None) -> np.ndarray:
    """Absolute tolerance per element of REF ([photos, ...], every photo's source output):
    TOLERANCE[precision] times its channel's scale (the larger of the spread and the largest
    magnitude of that channel's values over all photos), so a channel of scores in 0..1 is not
    judged on the scale of the boxes in pixels beside it (a pooled tolerance passed collapsed int8
    scores, issue 13). int8 adds up to 3 quantization steps (STEP, real units), never more than a
    quarter of the channel's scale."""
    axis = channel_axis(ref.shape[1:])
    axis = None if axis is None else axis + 1
    moved = ref if axis is None else np.moveaxis(ref, axis, 0)
    groups = moved.reshape(1 if axis is None else moved.shape[0], -1)
    scale = np.maximum(groups.max(axis=1) - groups.min(axis=1), np.abs(groups).max(axis=1)) + 1e-6
    atol = TOLERANCE[precision] * scale
    if step:
        atol = np.maximum(atol, np.minimum(3 * step, 0.25 * scale))
    shape = [1] * ref.ndim
    if axis is not None:
        shape[axis] = len(atol)
    return atol.reshape(shape) if axis is not None else np.full(shape, atol[0])


def check(model: FieldModel, source_path: Path, artifact_path: Path, precision: str, data: dict[str, Path],
          input_size: list[int] | None = None) -> None:
    """assert_allclose(artifact on real photos, source framework on the same photos), channel by
    channel (see `tolerance`)."""
    source = Source(model, source_path)
    source.fix_size(input_size)
    artifact = Artifact(artifact_path)
    runs = [(source(feeds(model, source.shapes, data, None, photo)),
             artifact(feeds(model, artifact.shapes, data, artifact.preprocess, photo))) for photo in range(PHOTOS)]
    if _detections(runs[0][0]):
        checked = sum(_check_detections(reference, got, precision, f"{artifact_path.name} on photo {photo}")
                      for photo, (reference, got) in enumerate(runs))
        assert checked, f"{artifact_path.name}: no source detection scored >= 0.35 on {PHOTOS} photos"
        return
    if source.nms is not None:
        checked = sum(source.nms.check(reference, got, precision, f"{artifact_path.name} on photo {photo}")
                      for photo, (reference, got) in enumerate(runs))
        assert checked, f"{artifact_path.name}: no box selected clearly above the score threshold on {PHOTOS} photos"
        runs = [source.nms.without_selected(reference, got) for reference, got in runs]
    pairs = [_pair(reference, got) for reference, got in runs]
    for position, (_, _, index) in enumerate(pairs[0]):
        refs = [p[position][0] for p in pairs]
        step = artifact.scales[index] if precision == "int8" and index < len(artifact.scales) else None
        # outputs of run-time size (NMS: one row per kept box) differ per photo: compared photo by photo
        groups = [range(len(pairs))] if len({r.shape for r in refs}) == 1 else [[i] for i in range(len(pairs))]
        for photos in groups:
            ref = np.stack([refs[i] for i in photos])
            value = np.stack([pairs[i][position][1] for i in photos])
            atol = tolerance(ref, precision, step)
            # in units of each channel's tolerance: assert_allclose takes one scalar atol
            np.testing.assert_allclose(value / atol, ref / atol, rtol=0, atol=1.0,
                                       err_msg=f"{artifact_path.name} output {index} vs the source on photo(s) "
                                               f"{list(photos)} (in units of the per-channel tolerance "
                                               f"{atol.ravel()[:8]})")


def _detections(outputs: list[np.ndarray]) -> bool:
    """TFLite_Detection_PostProcess's outputs: boxes [1, N, 4], classes and scores [1, N], count [1]."""
    ranks = sorted(np.asarray(o).ndim for o in outputs)
    return len(outputs) == 4 and ranks == [1, 2, 2, 3]


def _split_detections(outputs: list[np.ndarray]):
    """(boxes [K, 4], classes [K], scores [K]) of the K = count detections; classes are the
    [1, N] output holding whole numbers."""
    outputs = [np.asarray(o, np.float32) for o in outputs]
    boxes = next(o for o in outputs if o.ndim == 3)[0]
    count = int(next(o for o in outputs if o.ndim == 1)[0])
    pair = [o[0] for o in outputs if o.ndim == 2]
    classes, scores = pair if np.allclose(pair[0], np.round(pair[0])) else pair[::-1]
    return boxes[:count], classes[:count], scores[:count]


def _check_detections(reference: list[np.ndarray], got: list[np.ndarray], precision: str, where: str) -> int:
    """Each source detection scoring >= 0.35 has an artifact detection of its class whose box
    (normalized coordinates) and score equal it within TOLERANCE[precision] (0..1 quantities). The
    op sorts by score, so near-equal scores swap places: detections are matched, not rows.
    Returns how many source detections were checked."""
    ref_boxes, ref_classes, ref_scores = _split_detections(reference)
    boxes, classes, scores = _split_detections(got)
    atol = max(TOLERANCE[precision], 1e-4)
    clear = ref_scores >= 0.35
    for box, cls, score in zip(ref_boxes[clear], ref_classes[clear], ref_scores[clear]):
        same = np.flatnonzero(classes == cls)
        assert len(same), f"{where}: no artifact detection of class {int(cls)} (source score {score:.3f})"
        best = same[np.argmin(np.abs(boxes[same] - box).max(axis=1))]
        np.testing.assert_allclose(boxes[best], box, rtol=0, atol=atol, err_msg=f"{where}: box of class {int(cls)}")
        np.testing.assert_allclose(scores[best], score, rtol=0, atol=atol, err_msg=f"{where}: score of class {int(cls)}")
    return int(clear.sum())


class _Nms:
    """ONNX NonMaxSuppression whose inputs (boxes [1, N, 4], scores [1, C, N]) and output
    (selected [K, 3]: batch, class, box; K set at run time) are all graph outputs. Its
    parameters are read from the source graph itself."""

    def __init__(self, positions: tuple[int, int, int], center: bool, iou: float, threshold: float):
        self.boxes, self.scores, self.selected = positions
        self.center, self.iou, self.threshold = center, iou, threshold

    @classmethod
    def of(cls, path: Path, outputs: list[str]) -> "_Nms | None":
        import onnx
        from onnx import numpy_helper

        graph = onnx.load(str(path)).graph
        constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        for node in graph.node:
            if node.op_type == "NonMaxSuppression" and all(n in outputs for n in (*node.input[:2], node.output[0])):
                center = any(a.name == "center_point_box" and a.i == 1 for a in node.attribute)
                def value(i: int, default: float) -> float:   # an initializer; else ONNX's default
                    known = constants.get(node.input[i]) if len(node.input) > i else None
                    return default if known is None else float(known.ravel()[0])

                iou, threshold = value(3, 0.0), value(4, 0.0)
                positions = (outputs.index(node.input[0]), outputs.index(node.input[1]), outputs.index(node.output[0]))
                return cls(positions, center, iou, threshold)
        return None

    def _split(self, outputs: list[np.ndarray], reference: bool):
        """(boxes [N, 4] as corners, scores [C, N], selected [K, 3]) of one side's outputs; the
        artifact's are found by shape (converters reorder outputs)."""
        if reference:
            boxes, scores, selected = (outputs[i] for i in (self.boxes, self.scores, self.selected))
        else:
            selected = next(o for o in outputs if o.ndim == 2 and o.shape[1] == 3)
            boxes = next(o for o in outputs if o.ndim == 3 and o.shape[2] == 4)
            scores = next(o for o in outputs if o.ndim == 3 and o.shape[2] == boxes.shape[1] and o is not boxes)
        boxes = np.asarray(boxes, np.float64)[0]
        if self.center:
            boxes = np.concatenate([boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2], axis=1)
        else:   # ONNX corners are [y1, x1, y2, x2] in either order of each pair
            boxes = np.concatenate([np.minimum(boxes[:, :2], boxes[:, 2:]), np.maximum(boxes[:, :2], boxes[:, 2:])], 1)
        return boxes, np.asarray(scores, np.float64)[0], np.asarray(selected).astype(np.int64)

    def without_selected(self, reference: list[np.ndarray], got: list[np.ndarray]):
        """Both sides' outputs without the selected indices (checked by `check`)."""
        index = next(i for i, o in enumerate(got) if o.ndim == 2 and o.shape[1] == 3)
        return ([o for i, o in enumerate(reference) if i != self.selected], [o for i, o in enumerate(got) if i != index])

    def check(self, reference: list[np.ndarray], got: list[np.ndarray], precision: str, where: str) -> int:
        """Every box one side selects with a score clearly above the threshold (by the precision's
        tolerance) has a box of its class selected on the other side that overlaps it at least as
        much as NMS's own IoU threshold (a near-tied neighbour NMS would have kept instead), with
        a score within that tolerance. Returns how many source boxes were checked."""
        atol = max(TOLERANCE[precision], 1e-4)
        sides = [self._split(reference, True), self._split(got, False)]
        checked = 0
        for this, other, name in ((0, 1, "source"), (1, 0, "artifact")):
            boxes, scores, selected = sides[this]
            o_boxes, o_scores, o_selected = sides[other]
            for _, cls, box in selected:
                score = scores[cls, box]
                if score < self.threshold + atol:
                    continue
                checked += this == 0
                mates = o_selected[o_selected[:, 1] == cls][:, 2]
                assert len(mates), f"{where}: the {name}'s box {box} of class {cls} (score {score:.3f}) has no box " \
                                   f"of its class on the other side"
                overlaps = _iou(boxes[box], o_boxes[mates])
                best = mates[int(np.argmax(overlaps))]
                assert overlaps.max() >= max(self.iou, 0.5), f"{where}: the {name}'s box {box} of class {cls} " \
                    f"(score {score:.3f}) overlaps the other side's boxes by at most IoU {overlaps.max():.2f}"
                np.testing.assert_allclose(o_scores[cls, best], score, rtol=0, atol=atol,
                                           err_msg=f"{where}: score of the {name}'s box {box}, class {cls}")
        return checked


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one corner box [4] with each of BOXES [M, 4]."""
    low = np.maximum(box[:2], boxes[:, :2])
    high = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(high - low, 0, None), axis=1)
    union = np.prod(box[2:] - box[:2]) + np.prod(boxes[:, 2:] - boxes[:, :2], axis=1) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
