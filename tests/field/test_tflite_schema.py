"""Differential test: edgekit's pure-Python TFLite structure check against LiteRT's own loader.

Every TFLite schema feature we can produce (shared buffers, buffers after the flatbuffer, sparse
weights, fp16 and int4 weights behind DEQUANTIZE, dynamic and free dimensions, a custom op, the
SSD post-processing op) must pass the check whenever LiteRT allocates and invokes the file; damaged
files must be refused by both. LiteRT runs in a child process, since a damaged file may crash it.
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgekit.errors import ModelFormatError
from edgekit.formats import FORMATS

from . import tflite_variants as tv

pytest.importorskip("tensorflow")
pytest.importorskip("ai_edge_litert")

_LITERT = """
import sys
import numpy as np
from ai_edge_litert.interpreter import Interpreter
interp = Interpreter(model_path=sys.argv[1])
interp.allocate_tensors()
for d in interp.get_input_details():
    interp.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
interp.invoke()
print("ran")
"""


def litert_loads(path: Path) -> tuple[bool, str]:
    """(True, '') when LiteRT allocates and invokes PATH; else (False, its last words)."""
    proc = subprocess.run([sys.executable, "-c", _LITERT, str(path)], capture_output=True, text=True, timeout=120)
    if proc.returncode == 0 and "ran" in proc.stdout:
        return True, ""
    lines = [line for line in (proc.stderr + proc.stdout).splitlines() if line.strip()]
    return False, lines[-1] if lines else f"signal {-proc.returncode}" if proc.returncode < 0 else "?"


def ours_accepts(path: Path) -> tuple[bool, str]:
    try:
        FORMATS.get("tflite").check_structure(path)
    except ModelFormatError as exc:
        return False, exc.one_line()
    return True, ""


@pytest.fixture(scope="module")
def variants(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("schema")
    paths = {}
    for name, build in tv.BUILDERS.items():
        paths[name] = folder / f"{name}.tflite"
        paths[name].write_bytes(build())
    return paths


VALID = sorted(set(tv.BUILDERS) - {"custom_op"})


@pytest.mark.parametrize("name", VALID)
def test_check_accepts_what_litert_runs(variants, name):
    loads, why = litert_loads(variants[name])
    assert loads, f"LiteRT should run {name}: {why}"
    accepted, why = ours_accepts(variants[name])
    assert accepted, f"the structure check refused {name}, which LiteRT runs: {why}"


def test_schema_features_are_really_there(variants):
    """The variants carry the feature they are named for (read with edgekit's reader)."""
    from edgekit.tflite_model import read_tflite

    def tensors(name):
        return [t for g in read_tflite(variants[name]).subgraphs for t in g.tensors]

    assert any(t.sparse for t in tensors("sparse_weights"))
    assert "DENSIFY" in read_tflite(variants["sparse_weights"]).op_counts()
    assert any(t.dtype == "int4" for t in tensors("int4_weights"))
    assert any(t.dtype == "float16" for t in tensors("fp16_weights"))
    buffers = [t.buffer for t in tensors("shared_buffers") if t.buffer and len(t.shape) == 4]
    assert len(buffers) != len(set(buffers)), "two weight tensors share one buffer"
    _, packed = tv._unpack(variants["offset_buffers"].read_bytes())
    assert any(buffer.offset > 1 and buffer.size for buffer in packed.buffers), "weights stored after the flatbuffer"
    assert "TFLite_Detection_PostProcess" in read_tflite(variants["ssd_postprocess"]).op_counts()


def test_custom_op_is_well_formed_but_unresolved(variants):
    """Structure is fine; only the op resolver lacks AcmeSwish. Conversion must name it."""
    loads, why = litert_loads(variants["custom_op"])
    assert not loads and "AcmeSwish" in why
    assert ours_accepts(variants["custom_op"])[0]
    from edgekit.tflite_model import custom_op_problem, read_tflite

    assert "custom op 'AcmeSwish', which only its author's runtime registers" in custom_op_problem(
        read_tflite(variants["custom_op"]))
    assert custom_op_problem(read_tflite(variants["ssd_postprocess"])) is None   # converters carry it


# ------------------------------------------------------------------------ damaged files

def _edit(data: bytes, change) -> bytes:
    schema, model = tv._unpack(data)
    change(schema, model)
    return tv._pack(model)


def _weight(schema, model):
    graph = model.subgraphs[0]
    return next(t for t in graph.tensors if t.buffer and model.buffers[t.buffer].data is not None
                and len(t.shape) == 4)


def _short_weight(schema, model):
    tensor = _weight(schema, model)
    model.buffers[tensor.buffer].data = model.buffers[tensor.buffer].data[:-4]


def _missing_buffer(schema, model):
    _weight(schema, model).buffer = len(model.buffers) + 5


def _short_int4(schema, model):
    tensor = next(t for t in model.subgraphs[0].tensors if t.type == schema.TensorType.INT4)
    model.buffers[tensor.buffer].data = model.buffers[tensor.buffer].data[: len(model.buffers[tensor.buffer].data) // 2]


def _cut_last_buffer(data: bytes) -> bytes:
    """Cut the file inside the last weight stored after the flatbuffer (a truncated download)."""
    _, model = tv._unpack(data)
    last = max((b for b in model.buffers if b.offset > 1 and b.size), key=lambda b: b.offset)
    return data[: last.offset + last.size // 2]


DAMAGED = {
    "weight buffer 4 bytes short": lambda: _edit(tv.plain(), _short_weight),
    "tensor refers to a missing buffer": lambda: _edit(tv.plain(), _missing_buffer),
    "int4 buffer half its size": lambda: _edit(tv.int4_weights(), _short_int4),
    "offset data cut off the end": lambda: _cut_last_buffer(tv.offset_buffers()),
    "file cut in half": lambda: tv.plain()[: len(tv.plain()) // 2],
}


@pytest.mark.parametrize("name", sorted(DAMAGED))
def test_both_refuse_damaged_files(tmp_path, name):
    path = tmp_path / "damaged.tflite"
    path.write_bytes(DAMAGED[name]())
    loads, _ = litert_loads(path)
    assert not loads, f"LiteRT ran a file damaged by: {name}"
    accepted, _ = ours_accepts(path)
    assert not accepted, f"the structure check accepted a file LiteRT refuses ({name})"


# ----------------------------------------------------------- published models, when installed

def _mediapipe_models() -> list[Path]:
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        return []
    root = Path(list(spec.submodule_search_locations)[0]) / "modules"
    return sorted(root.rglob("*.tflite"))


@pytest.mark.skipif(not _mediapipe_models(), reason="published float .tflite models ship in the mediapipe wheel, "
                    "which is not installed (deliberately no dependency: it installs opencv-contrib-python's cv2 "
                    "over opencv-python's)")
@pytest.mark.parametrize("path", _mediapipe_models(), ids=lambda p: p.name)
def test_published_models(path):
    loads, _ = litert_loads(path)
    if loads:
        assert ours_accepts(path)[0], f"the structure check refused {path.name}, which LiteRT runs"


def test_litert_really_runs_the_variants(variants):
    """The positive cases compute something: shared/offset/sparse/fp16/int4 weights give outputs
    close to the plain float model's where the weights are the same."""
    x = [np.random.default_rng(0).random((1, 16, 16, 3), dtype=np.float32)]
    plain = tv.litert_run(variants["plain"].read_bytes(), x)[0]
    for name, tolerance in (("offset_buffers", 1e-6), ("fp16_weights", 2e-2)):
        np.testing.assert_allclose(tv.litert_run(variants[name].read_bytes(), x)[0], plain, atol=tolerance * 10,
                                   rtol=tolerance)


@pytest.mark.parametrize("name", ["sparse_weights", "int4_weights", "fp16_weights", "offset_buffers", "plain"])
def test_plain_float_weights_compute_the_same(variants, name):
    """The rewrite tf2onnx gets (edgekit/bridges/tflite_weights.py): dense float32 constants, no
    DENSIFY/DEQUANTIZE of constants, same outputs under LiteRT."""
    from edgekit.bridges.tflite_weights import needs_rewrite, plain_float_weights
    from edgekit.tflite_model import parse_tflite, read_tflite

    data = variants[name].read_bytes()
    model = read_tflite(variants[name])
    if not needs_rewrite(model):
        assert name == "plain"
        return
    plain = plain_float_weights(data)
    rewritten = parse_tflite(plain)
    assert not {"DENSIFY", "DEQUANTIZE"} & set(rewritten.op_counts())
    assert not any(t.sparse or t.dtype in ("int4", "float16") for g in rewritten.subgraphs for t in g.tensors)
    assert not any(b.external for b in rewritten.buffers)
    x = [np.random.default_rng(2).random((1, 16, 16, 3), dtype=np.float32)]
    np.testing.assert_allclose(tv.litert_run(plain, x)[0], tv.litert_run(data, x)[0], rtol=1e-5, atol=1e-5)
