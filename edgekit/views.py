"""Rich renderings of result data. Commands pick --json or these; nothing parses them."""
from __future__ import annotations

from pathlib import Path

from .ui import fmt, human_size, table

STATUS_STYLE = {"pass": "[green]pass[/]", "fail": "[red]FAIL[/]", "structure-only": "[cyan]structure-only[/]",
                "skipped": "[yellow]skipped[/]"}


def _parity(verify) -> list[str]:
    return [STATUS_STYLE.get(verify.status, verify.status), fmt(verify.cosine, ".6f"),
            fmt(verify.max_abs_error, ".3g"), _top1(verify)]


def _top1(verify) -> str:
    """Gated agreement (samples where the source is decisive), then agreement over all samples."""
    if verify.top1_agreement is None:
        return fmt(None, ".0%")
    return f"{fmt(verify.top1_agreement_decisive, '.0%')} ({verify.top1_agreement:.0%})"


def convert_table(result):
    rows = [[Path(a.path).name, human_size(a.size_bytes), *_parity(a.verify), _cross(a.verify), a.route,
             f"{a.seconds:.1f}"] for a in result.artifacts]
    return table(f"source: {result.source['kind']} {result.source['path'] or '(Python object)'}",
                 ["artifact", "size", "verify", "cosine", "max |err|", "top-1 clear (all)", "also on", "route", "s"], rows,
                 wrap=("also on", "route"))


def _cross(verify) -> str:
    return ", ".join(f"{name} {fmt(c.get('cosine'), '.4f')}" if "cosine" in c else f"{name} error"
                     for name, c in verify.cross_checks.items())


def convert_notes(result) -> list[str]:
    return [f"{Path(a.path).name}: {note}" for a in result.artifacts for note in a.verify.notes]


def inspect_view(report: dict, console) -> None:
    console.print(f"[bold]{report['path']}[/]  {report['format']}  {human_size(report['size_bytes'])}")
    for section in ("inputs", "outputs"):
        rows = [[t["name"], t["shape"], t["dtype"], _quant(t.get("quantization"))] for t in report[section]]
        console.print(table(section, ["name", "shape", "dtype", "quantization (scale, zero point)"], rows))
    if report.get("ops"):
        console.print(table("ops", ["op", "count"], [[k, v] for k, v in report["ops"].items()]))
    for key, value in report.get("details", {}).items():
        console.print(f"{key}: {value}")
    metadata_view(report.get("metadata"), console)
    manifest = report.get("manifest")
    if manifest:
        verify = manifest.get("verify") or {}
        pre = manifest["preprocess"]
        console.print(table("manifest", ["field", "value"], wrap=("value",), rows=[
            ["target / precision", f"{manifest['target']} / {manifest['precision']}"],
            ["task", manifest["task"]], ["labels", f"{len(manifest['labels'])} labels"],
            ["input", f"{pre['input_size']} {pre['layout']} {pre['color_order']} resize={pre['resize']}"],
            ["normalization", f"(pixel - {pre['mean']}) / {pre['std']}"],
            ["source", _source(manifest["source"])],
            ["route", " | ".join(manifest["route"])],
            ["converters", ", ".join(f"{k} {v}" for k, v in manifest["converters"].items())],
            ["verify", f"{verify.get('status')} on {verify.get('samples')} samples ({verify.get('data')})"],
            *[[f"checked: {step['step']}", f"{step['status']}, cosine {fmt(_step_cosine(step), '.6f')} on "
               f"{step['samples']} samples ({step['runtime']})"] for step in verify.get("steps", [])],
        ]))
    else:
        console.print("[yellow]no edgekit manifest beside this file[/]")


def _step_cosine(step: dict) -> float | None:
    return min((o["cosine"] for o in step.get("outputs", [])), default=None)


def metadata_view(metadata: dict | None, console) -> None:
    """The format's own metadata (author, licence, version, descriptions), as inspect read it."""
    if not metadata:
        console.print("no model metadata in this file")
        return
    rows = [[key, metadata[key]] for key in ("name", "description", "author", "license", "version") if metadata[key]]
    rows += [[f"input {name}", text] for name, text in metadata["inputs"].items()]
    rows += [[f"output {name}", text] for name, text in metadata["outputs"].items()]
    rows += [[key, value] for key, value in metadata["extra"].items()]
    console.print(table("model metadata", ["field", "value"], [[k, str(v)] for k, v in rows], wrap=("value",)))


def _source(source: dict) -> str:
    if not source.get("path"):
        return f"{source.get('kind')} (Python object)"
    return f"{source.get('kind')} {source['path']} sha256={source.get('sha256', '')[:12]}"


def _quant(q) -> str:
    if not q:
        return ""
    scale, zero = q.get("scale", []), q.get("zero_point", [])
    if len(scale) > 1:
        return f"per-channel ({len(scale)} scales)"
    return f"{scale[0]:.6g}, {zero[0] if zero else 0}" if scale else ""


def doctor_view(report: dict, console) -> None:
    host = report["host"]
    console.print(f"[bold]edgekit {report['edgekit']}[/] on {host['platform']} ({host['machine']}), "
                  f"Python {host['python']}, {host['cpu']}")
    console.print(table("packages", ["package", "version", "extra"],
                        [[p["name"], p["version"] or "[red]missing[/]", p["extra"]] for p in report["packages"]]))
    console.print(table("targets", ["target", "precisions", "status"],
                        [[t["name"], ", ".join(t["precisions"]), t["unavailable"] or "[green]ready[/]"]
                         for t in report["targets"]], wrap=("status",)))
    console.print(table("runtimes", ["backend", "status", "devices"],
                        [[r["name"], r["unavailable"] or "[green]ready[/]", ", ".join(r.get("devices", []))]
                         for r in report["runtimes"]], wrap=("status", "devices")))
    console.print(table("tools", ["tool", "status"], [[k, v] for k, v in report["tools"].items()], wrap=("status",)))
    names = [t["name"] for t in report["targets"]]
    console.print(table("routes (source → target)", ["source", *names],
                        [[src, *[row[n] for n in names]] for src, row in report["routes"].items()], wrap=tuple(names)))


def demo_table(result):
    photos = list(result.rows[0].top1) if result.rows and result.rows[0].top1 else []
    rows = [[row.artifact, human_size(row.size_bytes) if row.size_bytes else "", *_parity(row.verify)[:2],
             _top1(row.verify), *[row.top1.get(p, "—") for p in photos],
             fmt(row.latency_ms, ".1f"), row.note] for row in result.rows]
    return table(f"{result.model}: conversions verified against PyTorch, top-1 labels on real photos",
                 ["artifact", "size", "parity", "cosine", "top-1 clear (all)", *photos, "ms p50", "notes"], rows)
