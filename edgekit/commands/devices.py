"""`edgekit devices`: the known device profiles (devices/*.yaml) and which this host has."""
from __future__ import annotations

import click

from .common import json_option


@click.command()
@json_option
def devices(as_json):
    """List device profiles (Coral, Intel CPU/iGPU/NPU, NCS2, Apple) and which are present here.

    \b
    Detection reads OpenVINO's device list, USB ids in /sys/bus/usb/devices, /dev/apex_*,
    the board name and the OS. A present profile can be passed to `edgekit bench --profile`.

    \b
    Examples:
      edgekit devices
      edgekit devices --json | jq '.[] | select(.present) | .name'
      edgekit bench out/model_int8.xml --profile intel-cpu
    """
    from ..bench.profiles import survey
    from ..ui import console, print_json
    from ..views.devices import render_devices

    statuses = survey()
    if as_json:
        print_json([s.to_dict() for s in statuses])
    else:
        render_devices(statuses, console())
