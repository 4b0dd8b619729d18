"""ONNX target: the fp32 interchange model, and int8 QDQ through ONNX Runtime's static quantizer."""
from __future__ import annotations

from pathlib import Path

from .. import deps
from ..bridges.base import ConvertContext
from ..modelcard import for_artifact
from ..sources.base import SourceModel
from ..sources.onnx import OnnxSource, _dims, load_checked
from .base import Target, TargetOutput, register


@register
class OnnxTarget(Target):
    name = "onnx"
    format = "onnx"
    precisions = ("fp32", "int8")
    accepts = ("onnx",)
    requires = ("onnx", "onnxruntime")

    def convert(self, model: SourceModel, precision: str, artifact: Path, ctx: ConvertContext) -> TargetOutput:
        converters = {"onnx": deps.version("onnx") or "?"}
        if precision == "fp32":
            model.save_static(artifact)   # the inputs at the shapes edgekit fixed (batch 1, --input-size)
        else:
            from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                                  quantize_static)
            from onnxruntime.quantization.shape_inference import quant_pre_process

            names = [t.name for t in model.inputs()]
            samples = ctx.calibration_feeds(model.inputs(), model.layout)

            class Reader(CalibrationDataReader):
                def __init__(self):
                    self._it = iter(samples)

                def get_next(self):
                    sample = next(self._it, None)
                    return None if sample is None else dict(zip(names, sample))

            static = artifact.with_name(artifact.stem + ".static.onnx")
            model.save_static(static)
            prepared = artifact.with_name(artifact.stem + ".prep.onnx")
            quant_pre_process(str(static), str(prepared), skip_symbolic_shape=True)
            static.unlink()
            quantize_static(str(prepared), str(artifact), Reader(), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
            prepared.unlink()
            converters["onnxruntime"] = deps.version("onnxruntime") or "?"
        write_card(artifact, ctx)
        result = OnnxSource(artifact, load_checked(artifact))
        return TargetOutput(files=[artifact], inputs=result.inputs(), outputs=result.outputs(),
                            converters=converters, layout=model.layout)


def write_card(path: Path, ctx: ConvertContext) -> None:
    """The model card into the ONNX file: `doc_string` (description), `metadata_props` with the
    keys ONNX's IR spec names (model_author, model_license) plus name and version, and each graph
    input/output's `doc_string`. ONNX Runtime shows them through InferenceSession.get_modelmeta()."""
    import onnx

    card = ctx.card
    model = onnx.load(str(path))
    if card.description:
        model.doc_string = card.description
    props = {"model_author": card.author, "model_license": card.license, "name": card.name, "version": card.version}
    kept = [p for p in model.metadata_props if p.key not in props]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in props.items():
        if value:
            model.metadata_props.add(key=key, value=value)
    if card.version.isdigit():  # ModelProto.model_version is an integer
        model.model_version = int(card.version)
    initializers = {i.name for i in model.graph.initializer}
    graph_inputs = [i for i in model.graph.input if i.name not in initializers]
    for values, described, source in ((graph_inputs, card.inputs, ctx.source_inputs),
                                      (list(model.graph.output), card.outputs, ctx.source_outputs)):
        shapes = [[d if isinstance(d, int) else -1 for d in _dims(v)] for v in values]
        for value, text in zip(values, for_artifact(described, source, shapes)):
            if text:
                value.doc_string = text
    onnx.save(model, str(path))
