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
