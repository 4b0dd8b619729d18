"""Option helpers shared by the command modules."""
from __future__ import annotations

import sys

import click


def debug_enabled() -> bool:
    return "--debug" in sys.argv


def json_option(func):
    return click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (for CI).")(func)


def names(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


# OpenVINO's performance hints (edgekit.runtime.openvino.HINTS maps them; a test keeps the two equal).
# Not imported from there: the CLI must not load a runtime module to build --help.
HINTS = ("latency", "throughput")
THREADS = click.IntRange(min=1)   # every --threads that takes one count


def hint_option(func):
    return click.option("--hint", type=click.Choice(HINTS),
                        help="OpenVINO performance hint: latency or throughput (default: latency).")(func)
