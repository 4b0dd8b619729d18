"""`edgekit verify` and `edgekit remote verify`: reference packs rerun, beside the verify at conversion."""
from __future__ import annotations

from pathlib import Path

from ..ui import fmt, table
from .convert import STATUS_STYLE, _top1   # the same cells as convert's table


def _at_conversion(summary: dict | None) -> str:
    """The manifest's verify at conversion time: status, cosine, runtime."""
    if not summary:
        return "—"
    cosine = f" {summary['cosine']:.6f}" if summary.get("cosine") is not None else ""
    runtime = f" ({summary['runtime']})" if summary.get("runtime") else ""
    return f"{summary.get('status')}{cosine}{runtime}"


def render_verify(result, console) -> None:
    """A proof.VerifyResult (`edgekit verify`): one row per artifact rerun from its reference
    pack on this host, beside its verify at conversion, then each artifact's notes."""
    checks = result.checks
    rows = [[Path(c.artifact).name, c.backend + (f" {c.device}" if c.device else ""), str(c.verify.samples),
             STATUS_STYLE.get(c.verify.status, c.verify.status), fmt(c.verify.cosine, ".6f"),
             fmt(c.verify.max_abs_error, ".3g"), _top1(c.verify), _at_conversion(c.at_conversion)] for c in checks]
    host = checks[0].host if checks else ""
    console.print(table(f"reference packs rerun on this host ({host}) against the source's outputs",
                        ["artifact", "runtime", "samples", "verify", "cosine", "max |err|", "top-1 clear (all)",
                         "at conversion"], rows, wrap=("at conversion",),
                        optional=("max |err|", "samples", "at conversion")))
    for check in checks:
        for note in check.verify.notes:
            console.print(f"  {Path(check.artifact).name}: {note}", markup=False)


def render_remote_verify(host: str, name: str, report: dict, console) -> None:
    """The board runner's `verify` report (plain JSON: parity.py's per-output dicts)."""
    outputs = report.get("outputs") or []
    cosine = min((o["cosine"] for o in outputs), default=None)
    worst = max((o["max_abs_error"] for o in outputs), default=None)
    decisive = [o["top1_agreement_decisive"] for o in outputs if o.get("top1_agreement_decisive") is not None]
    agree = [o["top1_agreement"] for o in outputs if o.get("top1_agreement") is not None]
    top1 = f"{fmt(min(decisive) if decisive else None, '.0%')} ({min(agree):.0%})" if agree else fmt(None, ".0%")
    status = report.get("status")
    console.print(table(f"reference pack rerun on {host} ({name} {report.get('version') or ''}) against the source",
                        ["model", "runtime", "device", "samples", "verify", "cosine", "max |err|", "top-1 clear (all)",
                         "at conversion"],
                        [[report.get("model") or name, report.get("runtime"), report.get("device"),
                          str(report.get("samples")), STATUS_STYLE.get(status, status), fmt(cosine, ".6f"),
                          fmt(worst, ".3g"), top1, _at_conversion(report.get("at_conversion"))]],
                        wrap=("at conversion",), optional=("max |err|", "samples", "at conversion", "device")))
    for note in report.get("notes") or []:
        console.print(f"  {note}", markup=False)
