"""`edgekit bench` on real artifacts converted here (tiny Keras -> TFLite fp32/int8, tiny torch
ONNX -> OpenVINO IR and ONNX), through the real CLI and real runtimes. No timing is asserted:
the tests check structure, exit codes, files, and the baseline logic on edited real results.

Exit-code policy pinned here: 0 when every row ran; 1 when some rows failed (after printing and
writing every report) or a median regressed; 2 for bad input or when every row failed.
"""
from __future__ import annotations

import ast
import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from conftest import SIZE

RUNS = 5
FAST = ["--runs", str(RUNS), "--warmup", "1"]
RECORD_KEYS = {"artifact", "format", "precision", "backend", "device", "size_bytes", "parity", "status", "error",
               "check_ms", "load_ms", "first_inference_ms", "latency_ms", "fps", "io_ms", "preprocess_ms", "postprocess_ms",
               "peak_rss_mb", "rss_growth_mb", "runs", "warmup", "threads", "hint", "input", "samples_ms"}
LATENCY_KEYS = {"runs", "mean", "std", "min", "p50", "p90", "p99", "max"}


@pytest.fixture(autouse=True)
def quiet_progress(monkeypatch):
    """A row in its own process may pass the 1 s after which CI logs get `progress:` lines
    (tests/test_cli.py checks those); the error lines checked here stand alone."""
    monkeypatch.setenv("EDGEKIT_PROGRESS_AFTER", "3600")


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory, keras_file, onnx_file, photos_dir) -> dict[str, Path]:
    """tflite fp32 + int8 (from Keras), openvino + onnx fp32 (from torch's ONNX), with manifests."""
    from edgekit.convert import ConvertRequest, convert

    out = tmp_path_factory.mktemp("bench-artifacts")
    common = dict(out_dir=out, calib=str(photos_dir), calib_samples=16, verify_samples=8, input_size=[SIZE, SIZE],
                  mean=[127.5], std=[127.5], task="classification")
    found = {}
    for model, targets, precisions in ((keras_file, ["tflite"], ["fp32", "int8"]),
                                       (onnx_file, ["openvino", "onnx"], ["fp32"])):
        result = convert(model, ConvertRequest(targets=targets, precisions=precisions, **common))
        for artifact in result.artifacts:
            found[f"{artifact.target}_{artifact.precision}"] = Path(artifact.path)
    return found


@pytest.fixture(scope="session")
def broken(tmp_path_factory, artifacts) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("broken")
    corrupt = folder / "corrupt.tflite"
    corrupt.write_bytes(artifacts["tflite_fp32"].read_bytes()[:200])  # a truncated flatbuffer
    return {"corrupt": corrupt, "missing": folder / "missing.onnx"}


def bench_json(run_cli, *args):
    code, out, err = run_cli("bench", *args, *FAST, "--json")
    return code, json.loads(out), err


def test_side_by_side_json_has_every_field(run_cli, artifacts, broken):
    paths = [artifacts[k] for k in ("tflite_fp32", "tflite_int8", "openvino_fp32", "onnx_fp32")]
    code, data, err = bench_json(run_cli, *paths, broken["corrupt"], broken["missing"])
    # some rows failed, the others ran: exit 1 with one line naming the failed artifacts
    assert code == 1
    assert err.strip().count("\n") == 0
    assert "2 of 6 runs failed: corrupt.tflite, missing.onnx" in err
    assert {"host", "results", "options", "schema_version"} <= set(data)
    assert data["host"]["cpu"] and data["host"]["cores"] >= 1 and "packages" in data["host"]
    records = {Path(r["artifact"]).name: r for r in data["results"]}
    assert list(records) == [p.name for p in paths] + ["corrupt.tflite", "missing.onnx"]
    for name in (p.name for p in paths):
        record = records[name]
        assert set(record) == RECORD_KEYS, name
        assert record["status"] == "ok", record["error"]
        assert set(record["latency_ms"]) == LATENCY_KEYS
        assert record["runs"] == RUNS and len(record["samples_ms"]) == RUNS
        lat = record["latency_ms"]
        assert lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert math.isclose(lat["p50"], float(np.median(record["samples_ms"])))
        assert record["fps"] == pytest.approx(1000 / lat["p50"])
        assert record["load_ms"] > 0 and record["first_inference_ms"] > 0
        assert record["preprocess_ms"] > 0 and record["postprocess_ms"] > 0  # random frame -> prepare/decode
        assert record["io_ms"] > 0  # input checks + copy in, copy out: timed apart from the runtime call
        assert record["peak_rss_mb"] > 0 and record["size_bytes"] > 0
        assert record["parity"]["status"] in ("pass", "fail") and record["parity"]["cosine"] is not None
    assert records[paths[0].name]["format"] == "tflite" and records[paths[0].name]["backend"] == "litert"
    assert records[paths[1].name]["precision"] == "int8"
    assert records[paths[2].name]["format"] == "openvino" and records[paths[2].name]["backend"] == "openvino"
    assert records[paths[3].name]["backend"] == "onnxruntime"
    assert records["corrupt.tflite"]["status"] == "failed" and records["corrupt.tflite"]["error"]
    assert records["missing.onnx"]["error"].endswith("no such file or directory. check the path")
    assert records["missing.onnx"]["samples_ms"] == [] and records["missing.onnx"]["latency_ms"] == {}


def test_table_shows_failed_row_with_reason(run_cli, artifacts, broken):
    code, out, err = run_cli("bench", artifacts["tflite_int8"], broken["missing"], *FAST)
    assert code == 1
    assert "litert/CPU" in out and "failed" in out
    assert "missing.onnx: " in out and "no such file or directory" in out
    assert err.startswith("error: 1 of 2 runs failed: missing.onnx")


def test_all_failed_is_exit_2(run_cli, broken):
    code, out, err = run_cli("bench", broken["corrupt"], broken["missing"], *FAST)
    assert code == 2
    assert err.startswith("error: no artifact could be benchmarked (corrupt.tflite: ")
    assert err.strip().count("\n") == 0 and "Traceback" not in err


def test_threads_give_one_row_each(run_cli, artifacts):
    code, data, _ = bench_json(run_cli, artifacts["tflite_int8"], "--threads", "1,2")
    assert code == 0
    assert [(r["threads"], r["status"]) for r in data["results"]] == [(1, "ok"), (2, "ok")]


def test_unsupported_option_is_a_failed_row_not_a_silent_default(run_cli, artifacts):
    """--hint is an OpenVINO option: LiteRT refuses it by name instead of ignoring it."""
    code, out, err = run_cli("bench", artifacts["tflite_fp32"], "--hint", "latency", *FAST)
    assert code == 2
    assert "backend 'litert' has no option hint" in err


def test_report_files_are_written_whole(run_cli, artifacts, tmp_path):
    import matplotlib.image

    out_dir = tmp_path / "reports"
    csv_file, md_file, png = out_dir / "bench.csv", out_dir / "bench.md", out_dir / "latency.png"
    code, _, err = run_cli("bench", artifacts["tflite_fp32"], artifacts["openvino_fp32"], *FAST,
                           "--csv", csv_file, "--md", md_file, "--plot", png)
    assert code == 0, err
    assert sorted(p.name for p in out_dir.iterdir()) == ["bench.csv", "bench.md", "latency.png"]  # no temp leftovers
    rows = list(csv.DictReader(csv_file.open()))
    assert [Path(r["artifact"]).name for r in rows] == [artifacts["tflite_fp32"].name, artifacts["openvino_fp32"].name]
    assert all(float(r["p50_ms"]) > 0 and r["status"] == "ok" for r in rows)
    text = md_file.read_text()
    assert text.startswith("# edgekit bench") and "**Host:**" in text
    assert f"| {artifacts['openvino_fp32'].name} | openvino | fp32 | openvino/CPU |" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(png)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_input_image_and_npy(run_cli, artifacts, tmp_path):
    import cv2

    from edgekit.photos import photo

    image_path = tmp_path / "cat.png"
    cv2.imwrite(str(image_path), np.ascontiguousarray(photo("chelsea")[:, :, ::-1]))
    code, data, _ = bench_json(run_cli, artifacts["tflite_int8"], "--input", image_path)
    assert code == 0 and data["results"][0]["preprocess_ms"] > 0 and data["results"][0]["input"] == str(image_path)

    tensor = tmp_path / "input.npy"
    np.save(tensor, np.zeros((1, SIZE, SIZE, 3), np.float32))
    code, data, _ = bench_json(run_cli, artifacts["tflite_fp32"], "--input", tensor)
    assert code == 0
    assert data["results"][0]["preprocess_ms"] is None  # a ready tensor has no preprocessing to time
    np.save(tensor, np.zeros((1, 3, SIZE, SIZE), np.float32))
    code, data, err = bench_json(run_cli, artifacts["tflite_fp32"], "--input", tensor)
    assert code == 2
    assert f"has shape [1, 3, {SIZE}, {SIZE}]; the model takes [1, {SIZE}, {SIZE}, 3]" in data["results"][0]["error"]


def test_duration_mode_runs_at_least_once(run_cli, artifacts):
    code, out, err = run_cli("bench", artifacts["tflite_int8"], "--duration", "0.2", "--warmup", "0", "--json")
    assert code == 0, err
    record = json.loads(out)["results"][0]
    assert record["runs"] >= 1 and len(record["samples_ms"]) == record["runs"]


@pytest.mark.parametrize("args, message", [
    (["--runs", "0"], "--runs must be at least 1, got 0"),
    (["--runs", "5", "--duration", "1"], "--runs and --duration both given"),
    (["--warmup", "-1"], "--warmup must be 0 or more"),
    (["--input", "/no/such/photo.jpg"], "--input /no/such/photo.jpg: no such file"),
    (["--max-regression", "-5", "--baseline", "BASELINE"], "--max-regression must be 0 or more"),
])
def test_bad_options_one_line(run_cli, artifacts, tmp_path, args, message):
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps({"results": []}))
    args = [str(baseline) if a == "BASELINE" else a for a in args]
    code, _, err = run_cli("bench", artifacts["tflite_int8"], *args)
    assert code == 2
    assert message in err and err.strip().count("\n") == 0


def test_baseline_passes_and_fails(run_cli, artifacts, tmp_path):
    target = artifacts["tflite_int8"]
    code, real, _ = bench_json(run_cli, target)
    assert code == 0

    def baseline_with(factor: float) -> Path:  # edit the medians of a real result
        edited = json.loads(json.dumps(real))
        for record in edited["results"]:
            record["latency_ms"]["p50"] *= factor
        path = tmp_path / f"baseline-{factor}.json"
        path.write_text(json.dumps(edited))
        return path

    slow_baseline = baseline_with(10.0)  # the baseline was 10x slower: now is an improvement
    code, data, err = bench_json(run_cli, target, "--baseline", slow_baseline)
    assert code == 0, err
    [comparison] = data["baseline"]["comparisons"]
    assert comparison["key"][0] == target.name and comparison["change_pct"] < 0 and not comparison["regressed"]

    fast_baseline = baseline_with(0.1)  # the baseline was 10x faster: now is a regression
    code, out, err = run_cli("bench", target, *FAST, "--baseline", fast_baseline, "--max-regression", "10")
    assert code == 1
    assert err.startswith(f"error: latency regression beyond 10%: {target.name} litert/CPU p50 ")
    assert err.strip().count("\n") == 0
    assert "REGRESSED" in out

    # a baseline from another host/thread count matches nothing: said, not a silent pass
    code, out, _ = run_cli("bench", target, *FAST, "--threads", "1", "--baseline", fast_baseline)
    assert code == 0 and "no result matched the baseline" in out


def test_baseline_must_be_a_bench_result(run_cli, artifacts, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "a result"}')
    code, _, err = run_cli("bench", artifacts["tflite_int8"], *FAST, "--baseline", bad)
    assert code == 2 and f"baseline {bad} has no benchmark results" in err
    bad.write_text("{")
    code, _, err = run_cli("bench", artifacts["tflite_int8"], *FAST, "--baseline", bad)
    assert code == 2 and f"baseline {bad} is not JSON" in err


def test_baseline_from_before_the_run_only_span_is_refused(run_cli, artifacts, tmp_path):
    """Record schema 1 timed the whole Runner.infer: comparing its medians with the runtime call
    alone would hide a regression as large as the input copy, so such a baseline is refused."""
    target = artifacts["tflite_int8"]
    code, real, _ = bench_json(run_cli, target)
    assert code == 0 and real["schema_version"] == 2
    for record in real["results"]:
        del record["io_ms"]
    old = tmp_path / "schema1.json"
    old.write_text(json.dumps({**real, "schema_version": 1}))
    code, _, err = run_cli("bench", target, *FAST, "--baseline", old)
    assert code == 2 and err.strip().count("\n") == 0
    assert f"baseline {old} was written before edgekit bench timed the runtime call alone" in err
    assert "edgekit bench ... --json > baseline.json" in err


def test_profile_absent_device_is_refused(run_cli, artifacts):
    from edgekit.bench.profiles import HostDevices, get_profile, presence

    if presence(get_profile("coral-usb-x86"), HostDevices.read())[0]:
        pytest.skip("a Coral USB Accelerator is attached to this host")
    code, out, err = run_cli("bench", artifacts["tflite_int8"], *FAST, "--profile", "coral-usb-x86")
    assert code == 2 and out == ""
    assert err.startswith("error: device profile 'coral-usb-x86' (Coral USB Accelerator on an x86-64 host) "
                          "is not present on this host: no USB device 1a6e:089a or 18d1:9302")
    assert err.strip().count("\n") == 0


def test_profile_unknown_name_suggests(run_cli, artifacts):
    code, _, err = run_cli("bench", artifacts["tflite_int8"], *FAST, "--profile", "coral-usb")
    assert code == 2
    assert "unknown device profile 'coral-usb'" in err and "did you mean 'coral-usb-x86'" in err
    assert "intel-ncs2" in err  # the valid names are listed


def test_profile_present_fills_backend_and_shows_references(run_cli, artifacts):
    from edgekit.bench.profiles import HostDevices, get_profile, presence

    present, why = presence(get_profile("intel-cpu"), HostDevices.read())
    if not present:
        pytest.skip(f"intel-cpu profile absent here: {why}")
    # the profile's backend (openvino) runs the .tflite: no --backend needed
    code, data, err = bench_json(run_cli, artifacts["tflite_fp32"], "--profile", "intel-cpu")
    assert code == 0, err
    assert data["results"][0]["backend"] == "openvino" and data["results"][0]["device"] == "CPU"
    assert data["profile"]["name"] == "intel-cpu"
    code, _, err = run_cli("bench", artifacts["tflite_fp32"], *FAST, "--profile", "intel-cpu", "--backend", "litert")
    assert code == 2 and "--backend litert conflicts with profile 'intel-cpu', which uses backend openvino" in err


def test_profile_rows_match_reference_by_artifact_name(artifacts):
    """Measured-vs-published pairing, on a real record renamed like the model it would be."""
    from edgekit.bench.harness import BenchOptions, BenchReport, bench_artifact
    from edgekit.bench.profiles import get_profile
    from edgekit.bench.report import profile_rows

    record = bench_artifact(artifacts["tflite_int8"], BenchOptions(runs=3, warmup=0))
    record.artifact = "out/mobilenet_v2_1.0_224_quant_edgetpu.tflite"
    rows = profile_rows(BenchReport(host={}, options={}, results=[record]), get_profile("coral-usb-x86"))
    mobilenet_v2 = [row for row in rows if row[0] == "MobileNet v2 (224x224)"]
    assert mobilenet_v2[0][1] == "2.6" and mobilenet_v2[0][3] == "mobilenet_v2_1.0_224_quant_edgetpu.tflite"
    assert float(mobilenet_v2[0][2]) == pytest.approx(record.latency_ms["p50"], abs=1e-3)
    assert mobilenet_v2[0][5] == "https://coral.ai/docs/edgetpu/benchmarks/"


def test_stats_match_numpy_and_stay_standalone():
    from edgekit.bench import stats

    samples = list(np.random.default_rng(1).gamma(4.0, 2.0, 333))
    summary = stats.summarize(samples)
    for q in (50, 90, 99):
        assert summary[f"p{q}"] == pytest.approx(np.percentile(samples, q))
    assert summary["std"] == pytest.approx(np.std(samples)) and summary["mean"] == pytest.approx(np.mean(samples))
    assert stats.summarize([]) == {"runs": 0}
    # copied verbatim into deploy bundles: only the standard library may be imported
    tree = ast.parse(Path(stats.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    assert imported <= {"__future__", "math", "sys", "resource"}
    assert not any(isinstance(node, ast.ImportFrom) and node.level for node in ast.walk(tree))


def test_compare_medians_keys_by_file_name_backend_device_threads():
    from edgekit.bench.stats import compare_medians

    def rec(path, p50, threads=None, status="ok"):
        return {"artifact": path, "backend": "litert", "device": "CPU", "threads": threads, "status": status,
                "latency_ms": {"p50": p50}}

    base = [rec("/ci/old/m.tflite", 10.0), rec("/ci/old/m.tflite", 6.0, threads=2), rec("/x/gone.tflite", 1.0)]
    now = [rec("out/m.tflite", 11.5), rec("out/m.tflite", 6.3, threads=2), rec("out/new.tflite", 1.0),
           rec("out/m.tflite", 1.0, threads=4, status="failed")]
    result = compare_medians(base, now, 10.0)
    assert [(c["key"][3], round(c["change_pct"], 1), c["regressed"]) for c in result] == [(None, 15.0, True),
                                                                                          (2, 5.0, False)]


def test_hostinfo_script_reexports_sysinfo():
    import importlib.util

    from edgekit.bench import sysinfo

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "hostinfo.py"
    spec = importlib.util.spec_from_file_location("hostinfo_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.collect is sysinfo.collect and module.describe is sysinfo.describe
    info = module.collect()
    assert {"cpu", "cores", "governor", "packages", "python"} <= set(info)
    assert info["packages"]["numpy"] == np.__version__


def test_glob_sidecars_are_not_benchmarked(run_cli, artifacts):
    """`edgekit bench out/*` brings manifests and IR weights along: they are named, not run."""
    from edgekit.manifest import manifest_path

    xml = artifacts["openvino_fp32"]
    code, out, err = run_cli("bench", xml, xml.with_suffix(".bin"), manifest_path(xml), *FAST)
    assert code == 0, err
    assert f"not benchmarked (manifests and companion files of listed models): {xml.stem}.bin, {xml.name}.edgekit.json" \
        in out.replace("\n", "")
    # a lone manifest (its model not listed) is benchmarked, and fails as a row with its reason
    code, data, err = bench_json(run_cli, artifacts["tflite_int8"], manifest_path(xml))
    assert code == 1 and data["results"][1]["status"] == "failed"
    assert "is not a model edgekit recognises" in data["results"][1]["error"]


# -- rows in their own processes; rows this host cannot run -------------------------------------
def test_peak_rss_is_each_rows_own(run_cli, artifacts):
    """Every row runs in a fresh process: a LiteRT row after an OpenVINO one does not inherit
    OpenVINO's resident libraries (a process-wide high-water mark only ever grows)."""
    tflite, ir = artifacts["tflite_int8"], artifacts["openvino_fp32"]
    code, data, err = bench_json(run_cli, tflite, ir, tflite)
    assert code == 0, err
    first, openvino, again = (r["peak_rss_mb"] for r in data["results"])
    assert again < openvino, (first, openvino, again)
    assert again == pytest.approx(first, rel=0.25)     # the same row twice: the same footprint


@pytest.fixture(scope="session")
def mlpackage(tmp_path_factory, keras_file) -> Path:
    """A real Core ML package (coremltools converts on Linux; only prediction needs macOS)."""
    pytest.importorskip("coremltools")
    from edgekit.convert import ConvertRequest, convert

    result = convert(keras_file, ConvertRequest(targets=["coreml"], precisions=["fp32"],
                                                out_dir=tmp_path_factory.mktemp("coreml"), input_size=[SIZE, SIZE],
                                                mean=[127.5], std=[127.5], task="classification", verify=False))
    return Path(result.artifacts[0].path)


def test_a_row_this_host_cannot_run_is_skipped_not_failed(run_cli, artifacts, mlpackage):
    import sys

    if sys.platform == "darwin":
        pytest.skip("this host runs Core ML")
    code, data, err = bench_json(run_cli, artifacts["tflite_int8"], mlpackage)
    assert code == 0, err                                     # a skipped row is not a failure
    ran, skipped = data["results"]
    assert ran["status"] == "ok"
    assert skipped["status"] == "skipped" and skipped["error"] == "Core ML prediction needs macOS"
    assert skipped["format"] == "coreml" and skipped["latency_ms"] == {} and skipped["peak_rss_mb"] is None
    code, out, err = run_cli("bench", artifacts["tflite_int8"], mlpackage, *FAST)
    assert code == 0 and f"skipped {mlpackage.name}: Core ML prediction needs macOS" in out
    # nothing ran at all: "nothing done" is exit 2, with the reason
    code, out, err = run_cli("bench", mlpackage, *FAST)
    assert code == 2 and "skipped" in out
    assert err.strip() == (f"error: nothing to benchmark on this host ({mlpackage.name}: skipped: Core ML prediction "
                           "needs macOS). run these artifacts where their runtime exists")


def test_plot_stays_readable_at_16_rows_with_true_percentile_whiskers(artifacts, tmp_path):
    """Horizontal boxes, one per row, the figure growing with the rows; whiskers are the p1/p99
    of stats.percentile (numpy's linear definition), not the last sample inside them; the title
    names host, runs and date. Real records from a real run, repeated to 18 rows."""
    import dataclasses

    import matplotlib.image

    from edgekit.bench.harness import BenchOptions, BenchReport, bench_artifact
    from edgekit.bench.report import PLOT_ROW_INCHES, plot_caption, plot_stats, write_plot
    from edgekit.bench.sysinfo import collect

    record = bench_artifact(artifacts["tflite_int8"], BenchOptions(runs=40, warmup=0))
    rows = [dataclasses.replace(record, artifact=f"out/model_{i:02d}_int8.tflite", threads=1 + i % 2)
            for i in range(18)]
    report = BenchReport(host=collect(), options={}, results=rows)
    box = plot_stats(record.samples_ms)
    assert box["whislo"] == pytest.approx(np.percentile(record.samples_ms, 1))
    assert box["whishi"] == pytest.approx(np.percentile(record.samples_ms, 99))
    assert (box["q1"], box["med"], box["q3"]) == pytest.approx(tuple(np.percentile(record.samples_ms, [25, 50, 75])))
    caption = plot_caption(report)
    assert report.host["cpu"] in caption and "40 runs per row" in caption
    assert report.host["timestamp_utc"][:10] in caption
    heights = []
    for count in (2, 18):
        png = tmp_path / f"latency{count}.png"
        write_plot(dataclasses.replace(report, results=rows[:count]), png)
        heights.append(matplotlib.image.imread(png).shape[0])
    assert heights[1] - heights[0] >= 16 * PLOT_ROW_INCHES * 100   # the figure grows a box height per row
