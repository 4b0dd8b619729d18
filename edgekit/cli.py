"""The `edgekit` command line: parse, call the library, render. Nothing heavy is imported here."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from . import __version__
from .errors import EdgekitError, VerifyFailed, summary


def _floats(ctx, param, value):
    if value is None:
        return None
    try:
        return [float(v) for v in value.replace(" ", "").split(",") if v]
    except ValueError:
        raise click.BadParameter(f"'{value}' is not a comma-separated list of numbers (e.g. 127.5 or 123.7,116.3,103.5)")


def _size(ctx, param, value):
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


def _names(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _debug() -> bool:
    return "--debug" in sys.argv


# Commands that live in edgekit/commands/: imported only when invoked (or listed by --help),
# so start-up stays fast and each area (bench, run, deploy, edgetpu) owns its own module.
LAZY_COMMANDS = {
    "predict": "edgekit.commands.predict:predict",
    "bench": "edgekit.commands.bench:bench",
    "devices": "edgekit.commands.devices:devices",
    "edgetpu": "edgekit.commands.edgetpu:edgetpu",
    "run": "edgekit.commands.run:run",
    "deploy": "edgekit.commands.deploy:deploy",
    "remote": "edgekit.commands.deploy:remote",
    "rollback": "edgekit.commands.deploy:rollback",
    "train": "edgekit.commands.train:train",
}


class EdgekitGroup(click.Group):
    """Maps EdgekitError to one line on stderr and its exit code: 2 for BadInput (and a bare
    EdgekitError), 1 for RuntimeFailure (a failed upstream step or verify gate); see errors.py."""

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | {n for n in LAZY_COMMANDS if self._lazy(n)})

    def get_command(self, ctx, name):
        return super().get_command(ctx, name) or self._lazy(name)

    @staticmethod
    def _lazy(name):
        import importlib

        target = LAZY_COMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # that area is not built yet
                return None
            raise
        return getattr(module, attr)

    def invoke(self, ctx):
        from . import interrupt

        debug = _debug()
        interrupt.install()
        try:
            return super().invoke(ctx)
        except EdgekitError as exc:
            if debug:
                raise
            click.echo(f"error: {exc.one_line()}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:  # Ctrl-C, SIGTERM, SIGHUP: outputs were finalized or removed on the way
            _stopped()
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:  # an upstream library failed in a way we did not foresee
            if interrupt.interrupted():  # a stop signal, disguised by native bindings
                _stopped()
            if debug:
                raise
            click.echo(f"error: unexpected {type(exc).__name__}: {summary(exc, limit=300)} (rerun with --debug for the traceback)",
                       err=True)
            sys.exit(1)


def _stopped():
    from . import interrupt

    click.echo(f"interrupted ({interrupt.describe()}): no partial artifact was left behind", err=True)
    sys.exit(interrupt.exit_code())


@click.group(cls=EdgekitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgekit")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
def main(debug):
    """Convert, quantize, verify, run and benchmark vision models for edge hardware.

    \b
    Examples:
      edgekit convert model.keras --to tflite,openvino --precision int8 --calib photos/ -o out/
      edgekit inspect out/model_int8.tflite
      edgekit doctor
      edgekit demo
    """


def card_options(command):
    """--author, --license, --model-version, --description, --input-description, --output-description."""
    for option in reversed([
        click.option("--author", help="Model author, written into each format's metadata."),
        click.option("--license", "license_", help="Model licence (e.g. Apache-2.0)."),
        click.option("--model-version", help="Model version string (e.g. 1.2.0)."),
        click.option("--description", help="One-line model description."),
        click.option("--input-description", multiple=True, metavar="NAME=TEXT",
                     help="Describe a source input by name; repeatable."),
        click.option("--output-description", multiple=True, metavar="NAME=TEXT",
                     help="Describe a source output by name; repeatable."),
    ]):
        command = option(command)
    return command


def _card(author, license_, model_version, description, input_description, output_description):
    from .manifest import ModelCard
    from .modelcard import parse_descriptions

    return ModelCard(author=author or "", license=license_ or "", version=model_version or "",
                     description=description or "",
                     inputs=parse_descriptions(input_description, "--input-description"),
                     outputs=parse_descriptions(output_description, "--output-description"))


@main.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--to", "targets", required=True,
              help="Comma-separated targets: tflite, edgetpu, openvino, coreml, onnx.")
@click.option("--precision", "precisions",
              help="Comma-separated: fp32, fp16, dynamic, int8, or 'all' (every precision each target offers). "
                   "Default: fp32, and int8 for edgetpu.")
@click.option("-o", "--out", "out_dir", type=click.Path(path_type=Path), default=Path("out"), show_default=True,
              help="Folder for the artifacts and their manifests.")
@click.option("--calib", help="Calibration data for int8: image folder, video, .npy array, or 'synthetic'.")
@click.option("--calib-samples", type=int, default=128, show_default=True, help="Calibration samples to use.")
@click.option("--verify/--no-verify", default=True, show_default=True, help="Check each artifact against the source.")
@click.option("--verify-data", help="Inputs for verify (default: the calibration data, else scikit-image photos).")
@click.option("--input-size", callback=_size, help="HEIGHT,WIDTH when the model does not fix it.")
@click.option("--mean", callback=_floats, help="Per-channel mean in 0-255 pixel units: 127.5 or R,G,B.")
@click.option("--std", callback=_floats, help="Per-channel std in 0-255 pixel units: 127.5 or R,G,B.")
@click.option("--bgr", is_flag=True, default=None, help="The model was trained on BGR images.")
@click.option("--layout", help="NCHW or NHWC; only to confirm what the model says.")
@click.option("--resize", help="stretch, letterbox or center-crop (default stretch).")
@click.option("--task", help="classification, detection, segmentation or other.")
@click.option("--labels", type=click.Path(path_type=Path, exists=True, dir_okay=False), help="Labels file.")
@click.option("--int8-io", default="uint8", show_default=True, help="TFLite int8 input/output type: uint8 or int8.")
@click.option("--name", help="Artifact file stem (default: the model file's stem).")
@card_options
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def convert(model, targets, precisions, out_dir, calib, calib_samples, verify, verify_data, input_size, mean, std,
            bgr, layout, resize, task, labels, int8_io, name, as_json, **card):
    """Convert MODEL to edge formats, quantize, and verify every artifact against MODEL.

    \b
    MODEL is a Keras .keras/.h5 file, a SavedModel directory, a .tflite, an .onnx,
    a TorchScript .pt or a torch.export .pt2 file; the kind is read from the content.

    \b
    Examples:
      edgekit convert model.onnx --to tflite,openvino,onnx --precision fp32,int8 --calib photos/
      edgekit convert automl.tflite --to openvino --precision fp16
      edgekit convert net.pt --input-size 224 --mean 127 --std 128 --to coreml --precision fp16
      edgekit convert model.keras --to tflite --precision int8 --calib synthetic --json
      edgekit convert model.keras --to edgetpu --calib photos/ -o out/   # int8 + Edge TPU report
      edgekit convert model.keras --to coreml,tflite --author "Jane Doe" --license MIT \\
          --model-version 1.2 --description "Flower classifier" --input-description image="RGB photo"

    \b
    Author, licence, version and descriptions go into every format's own metadata; they are
    also read from MODEL_STEM.model_card.yaml or model_card.yaml beside MODEL (options win).
    """
    from .convert import ConvertRequest
    from .convert import convert as run_convert
    from .ui import console, native_output_captured, print_json, progress_bar, warning
    from .views import convert_notes, convert_table

    request = ConvertRequest(targets=_names(targets), precisions=_names(precisions) if precisions else None, out_dir=out_dir, calib=calib,
                             calib_samples=calib_samples, verify=verify, verify_data=verify_data,
                             input_size=input_size, mean=mean, std=std, bgr=bgr, layout=layout, resize=resize,
                             task=task, labels=labels, int8_io=int8_io, name=name, card=_card(**card))
    with progress_bar(not as_json) as progress, native_output_captured(not _debug()):
        result = run_convert(str(model), request, progress=progress,
                             warn=warning)
    if as_json:
        print_json([a.to_dict() for a in result.artifacts])
    else:
        out = console()
        out.print(convert_table(result))
        for note in convert_notes(result):
            out.print(f"  {note}")
    if result.failed:
        names = ", ".join(Path(a.path).name for a in result.failed)
        raise VerifyFailed(f"verify gate failed for {names}", "see the table; --no-verify skips the check")


@main.command()
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def inspect(artifact, as_json):
    """Show inputs/outputs (with quantization), op counts, size and the manifest of ARTIFACT.

    \b
    Examples:
      edgekit inspect out/model_int8.tflite
      edgekit inspect out/model_fp16.xml --json
    """
    from .inspect import inspect_model
    from .ui import console, native_output_captured, print_json
    from .views import inspect_view

    with native_output_captured(not _debug()):  # coremltools/TF announce themselves on import
        report = inspect_model(artifact)
    if as_json:
        print_json(report)
    else:
        inspect_view(report, console())


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def doctor(as_json):
    """Which converters, runtimes, compilers and devices this host has, and the route matrix.

    \b
    Examples:
      edgekit doctor
      edgekit doctor --json | jq .targets
    """
    from .doctor import diagnose
    from .ui import console, print_json
    from .views import doctor_view

    report = diagnose()
    if as_json:
        print_json(report)
    else:
        doctor_view(report, console())


@main.command()
@click.option("-o", "--out", "out_dir", type=click.Path(path_type=Path), default=Path("out/demo"), show_default=True,
              help="Folder for the demo's artifacts, manifests and photos.")
@click.option("--model", "model_name", default="efficientnet_lite0", show_default=True, help="Zoo model in models/.")
@click.option("--train", "train_demo", is_flag=True,
              help="Instead: `edgekit train` on bundled labelled photos (scikit-image faces vs non-faces).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def demo(out_dir, model_name, train_demo, as_json):
    """Convert a bundled pretrained model to every target and precision, verify each, and
    classify real photos with every runnable artifact.

    \b
    Examples:
      edgekit demo
      edgekit demo -o /tmp/demo --json
      edgekit demo --train          # data checks, search, picks, export, model card (a few minutes)
    """
    if train_demo:
        from .commands.train import run_and_render
        from .train.sample_data import demo_request

        run_and_render(demo_request(out_dir), as_json)
        return
    from .demo import run_demo
    from .ui import console, native_output_captured, print_json, progress_bar, warning
    from .views import demo_table

    with progress_bar(not as_json) as progress, native_output_captured(not _debug()):
        result = run_demo(model_name, out_dir, progress=progress, warn=warning)
    if as_json:
        print_json(result.to_dict())
    else:
        out = console()
        out.print(demo_table(result))
        if result.gate_failures:
            out.print(f"[yellow]{len(result.gate_failures)} artifact(s) missed their parity gate:[/] "
                      f"{', '.join(result.gate_failures)} (the gates are listed in the README)")
        out.print(f"artifacts and manifests: {result.out_dir}")
    if result.failed:
        raise VerifyFailed("a known photo got a wrong label from the source or a verified artifact",
                           "see the table above")


if __name__ == "__main__":
    main()
