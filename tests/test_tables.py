"""Every table the CLI prints fits a 100-column terminal: no line is longer, and the key cells
(artifact names, labels, numbers, headers) are whole on one line. Less important columns wrap
or are dropped, and the caption names what was dropped.

Each table renders real result types, filled the way the library fills them (long artifact
names, real compiler output, this host's doctor report and device survey).
"""
from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from edgekit.manifest import Manifest, OutputParity, Preprocess, Quantization, TensorInfo, VerifyReport

WIDTH = 100
LOGS = Path(__file__).parent / "fixtures" / "edgetpu_logs"
STEM = "efficientnet_lite0"


def render(draw, width: int = WIDTH) -> list[str]:
    from rich.console import Console

    buffer = io.StringIO()
    draw(Console(file=buffer, width=width, highlight=False, color_system=None))
    return buffer.getvalue().splitlines()


def assert_fits(lines: list[str], *whole: str) -> None:
    long = [line for line in lines if len(line) > WIDTH]
    assert not long, f"{len(long)} line(s) wider than {WIDTH}:\n" + "\n".join(long)
    text = "\n".join(lines)
    cut = [cell for cell in whole if not re.search(re.escape(cell), text)]
    assert not cut, f"cut or missing: {cut}\n{text}"


def _verify(status: str, cosine: float, top1: float | None = None) -> VerifyReport:
    return VerifyReport(status=status, runtime="litert", samples=64, data="scikit-image sample photos",
                        outputs=[OutputParity("logits", cosine, 0.0312, 0.004, top1, 1.0 if top1 else None, 36)],
                        cross_checks={"openvino": {"cosine": 0.99871, "top1_agreement": 1.0}})


def test_convert_summary_fits(tmp_path):
    from edgekit.convert import ArtifactResult, ConvertResult, TargetFailure
    from edgekit.views.convert import render_convert

    names = [f"{STEM}_int8_edgetpu_ready.tflite", f"{STEM}_fp16.xml", f"{STEM}_int8.mlpackage"]
    artifacts = [ArtifactResult("edgetpu", "int8", str(tmp_path / names[0]), 5_612_345,
                                "torch → onnx → savedmodel → tflite", _verify("pass", 0.98412, 0.86), "m", 41.27,
                                preprocessing="assumed"),
                 ArtifactResult("openvino", "fp16", str(tmp_path / names[1]), 9_412_345, "torch → onnx → openvino",
                                _verify("fail", 0.99412, 0.98), "m", 3.2,
                                preprocessing="graph"),
                 ArtifactResult("coreml", "int8", str(tmp_path / names[2]), 4_712_345, "torch → coreml",
                                VerifyReport(status="structure-only", notes=["numerics need macOS"]), "m", 12.0)]
    refusal = ("coremltools cannot convert the torch op 'fmod' (PyTorch convert function for op 'fmod' not "
               "implemented). replace that op in the model, or convert to openvino or onnx")
    failures = [TargetFailure("coreml", "fp32", "refused", refusal, "UnsupportedRouteError", seconds=1.5)]
    result = ConvertResult({"kind": "torch", "path": None}, artifacts, [], None, None, failures=failures)
    lines = render(lambda out: render_convert(result, out))
    assert_fits(lines, *names, "structure-only", "0.984120", "100% (86%)", "coreml fp32")
    assert "coreml fp32 refused: coremltools cannot convert the torch op 'fmod'" in "\n".join(lines)   # its reason
    assert re.search(r"preprocessing assumed, not verified", "\n".join(lines))   # parity cannot prove it
    assert "worst" in "\n".join(lines)   # the worst channel group outlives 'prep' at 100 columns
    wide = "\n".join(render(lambda out: render_convert(result, out), width=160))
    assert re.search(r"\bgraph\b", wide) and "assumed" in wide   # where each normalization came from


def test_demo_table_fits(tmp_path):
    from edgekit.demo import DemoResult, DemoRow
    from edgekit.views.convert import render_demo

    labels = {"chelsea": "Egyptian cat", "coffee": "espresso", "astronaut": "military uniform", "rocket": "missile"}
    rows = [DemoRow("PyTorch source (reference)", 0, VerifyReport(status="pass"), dict(labels), 12.43),
            DemoRow(f"{STEM}_int8_edgetpu_ready.tflite", 5_612_345, _verify("pass", 0.98412, 0.86), dict(labels),
                    9.87),
            DemoRow(f"{STEM}_fp32.mlpackage", 18_612_345, VerifyReport(status="structure-only"),
                    note="Core ML prediction needs macOS"),
            DemoRow("(edgetpu)", 0, VerifyReport(status="skipped"), note="not converted: needs edgetpu_compiler")]
    result = DemoResult(STEM, str(tmp_path), rows, [])
    assert_fits(render(lambda out: render_demo(result, out)), "int8_edgetpu_ready.tflite", "fp32.mlpackage",
                "PyTorch source (reference)", "espresso", "missile", "Egyptian cat", "military uniform", "9.9", "12.4")


def test_inspect_tables_fit():
    from edgekit.formats import metadata_card
    from edgekit.inspect import InspectReport
    from edgekit.views.inspect import render_inspect

    quant = Quantization([0.0078125], [128])
    manifest = Manifest(artifact=f"{STEM}_int8.tflite", target="tflite", precision="int8", task="classification",
                        labels=["tench"] * 1000, preprocess=Preprocess(input_size=[224, 224], mean=[127.0] * 3,
                                                                      std=[128.0] * 3),
                        source={"kind": "torch", "path": "/home/someone/models/efficientnet_lite0/model.pt",
                                "sha256": "0123456789abcdef" * 4},
                        route=["torch → onnx (torch.onnx)", "onnx → savedmodel (onnx2tf)", "tflite (tflite converter)"],
                        converters={"onnx2tf": "1.29.24", "tensorflow": "2.19.0", "edgekit": "0.1.0"},
                        verify=_verify("pass", 0.98412, 0.86))
    report = InspectReport(f"out/{STEM}_int8.tflite", "tflite", 5_612_345,
                           [TensorInfo("serving_default_images_with_a_long_signature_name:0", [1, 224, 224, 3],
                                       "uint8", quant)],
                           [TensorInfo("StatefulPartitionedCall_classification_head_logits:0", [1, 1000], "uint8",
                                       quant)],
                           {"CONV_2D": 33, "DEPTHWISE_CONV_2D": 16, "QUANTIZE": 2, "TFLITE_DETECTION_POSTPROCESS": 1},
                           {"signatures": "serving_default", "custom ops": "none"},
                           metadata=metadata_card("EfficientNet-Lite0", "ImageNet classifier, int8", "Jane Doe",
                                                  "Apache-2.0", "1.2", {"images": "RGB photo, 224x224"}),
                           manifest=manifest.to_dict())
    assert_fits(render(lambda out: render_inspect(report, out)), "serving_default_images_with_a_long_signature_name:0",
                "[1, 224, 224, 3]", "0.0078125, 128", "TFLITE_DETECTION_POSTPROCESS", "target / precision",
                "EfficientNet-Lite0", "Apache-2.0")


def test_doctor_tables_fit():
    from edgekit.doctor import diagnose
    from edgekit.views.doctor import render_doctor

    report = diagnose()
    assert_fits(render(lambda out: render_doctor(report, out)), "efficientnet-lite-pytorch", "onnxruntime",
                "edgetpu_compiler", *[t.name for t in report.targets])


def test_bench_table_fits():
    from edgekit.bench.harness import BenchRecord, BenchReport, Comparison, ComparisonRow
    from edgekit.bench.sysinfo import collect
    from edgekit.views.bench import render_bench

    def record(name, backend, device, p50, **kw):
        return BenchRecord(artifact=f"out/{name}", format="tflite", precision="int8", backend=backend, device=device,
                           size_bytes=5_612_345, parity={"status": "pass", "cosine": 0.98412}, load_ms=123.4,
                           first_inference_ms=45.6, latency_ms={"p50": p50, "p90": p50 * 1.1, "p99": p50 * 1.3},
                           fps=1000 / p50, io_ms=0.123, preprocess_ms=1.234, postprocess_ms=0.045, peak_rss_mb=812.0,
                           runs=200, threads=4, **kw)

    report = BenchReport(host=collect(), options={}, results=[
        record(f"{STEM}_int8_edgetpu_ready.tflite", "litert", "CPU", 12.345),
        record(f"{STEM}_int8.xml", "openvino", "AUTO:GPU,CPU", 6.789),
        BenchRecord(artifact=f"out/{STEM}_int8.onnx", backend="onnxruntime", device="CPU", status="failed",
                    error="onnxruntime failed running it: bad allocation")])
    comparison = Comparison("benchmarks/results/last.json", 10.0, [
        ComparisonRow([f"{STEM}_int8.xml", "openvino", "AUTO:GPU,CPU", 4], 6.1, 6.789, 11.3, True)])
    lines = render(lambda out: render_bench(report, out, comparison=comparison))
    assert_fits(lines, f"{STEM}_int8_edgetpu_ready.tflite", "openvino/AUTO:GPU,CPU", "12.35", "81.0", "p50", "FPS",
                "failed", "REGRESSED", "+11.3%")
    assert any("not shown at this width" in line for line in lines)   # dropped columns are named


def test_devices_table_fits():
    from edgekit.bench.profiles import survey
    from edgekit.views.devices import render_devices

    statuses = survey()
    assert_fits(render(lambda out: render_devices(statuses, out)), *[s.profile.name for s in statuses])


def test_deploy_fleet_summary_fits():
    from edgekit.deploy.bundle import Bundle, BundleFile
    from edgekit.deploy.remote import DeployResult
    from edgekit.views.deploy import render_deploy

    version = "20261130T120000Z-0123456789ab"
    bundle = Bundle(STEM, version, f"{STEM}_int8_edgetpu.tflite", True, 14,
                    [BundleFile(f"{STEM}_int8_edgetpu.tflite", 5_612_345, "0" * 64)])
    results = [DeployResult(f"mendel@coral-board-{i:02d}.factory.example.com:2222", STEM, version, "ok", True, 3.4,
                            "20261101T080000Z-fedcba987654") for i in range(3)]
    results.append(DeployResult("pi@10.0.0.7", STEM, None, "failed", False, 30.1,
                                error="pi@10.0.0.7: ssh: connect to host 10.0.0.7 port 22: Connection timed out"))
    assert_fits(render(lambda out: render_deploy(bundle, results, out)),
                "mendel@coral-board-01.factory.example.com:2222", "pi@10.0.0.7", "failed", "ok")


def test_edgetpu_report_fits():
    from edgekit.edgetpu.logparse import parse_output
    from edgekit.views.edgetpu import render_edgetpu

    (report,) = parse_output((LOGS / "yolov5s_v15.stdout").read_text())
    lines = render(lambda out: render_edgetpu(report, out))
    assert_fits(lines, *{row.op for row in report.rows}, "ops on Edge TPU")


@pytest.mark.parametrize("width", [100, 60])
def test_the_fitting_itself(width):
    """Key columns keep whole cells at any width that can hold them; optional ones go first."""
    from edgekit.ui import table

    rows = [["a_rather_long_artifact_name_int8.tflite", "12.34", "free text " * 12, "optional detail"]]
    built = table("t", ["artifact", "p50 ms", "notes", "detail"], rows, optional=("detail",))
    lines = render(lambda out: out.print(built), width)
    assert max(map(len, lines)) <= width
    assert any("a_rather_long_artifact_name_int8.tflite" in line for line in lines)
    assert any("p50 ms" in line or "p50" in line for line in lines)
    assert ("optional detail" in "\n".join(lines)) == (width == 100)


def test_cli_honours_columns(run_cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    code, out, _ = run_cli("doctor")
    assert code == 0 and "routes" in out
    assert max(map(len, out.splitlines())) <= WIDTH
