"""`edgekit convert` and `edgekit demo`: artifacts with their parity against the source."""
from __future__ import annotations

from pathlib import Path

from ..ui import fmt, human_size, table

STATUS_STYLE = {"pass": "[green]pass[/]", "fail": "[red]FAIL[/]", "structure-only": "[cyan]structure-only[/]",
                "skipped": "[yellow]skipped[/]"}
FAILURE_STYLE = {"refused": "[red]refused[/]", "failed": "[red]failed[/]"}


ALSO_ON = ("also on: cosine against the source of the same artifact on the other runtimes here that load its "
           "format (OpenVINO also runs .tflite and .onnx); a cross-check, not gated")


def _top1(verify) -> str:
    """Gated agreement (samples where the source is decisive), then agreement over all samples."""
    if verify.top1_agreement is None:
        return fmt(None, ".0%")
    return f"{fmt(verify.top1_agreement_decisive, '.0%')} ({verify.top1_agreement:.0%})"


def _cross(verify) -> str:
    return ", ".join(f"{name} {fmt(c.get('cosine'), '.4f')}" if "cosine" in c else f"{name} error"
                     for name, c in verify.cross_checks.items())


def _worst_group(verify) -> str:
    """The lowest-cosine channel group (a row of [1, C, N], a column of [1, N, C]) and its cosine;
    detection recall or mask IoU where the report has them."""
    parts = []
    worst = verify.worst_group
    if worst is not None:
        parts.append(f"{worst.describe_worst_group()} {worst.worst_group_cosine:.4f}")
    if verify.detection is not None and verify.detection.recall is not None:
        parts.append(f"boxes {verify.detection.recall:.0%}")
    if verify.mask is not None and verify.mask.mean_iou is not None:
        parts.append(f"mask IoU {verify.mask.mean_iou:.3f}")
    return ", ".join(parts) or "—"


def _preprocessing(origin: str | None) -> str:
    """Where the image normalization came from; parity cannot prove an assumed one."""
    if origin is None:
        return "—"   # no image input: tensors are fed as given
    return "[yellow]assumed[/]" if origin == "assumed" else origin


def render_convert(result, console) -> None:
    """A ConvertResult: one row per artifact and per target not built, then each artifact's
    verify notes and each failed target's one-line reason."""
    rows = [[Path(a.path).name, human_size(a.size_bytes), STATUS_STYLE.get(a.verify.status, a.verify.status),
             fmt(a.verify.cosine, ".6f"), _worst_group(a.verify), fmt(a.verify.max_abs_error, ".3g"), _top1(a.verify),
             _cross(a.verify), _preprocessing(a.preprocessing), a.route, f"{a.seconds:.1f}"] for a in result.artifacts]
    rows += [[f"{f.target} {f.precision}", "", FAILURE_STYLE[f.status], "", "", "", "", "", "", "", f"{f.seconds:.1f}"]
             for f in result.failures]
    console.print(table(f"source: {result.source['kind']} {result.source['path'] or '(Python object)'}",
                        ["artifact", "size", "verify", "cosine", "worst group", "max |err|", "top-1 clear (all)",
                         "also on", "prep", "route", "time (s)"], rows, wrap=("also on", "route", "worst group"),
                        optional=("time (s)", "max |err|", "also on", "size", "route", "prep", "worst group"),
                        caption=ALSO_ON if any(a.verify.cross_checks for a in result.artifacts) else None,
                        caption_column="also on"))
    if any(a.preprocessing == "assumed" for a in result.artifacts):
        console.print("[yellow]prep 'assumed': preprocessing assumed, not verified[/] (parity feeds artifact and "
                      "source the same inputs, so it cannot prove them): pass --mean/--std/--bgr as trained")
    for artifact in result.artifacts:
        for note in artifact.verify.notes:
            console.print(f"  {Path(artifact.path).name}: {note}")
    for failure in result.failures:   # the one-line reason of each target not built
        console.print(f"  {failure.target} {failure.precision} {failure.status}: {failure.reason}")


def render_demo(result, console) -> None:
    """A DemoResult: each artifact's parity and latency, then its top-1 label per photo (two
    tables, so labels stay whole at 100 columns), then the verdict."""
    photos = list(result.rows[0].top1) if result.rows and result.rows[0].top1 else []
    stem = f"{result.model}_"
    names = [row.artifact.removeprefix(stem) for row in result.rows]
    rows = [[name, human_size(row.size_bytes) if row.size_bytes else "",
             STATUS_STYLE.get(row.verify.status, row.verify.status), fmt(row.verify.cosine, ".6f"), _top1(row.verify),
             fmt(row.latency_ms, ".1f"), row.note] for name, row in zip(names, result.rows)]
    console.print(table(f"{result.model}: conversions verified against PyTorch (artifacts {stem}*)",
                        ["artifact", "size", "parity", "cosine", "top-1 clear (all)", "ms p50", "notes"], rows,
                        optional=("size",)))
    labelled = [[name, *[row.top1.get(p, "—") for p in photos]] for name, row in zip(names, result.rows) if row.top1]
    if labelled:
        console.print(table(f"top-1 labels on real photos (scikit-image: {', '.join(photos)})", ["artifact", *photos],
                            labelled, wrap=tuple(photos)))
    if result.gate_failures:
        console.print(f"[yellow]{len(result.gate_failures)} artifact(s) missed their parity gate:[/] "
                      f"{', '.join(result.gate_failures)} (the gates are listed in the README)")
    console.print(f"artifacts and manifests: {result.out_dir}")
