"""`edgekit inspect`: an artifact's inputs, outputs, ops, size and manifest."""
from __future__ import annotations

from pathlib import Path

import click

from .common import debug_enabled, json_option


@click.command()
@click.argument("artifact", type=click.Path(path_type=Path))
@json_option
def inspect(artifact, as_json):
    """Show inputs/outputs (with quantization), op counts, size and the manifest of ARTIFACT.

    \b
    Examples:
      edgekit inspect out/model_int8.tflite
      edgekit inspect out/model_fp16.xml --json
      edgekit inspect out/model_fp32.mlpackage
    """
    from ..inspect import inspect_model
    from ..ui import console, native_output_captured, print_json
    from ..views.inspect import render_inspect

    with native_output_captured(not debug_enabled()):  # coremltools/TF announce themselves on import
        report = inspect_model(artifact)
    if as_json:
        print_json(report.to_dict())
    else:
        render_inspect(report, console())
