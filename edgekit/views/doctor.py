"""`edgekit doctor`: packages, targets, runtimes, tools and the route matrix."""
from __future__ import annotations

from ..ui import table


def render_doctor(report, console) -> None:
    """A DoctorReport."""
    host = report.host
    console.print(f"[bold]edgekit {report.edgekit}[/] on {host['platform']} ({host['machine']}), "
                  f"Python {host['python']}, {host['cpu']}")
    console.print(table("packages", ["package", "version", "extra"],
                        [[p.name, p.version or "[red]missing[/]", p.extra] for p in report.packages]))
    console.print(table("targets", ["target", "precisions", "status"],
                        [[t.name, ", ".join(t.precisions), _target_status(t)] for t in report.targets],
                        wrap=("precisions", "status")))
    console.print(table("runtimes", ["backend", "status", "devices"],
                        [[r.name, r.unavailable or "[green]ready[/]", ", ".join(r.devices)] for r in report.runtimes],
                        wrap=("status", "devices")))
    console.print(table("tools", ["tool", "status"], [[k, v] for k, v in report.tools.items()], wrap=("status",)))
    names = [t.name for t in report.targets]
    console.print(table("routes (source → target)", ["source", *names],
                        [[src, *[row[n] for n in names]] for src, row in report.routes.items()], wrap=tuple(names)))


def _target_status(target) -> str:
    """Why it cannot convert here, what it cannot finish here (yellow), or ready (green)."""
    if target.unavailable:
        return target.unavailable
    return f"[yellow]{target.limited}[/]" if target.limited else "[green]ready[/]"
