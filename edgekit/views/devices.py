"""`edgekit devices`: the device profiles and which this host has."""
from __future__ import annotations

from ..ui import table


def render_devices(statuses, console) -> None:
    """ProfileStatus list (edgekit.bench.profiles.survey)."""
    rows = [[s.profile.name, "yes" if s.present else "no", s.profile.title, f"{s.profile.backend}/{s.profile.device}",
             ", ".join(s.profile.precisions), str(len(s.profile.references)), "" if s.present else s.reason]
            for s in statuses]
    console.print(table("device profiles (devices/*.yaml)",
                        ["profile", "present", "device", "backend/device", "precisions", "references", "notes"],
                        rows, wrap=("device", "precisions", "notes"), optional=("references",)))
    console.print("[dim]references: published latencies with their source; `edgekit bench --profile NAME` shows "
                  "them beside measured numbers[/]")
