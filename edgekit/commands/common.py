"""Option parsing and output helpers shared by the command modules (click only at import)."""
from __future__ import annotations

import sys

import click


def debug_enabled() -> bool:
    return "--debug" in sys.argv


def json_option(func):
    return click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (for CI).")(func)


def names(value: str | None) -> list[str]:
    """'a, b,c' -> ['a', 'b', 'c']."""
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def floats(ctx, param, value) -> list[float] | None:
    """Click callback: '127.5' or '123.7,116.3,103.5' -> floats."""
    if value is None:
        return None
    try:
        return [float(v) for v in value.replace(" ", "").split(",") if v]
    except ValueError:
        raise click.BadParameter(f"'{value}' is not a comma-separated list of numbers (e.g. 127.5 or 123.7,116.3,103.5)")


def size(ctx, param, value) -> list[int] | None:
    """Click callback: '224' or '224,160' or '224x160' -> [height, width]."""
    if value is None:
        return None
    parts = value.lower().replace("x", ",").split(",")
    try:
        dims = [int(p) for p in parts if p]
    except ValueError:
        dims = []
    if len(dims) == 1:
        dims = dims * 2
    if len(dims) != 2 or min(dims) < 1:
        raise click.BadParameter(f"'{value}' is not HEIGHT,WIDTH (e.g. 224 or 224,224)")
    return dims


# OpenVINO's performance hints (edgekit.runtime.openvino.HINTS maps them; a test keeps the two equal).
# Not imported from there: the CLI must not load a runtime module to build --help.
HINTS = ("latency", "throughput")
THREADS = click.IntRange(min=1)   # every --threads that takes one count


def hint_option(func):
    return click.option("--hint", type=click.Choice(HINTS),
                        help="OpenVINO performance hint: latency or throughput (default: latency).")(func)
