"""`edgekit doctor`: what this host can convert, run and compile."""
from __future__ import annotations

import click

from .common import json_option


@click.command()
@json_option
def doctor(as_json):
    """Which converters, runtimes, compilers and devices this host has, and the route matrix.

    \b
    Examples:
      edgekit doctor
      edgekit doctor --json | jq .targets
    """
    from ..doctor import diagnose
    from ..ui import console, print_json
    from ..views.doctor import render_doctor

    report = diagnose()
    if as_json:
        print_json(report.to_dict())
    else:
        render_doctor(report, console())
