"""A classifier whose labels repeat (ImageNet names 'crane' and 'maillot' twice) keeps every
class in Core ML: the scores come back as a dictionary keyed by label, so a repeated key would
drop a class there and the runner would fall back to the wrong order. Oracle: the classify op's
classes as coremltools wrote them into the package (read from the spec, not from edgekit)."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import CLASSES, SIZE

pytest.importorskip("coremltools")
pytest.importorskip("torch")


def _package_classes(path) -> list[str]:
    """The class labels of the mlprogram's `classify` op, in class order."""
    import coremltools as ct

    spec = ct.utils.load_spec(str(path))
    function = spec.mlProgram.functions["main"]
    block = function.block_specializations[next(iter(function.block_specializations))]
    classify = next(op for op in block.operations if op.type == "classify")
    values = classify.inputs["classes"].arguments[0].value.immediateValue.list.values
    return [value.immediateValue.tensor.strings.values[0] for value in values]


def test_repeated_labels_stay_distinct_classes_in_core_ml(torch_module, tmp_path):
    from edgekit.convert import ConvertRequest, convert
    from edgekit.runtime.coreml import CoreMLRunner

    labels = [f"class{i}" for i in range(CLASSES)]
    labels[3] = labels[7] = "crane"
    (tmp_path / "labels.txt").write_text("\n".join(labels) + "\n")
    result = convert(torch_module, ConvertRequest(targets=["coreml"], precisions=["fp32"], out_dir=tmp_path / "out",
                                                  input_size=[SIZE, SIZE], mean=[127.5], std=[127.5],
                                                  task="classification", labels=tmp_path / "labels.txt",
                                                  name="tiny", verify=False))
    package = result.artifacts[0].path
    classes = _package_classes(package)
    assert len(classes) == CLASSES and len(set(classes)) == CLASSES
    assert classes[3] == "crane" and classes[7] == "crane (7)"

    # the runner puts Core ML's label -> score dictionary back in class order
    runner = CoreMLRunner.__new__(CoreMLRunner)
    from edgekit.manifest import read_manifest

    runner.manifest = read_manifest(package)
    assert runner.manifest.labels == labels            # the manifest keeps the source's labels
    scores = np.arange(CLASSES, dtype=np.float32)
    np.testing.assert_array_equal(runner._array(dict(zip(classes, scores))), scores[None])


def test_core_ml_int8_is_weights_only_and_needs_no_calibration(tmp_path):
    """Core ML int8 is linear weight quantization (coremltools.optimize): no activation ranges, so
    no --calib; the manifest records no calibration. Oracle: the package's own weights, read from
    the spec, are int8 constants behind constexpr_affine_dequantize (or constexpr_blockwise_shift_scale).
    coremltools leaves tensors under 2048 elements in float (OpLinearQuantizerConfig's
    weight_threshold), so the model has a 32 -> 64 3x3 convolution (18432 weights)."""
    import coremltools as ct
    import torch

    from edgekit.convert import ConvertRequest, convert
    from edgekit.manifest import read_manifest

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 3), torch.nn.ReLU(), torch.nn.Conv2d(32, 64, 3),
                                 torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(64, CLASSES)).eval()
    result = convert(module, ConvertRequest(targets=["coreml"], precisions=["int8"], out_dir=tmp_path / "out",
                                                  input_size=[SIZE, SIZE], mean=[127.5], std=[127.5],
                                                  task="classification", name="tiny", verify_samples=8))
    package = result.artifacts[0].path
    assert read_manifest(package).calibration is None
    function = ct.utils.load_spec(str(package)).mlProgram.functions["main"]
    block = function.block_specializations[next(iter(function.block_specializations))]
    kinds = {op.type for op in block.operations}
    assert kinds & {"constexpr_affine_dequantize", "constexpr_blockwise_shift_scale"}, sorted(kinds)


def test_core_ml_int8_of_a_model_with_only_small_weights_says_it_stayed_fp16(tmp_path):
    """Every weight under coremltools' 2048-element threshold: linear_quantize_weights changes
    nothing, and the manifest said int8 weights all the same (new-user trial). Oracle: the spec has
    no constexpr op, and the manifest and warnings say fp16."""
    import coremltools as ct
    import torch

    from edgekit.convert import ConvertRequest, convert
    from edgekit.manifest import read_manifest

    module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                 torch.nn.Linear(4, 3))
    result = convert(module.eval(), ConvertRequest(targets=["coreml"], precisions=["int8"], out_dir=tmp_path / "out",
                                                   input_size=[SIZE, SIZE], mean=[127.5], std=[127.5], verify=False))
    package = result.artifacts[0].path
    function = ct.utils.load_spec(str(package)).mlProgram.functions["main"]
    block = function.block_specializations[next(iter(function.block_specializations))]
    assert not any(op.type.startswith("constexpr_") for op in block.operations)
    manifest = read_manifest(package)
    assert manifest.options["weights"] == "fp16"
    assert any("no weight tensor has 2048 or more elements" in w for w in manifest.warnings), manifest.warnings
