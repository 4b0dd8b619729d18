"""Fuzz: damaged model files never crash, hang or trace back; they end with exit code 2 and one line.

For each format (TFLite, ONNX, OpenVINO IR .xml+.bin) a tiny real model is built, then mutated
deterministically into at least 200 damaged files: truncations, bit flips and out-of-range
indices/sizes (operator inputs, opcode and buffer indices, node inputs, port ids, weight offsets).
Each goes through `edgekit inspect`, `edgekit predict` and, when that command exists, `edgekit bench`.

Most runs happen in two worker processes that call the CLI in-process file after file (click's
CliRunner), with SIGALRM left at its default action: a file that takes more than 10 s kills the
worker, and so does any native crash; either fails the test naming the file. A sample also runs as
real separate `python -m edgekit` processes. A bit flip can leave a valid model (a flipped weight
bit, a renamed tensor): such a file may run and exit 0 with a result; truncations and out-of-range
mutants must be refused, and at least 200 mutants per format must be refused with exit code 2.
"""
from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

PER_FORMAT = int(__import__("os").environ.get("FUZZ_N", 240))        # mutants per format (at least 200 of them must be refused)
PER_FILE_SECONDS = 10    # the bound per file and command
SAMPLE = 6               # mutants per format that also run as separate processes
SEED = 20261128

WORKER = r"""
import json, os, signal, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from click.testing import CliRunner
from edgekit.cli import main
signal.signal(signal.SIGALRM, signal.SIG_DFL)   # a hang ends this process; the parent names the file
jobs = json.loads(sys.stdin.read())
for args in jobs:
    print(json.dumps({"start": args}), flush=True)
    signal.alarm(int(os.environ["PER_FILE_SECONDS"]))
    started = time.monotonic()
    result = CliRunner().invoke(main, args)
    signal.alarm(0)
    error = None
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        error = f"{type(result.exception).__name__}: {result.exception}"
    print(json.dumps({"args": args, "code": result.exit_code, "stderr": result.stderr, "stdout": result.stdout[-400:],
                      "error": error, "seconds": round(time.monotonic() - started, 2)}), flush=True)
"""


# ------------------------------------------------------------------------------ base models

def _onnx_model():
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.normal(0, 0.2, (8, 3, 3, 3)).astype(np.float32), "w"),
               numpy_helper.from_array(np.zeros(8, np.float32), "b"),
               numpy_helper.from_array(rng.normal(0, 0.2, (8, 5)).astype(np.float32), "fc"),
               numpy_helper.from_array(np.zeros(5, np.float32), "fcb")]
    nodes = [helper.make_node("Conv", ["image", "w", "b"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "fc", "fcb"], ["logits"])]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 5])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _tflite_bytes() -> bytes:
    import tensorflow as tf

    kernel = np.random.default_rng(0).normal(0, 0.2, (3, 3, 3, 8)).astype(np.float32)
    dense = np.random.default_rng(1).normal(0, 0.2, (8, 5)).astype(np.float32)

    class Tiny(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 16, 16, 3], tf.float32, name="image")])
        def serve(self, image):
            x = tf.nn.relu(tf.nn.conv2d(image, kernel, 2, "SAME"))
            return tf.matmul(tf.reduce_mean(x, axis=[1, 2]), dense)

    module = Tiny()
    return tf.lite.TFLiteConverter.from_concrete_functions([module.serve.get_concrete_function()], module).convert()


@pytest.fixture(scope="module")
def base_models(tmp_path_factory) -> dict[str, Path]:
    pytest.importorskip("onnx")
    folder = tmp_path_factory.mktemp("fuzz_base")
    import onnx

    models = {}
    onnx.save(_onnx_model(), folder / "tiny.onnx")
    models["onnx"] = folder / "tiny.onnx"
    if _has("tensorflow") and _has("ai_edge_litert"):
        (folder / "tiny.tflite").write_bytes(_tflite_bytes())
        models["tflite"] = folder / "tiny.tflite"
    if _has("openvino"):
        import openvino as ov

        ov.save_model(ov.convert_model(str(folder / "tiny.onnx")), str(folder / "tiny.xml"), compress_to_fp16=False)
        models["openvino"] = folder / "tiny.xml"
    return models


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


# ------------------------------------------------------------------------------ mutations

def _flip(data: bytes, rng: random.Random, lo: int = 0) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        position = rng.randrange(lo, len(out))
        out[position] ^= 1 << rng.randrange(8)
    return bytes(out)


def _truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(0, len(data))]


def _tflite_index(data: bytes, rng: random.Random) -> bytes:
    """An index or size out of range, through the flatbuffer object API (then packed again)."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(data, 0)
    graph = model.subgraphs[0]
    big = rng.choice([len(graph.tensors) + rng.randrange(1, 1000), 2**31 - 1, -7])
    op = rng.choice(graph.operators)
    choice = rng.randrange(6)
    if choice == 0:
        op.inputs = [int(i) for i in op.inputs]   # the object API hands out read-only numpy arrays
        op.inputs[rng.randrange(len(op.inputs))] = big
    elif choice == 1:
        op.outputs = [big, *[int(i) for i in op.outputs[1:]]]
    elif choice == 2:
        op.opcodeIndex = len(model.operatorCodes) + rng.randrange(1, 50)
    elif choice == 3:
        rng.choice(graph.tensors).buffer = len(model.buffers) + rng.randrange(1, 50)
    elif choice == 4:
        graph.inputs = [big, *[int(i) for i in graph.inputs[1:]]]
    else:   # a weight tensor whose shape no longer matches its buffer
        tensor = next(t for t in graph.tensors if t.buffer and model.buffers[t.buffer].data is not None)
        tensor.shape = [int(tensor.shape[0]) * rng.randrange(2, 1000), *[int(d) for d in tensor.shape[1:]]]
    builder = flatbuffers.Builder(len(data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _onnx_index(data: bytes, rng: random.Random) -> bytes:
    """A reference or size out of range: a tensor name nothing produces, dims that do not fit the
    data, an opset that does not exist, a value produced twice."""
    import onnx

    model = onnx.load_from_string(data)
    graph = model.graph
    choice = rng.randrange(5)
    if choice == 0:     # a node reads a tensor that nothing produces
        node = rng.choice(list(graph.node))
        node.input[0] = f"missing_{rng.randrange(1000)}"
    elif choice == 1:   # an initializer's dims no longer match its data
        init = rng.choice(list(graph.initializer))
        init.dims[0] = init.dims[0] * rng.randrange(2, 10**6)
    elif choice == 2:   # the graph output names a tensor that does not exist
        graph.output[0].name = f"missing_{rng.randrange(1000)}"
    elif choice == 3:   # an opset that does not exist
        model.opset_import[0].version = rng.choice([0, 999, 2**40])
    else:               # two nodes write the same tensor
        nodes = list(graph.node)
        nodes[rng.randrange(1, len(nodes))].output[0] = nodes[0].output[0]
    return model.SerializeToString()


def _xml_index(text: str, rng: random.Random) -> str:
    """A number in the IR (layer/port ids, weight offsets/sizes, dims) set out of range."""
    numbers = list(re.finditer(r'(id|from-layer|to-layer|from-port|to-port|offset|size)="(\d+)"|<dim>(\d+)</dim>', text))
    match = rng.choice(numbers)
    group = 2 if match.group(2) is not None else 3
    value = str(rng.choice([int(match.group(group)) + rng.randrange(1, 10**6), 2**40, 999999]))
    return text[: match.start(group)] + value + text[match.end(group):]


def mutants(fmt: str, base: Path, out: Path, count: int) -> list[tuple[str, Path]]:
    """(kind, path) for COUNT damaged copies of BASE; deterministic for a given SEED."""
    rng = random.Random(f"{SEED}-{fmt}")
    out.mkdir(parents=True, exist_ok=True)
    data = base.read_bytes()
    weights = base.with_suffix(".bin").read_bytes() if fmt == "openvino" else b""
    made = []
    for index in range(count):
        kind = ("truncate", "flip", "index")[index % 3]
        path = out / f"m{index:03d}{base.suffix}"
        model, bin_data = data, weights
        if fmt == "openvino":
            kind = ("truncate", "flip", "index", "truncate-bin")[index % 4]
            if kind == "truncate":
                model = _truncate(data, rng)
            elif kind == "flip":
                model = _flip(data, rng)
            elif kind == "index":
                model = _xml_index(data.decode(), rng).encode()
            else:
                bin_data = _truncate(weights, rng)
            path.with_suffix(".bin").write_bytes(bin_data)
        elif kind == "truncate":
            model = _truncate(data, rng)
        elif kind == "flip":
            model = _flip(data, rng)
        else:
            model = (_tflite_index if fmt == "tflite" else _onnx_index)(data, rng)
        path.write_bytes(model)
        made.append((kind, path))
    return made


# ------------------------------------------------------------------------------ running

def _bench_args() -> list[str] | None:
    """`edgekit bench FILE ...` when that command exists (it is built separately)."""
    try:
        from edgekit.commands import bench  # noqa: F401
    except ImportError:
        return None
    from click.testing import CliRunner

    from edgekit.cli import main

    help_text = CliRunner().invoke(main, ["bench", "--help"]).output
    args = ["bench", "{file}", "--json"]
    for option, value in (("--runs", "2"), ("--warmup", "0")):
        if option in help_text:
            args += [option, value]
    return args


def run_workers(jobs: list[list[str]], workers: int = 2) -> list[dict]:
    """Run CLI jobs in-process in WORKERS subprocesses; a worker that dies fails with its file."""
    shares = [jobs[i::workers] for i in range(workers)]
    env = {**os.environ, "PER_FILE_SECONDS": str(PER_FILE_SECONDS), "TF_CPP_MIN_LOG_LEVEL": "3"}

    def work(share):
        done = subprocess.run([sys.executable, "-c", WORKER], input=json.dumps(share), capture_output=True,
                              text=True, env=env, timeout=PER_FILE_SECONDS * len(share) + 60)
        records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        finished = [r for r in records if "code" in r]
        if done.returncode != 0:
            last = next((r["start"] for r in reversed(records) if "start" in r), None)
            how = "was killed by the 10 s alarm (a hang)" if done.returncode == -14 else f"died ({done.returncode})"
            pytest.fail(f"fuzz worker {how} on: edgekit {' '.join(last or [])}\n{done.stderr[-1500:]}")
        return finished

    with ThreadPoolExecutor(workers) as pool:
        return [record for share in pool.map(work, shares) for record in share]


def check(record: dict, kind: str) -> str | None:
    """None when the outcome is acceptable, else what was wrong."""
    args, code, stderr = record["args"], record["code"], record["stderr"]
    if record["error"] or "Traceback" in stderr:
        return f"crashed: {record['error'] or stderr[-300:]}"
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    if code == 2:
        # warnings, and the plain progress lines a step slower than EDGEKIT_PROGRESS_AFTER prints
        # off a TTY (a bench row in its own process takes about 1 s here), are not errors
        errors = [line for line in lines if not line.startswith(("warning:", "progress: "))]
        if len(errors) != 1 or not errors[0].startswith("error: "):
            return f"exit 2 without exactly one 'error:' line: {stderr[-400:]!r}"
        return None
    if code == 0 and kind == "flip":   # a flip that left a valid model: it ran and said so
        return None
    return f"exit {code} (expected 2); stderr {stderr[-300:]!r}"


@pytest.fixture(scope="module")
def image_file(tmp_path_factory) -> Path:
    import cv2

    path = tmp_path_factory.mktemp("fuzz_image") / "image.png"
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8))
    return path


def test_mutated_models_exit_2_with_one_line(base_models, tmp_path, image_file):
    """Every mutant through `inspect`, and through `bench` (or `predict` while bench does not
    exist); `predict` also takes every third mutant when bench is there (the time budget)."""
    predict = ["predict", "{file}", str(image_file), "--json"]
    bench = _bench_args()
    jobs, kinds = [], {}
    for fmt, base in base_models.items():
        for index, (kind, path) in enumerate(mutants(fmt, base, tmp_path / fmt, PER_FORMAT)):
            kinds[str(path)] = (fmt, kind)
            commands = [["inspect", "{file}"], bench or predict] + ([predict] if bench and index % 3 == 0 else [])
            jobs += [[a.replace("{file}", str(path)) for a in command] for command in commands]
    records = run_workers(jobs)
    assert len(records) == len(jobs)
    problems, refused = [], {fmt: set() for fmt in base_models}
    for record in records:
        path = next(a for a in record["args"] if a in kinds)
        fmt, kind = kinds[path]
        problem = check(record, kind)
        if problem:
            problems.append(f"edgekit {' '.join(record['args'])} [{fmt} {kind}]: {problem}")
        elif record["code"] == 2:
            refused[fmt].add(path)
    assert not problems, f"{len(problems)} bad outcomes, first ones:\n" + "\n".join(problems[:10])
    for fmt, paths in refused.items():
        assert len(paths) >= 200, f"only {len(paths)} {fmt} mutants were refused with exit 2"


def test_a_sample_in_separate_processes(base_models, tmp_path, image_file):
    """The real entry point, one process per file: no signal, no hang, exit 2 and one line."""
    jobs = []
    for fmt, base in base_models.items():
        made = [m for m in mutants(fmt, base, tmp_path / fmt, PER_FORMAT) if m[0] != "flip"]
        for kind, path in random.Random(SEED).sample(made, SAMPLE):
            command = ["inspect", str(path)] if len(jobs) % 2 else ["predict", str(path), str(image_file)]
            jobs.append((fmt, kind, command))

    def run(job):
        fmt, kind, command = job
        try:
            done = subprocess.run([sys.executable, "-m", "edgekit", *command], capture_output=True, text=True,
                                  timeout=PER_FILE_SECONDS + 20,   # + interpreter start-up on a loaded machine
                                  env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return f"edgekit {' '.join(command)}: hung"
        problem = check({"args": command, "code": done.returncode, "stderr": done.stderr, "error": None}, kind)
        return f"edgekit {' '.join(command)} [{fmt} {kind}]: {problem}" if problem else None

    with ThreadPoolExecutor(2) as pool:
        problems = [p for p in pool.map(run, jobs) if p]
    assert not problems, "\n".join(problems)
