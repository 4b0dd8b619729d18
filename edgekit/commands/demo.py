"""`edgekit demo` (and `make demo`): the bundled model to every target, verified, on real photos."""
from __future__ import annotations

from pathlib import Path

import click

from .common import debug_enabled, json_option


@click.command()
@click.option("-o", "--out", "out_dir", type=click.Path(path_type=Path), default=Path("out/demo"), show_default=True,
              help="Folder for the demo's artifacts, manifests and photos.")
@click.option("--model", "model_name", default="efficientnet_lite0", show_default=True, help="Zoo model in models/.")
@click.option("--train", "train_demo", is_flag=True,
              help="Instead: `edgekit train` on bundled labelled photos (scikit-image faces vs non-faces).")
@json_option
def demo(out_dir, model_name, train_demo, as_json):
    """Convert a bundled pretrained model to every target and precision, verify each, and
    classify real photos with every runnable artifact.

    \b
    Exit 1 when the source or an artifact that met its parity gate mislabels a known photo.

    \b
    Examples:
      edgekit demo
      edgekit demo -o /tmp/demo --json
      edgekit demo --train          # data checks, search, picks, export, model card (a few minutes)
    """
    if train_demo:
        from ..train.sample_data import demo_request
        from .train import run_and_render

        run_and_render(demo_request(out_dir), as_json)
        return
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
