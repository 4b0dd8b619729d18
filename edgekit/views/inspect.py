"""`edgekit inspect`: an artifact's tensors, ops, details and manifest."""
from __future__ import annotations

from ..ui import fmt, human_size, table


def _quant(q) -> str:
    """A TensorInfo's Quantization (or its dict form) as "scale, zero point"."""
    if not q:
        return ""
    scale, zero = (q.get("scale", []), q.get("zero_point", [])) if isinstance(q, dict) else (q.scale, q.zero_point)
    if len(scale) > 1:
        return f"per-channel ({len(scale)} scales)"
    return f"{scale[0]:.6g}, {zero[0] if zero else 0}" if scale else ""


def _step_cosine(step: dict) -> float | None:
    return min((o["cosine"] for o in step.get("outputs", [])), default=None)


def render_metadata(metadata: dict | None, console) -> None:
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


def _reference(record: dict | None) -> str:
    """The manifest's reference pack: what `edgekit verify` reruns elsewhere."""
    if not record:
        return "none (converted with --no-verify or before packs)"
    return (f"{record['file']}: {record['samples']} samples, {human_size(record['size_bytes'])}, "
            f"sha256 {record['sha256'][:16]}")


def render_inspect(report, console) -> None:
    """An InspectReport."""
    console.print(f"[bold]{report.path}[/]  {report.format}  {human_size(report.size_bytes)}", markup=True)
    for section in ("inputs", "outputs"):
        rows = [[t.name, t.shape, t.dtype, _quant(t.quantization)] for t in getattr(report, section)]
        console.print(table(section, ["name", "shape", "dtype", "quantization (scale, zero point)"], rows,
                            wrap=()))
    if report.ops:
        console.print(table("ops", ["op", "count"], [[k, v] for k, v in report.ops.items()]))
    for key, value in report.details.items():
        console.print(f"{key}: {value}", markup=False)
    render_metadata(report.metadata, console)
    manifest = report.manifest
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
            ["reference pack", _reference(manifest.get("reference"))],
        ]))
    else:
        console.print("[yellow]no edgekit manifest beside this file[/]")
