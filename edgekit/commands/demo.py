"""`edgekit demo` (and `make demo`): the bundled model to every target, verified, on real photos."""
from __future__ import annotations

from pathlib import Path

import click

from .common import debug_enabled, json_option


@click.command()
@click.option("-o", "--out", "out_dir", type=click.Path(path_type=Path), default=Path("out/demo"), show_default=True,
              help="Folder for the demo's artifacts, manifests and photos.")
@click.option("--model", "model_name", default="efficientnet_lite0", show_default=True, help="Zoo model in models/.")
@json_option
def demo(out_dir, model_name, as_json):
    """Convert a bundled pretrained model to every target and precision, verify each, and
    classify real photos with every runnable artifact.

    \b
    Exit 1 when the source or an artifact that met its parity gate mislabels a known photo.

    \b
    Examples:
      edgekit demo
      edgekit demo -o /tmp/demo --json
    """
    from ..demo import run_demo
    from ..ui import console, native_output_captured, print_json, progress_bar, warning
    from ..views.convert import render_demo

    with progress_bar(not as_json) as progress, native_output_captured(not debug_enabled()):
        result = run_demo(model_name, out_dir, progress=progress, warn=warning)
    if as_json:
        print_json(result.to_dict())
    else:
        render_demo(result, console())
    exit_policy(result)


def exit_policy(result) -> None:
    """Exit 1 (VerifyFailed) when a known photo got a wrong label where it must not."""
    from ..errors import VerifyFailed

    if result.failed:
        raise VerifyFailed("a known photo got a wrong label from the source or a verified artifact",
                           "see the table above")
