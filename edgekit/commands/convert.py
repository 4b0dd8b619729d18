"""`edgekit convert`: source model -> edge artifacts, each verified against the source."""
from __future__ import annotations

from pathlib import Path

import click

from .common import debug_enabled, floats, json_option, names, size


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


def card_from(author, license_, model_version, description, input_description, output_description):
    """The ModelCard the card options describe."""
    from ..manifest import ModelCard
    from ..modelcard import parse_descriptions

    return ModelCard(author=author or "", license=license_ or "", version=model_version or "",
                     description=description or "",
                     inputs=parse_descriptions(input_description, "--input-description"),
                     outputs=parse_descriptions(output_description, "--output-description"))


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--to", "targets", required=True,
              help="Comma-separated targets: tflite, edgetpu, openvino, coreml, onnx.")
@click.option("--precision", "precisions",
              help="Comma-separated: fp32, fp16, dynamic, int8, or 'all' (every precision each target offers). "
                   "Default: fp32, and int8 for edgetpu.")
@click.option("-o", "--out", "out_dir", type=click.Path(path_type=Path), default=Path("out"), show_default=True,
              help="Folder for the artifacts and their manifests.")
@click.option("--calib", multiple=True, metavar="DATA|NAME=DATA",
              help="Calibration data for int8: image folder, video, .npy, .npz (one array per input name), or "
                   "'synthetic'; with several inputs, repeat as NAME=DATA per input.")
@click.option("--calib-samples", type=int, default=128, show_default=True, help="Calibration samples to use.")
@click.option("--verify/--no-verify", default=True, show_default=True, help="Check each artifact against the source.")
@click.option("--verify-data", multiple=True, metavar="DATA|NAME=DATA",
              help="Inputs for verify, as --calib (default: the calibration data, else scikit-image photos).")
@click.option("--reference-mb", type=click.FloatRange(min=0), default=2.0, show_default=True,
              help="Size of the reference pack written beside each artifact (ARTIFACT.edgekit.ref.npz, for "
                   "`edgekit verify` elsewhere), in MB; 0 writes none.")
@click.option("--input-size", callback=size, help="HEIGHT,WIDTH when the model does not fix it.")
@click.option("--mean", callback=floats, help="Per-channel mean in 0-255 pixel units: 127.5 or R,G,B.")
@click.option("--std", callback=floats, help="Per-channel std in 0-255 pixel units: 127.5 or R,G,B.")
@click.option("--bgr", is_flag=True, default=None, help="The model was trained on BGR images.")
@click.option("--layout", help="NCHW or NHWC; only to confirm what the model says.")
@click.option("--resize", help="stretch, letterbox or center-crop (default stretch).")
@click.option("--task", help="classification, detection, segmentation or other.")
@click.option("--labels", type=click.Path(path_type=Path, exists=True, dir_okay=False), help="Labels file.")
@click.option("--int8-io", default="uint8", show_default=True, help="TFLite int8 input/output type: uint8 or int8.")
@click.option("--name", help="Artifact file stem (default: the model file's stem).")
@card_options
@json_option
def convert(model, targets, precisions, out_dir, calib, calib_samples, verify, verify_data, reference_mb, input_size,
            mean, std, bgr, layout, resize, task, labels, int8_io, name, as_json, **card):
    """Convert MODEL to edge formats, quantize, and verify every artifact against MODEL.

    \b
    MODEL is a Keras .keras/.h5 file, a SavedModel directory, a .tflite, an .onnx,
    a TorchScript .pt or a torch.export .pt2 file; the kind is read from the content.
    Each target is built on its own: one that is refused or fails is named in the summary and
    the others are built and verified all the same. Exit codes: 0 everything was built and
    passed its gates; 1 some target failed or some gate failed (what was built stays written);
    2 bad input meant nothing could be built.
    Beside each verified artifact: its manifest (.edgekit.json) and its reference pack
    (.edgekit.ref.npz), which `edgekit verify` reruns on another host's runtime.

    \b
    Examples:
      edgekit convert model.onnx --to tflite,openvino,onnx --precision fp32,int8 --calib photos/
      edgekit convert automl.tflite --to openvino --precision fp16
      edgekit convert net.pt --input-size 224 --mean 127 --std 128 --to coreml --precision fp16
      edgekit convert model.keras --to tflite --precision int8 --calib synthetic --json
      edgekit convert model.keras --to edgetpu --calib photos/ -o out/   # int8 + Edge TPU report
      edgekit convert fusion.keras --to tflite --calib image=photos/ --calib sensors=s.npy
      edgekit convert kws.onnx --to openvino --precision int8 --calib frames.npz   # array per input
      edgekit convert model.keras --to coreml,tflite --author "Jane Doe" --license MIT \\
          --model-version 1.2 --description "Flower classifier" --input-description image="RGB photo"

    \b
    Author, licence, version and descriptions go into every format's own metadata; they are
    also read from MODEL_STEM.model_card.yaml or model_card.yaml beside MODEL (options win).
    """
    from ..convert import ConvertRequest
    from ..convert import convert as run_convert
    from ..ui import console, native_output_captured, print_json, progress_bar, warning
    from ..views.convert import render_convert

    request = ConvertRequest(targets=names(targets), precisions=names(precisions) if precisions else None,
                             out_dir=out_dir, calib=list(calib) or None, calib_samples=calib_samples, verify=verify,
                             verify_data=list(verify_data) or None, reference_bytes=int(reference_mb * 1e6),
                             input_size=input_size, mean=mean, std=std, bgr=bgr, layout=layout, resize=resize,
                             task=task, labels=labels, int8_io=int8_io, name=name, card=card_from(**card))
    from ..convert import NothingBuilt
    from ..errors import EdgekitError

    try:
        with progress_bar(not as_json) as progress, native_output_captured(not debug_enabled()):
            result = run_convert(str(model), request, progress=progress, warn=warning)
    except NothingBuilt as exc:   # several targets, none built: each one's reason, then one error line
        if as_json:
            print_json([f.to_dict() for f in exc.failures])
        _debug_reraise(exc.failures)
        raise
    except EdgekitError as exc:   # the one target was not built: --json still lists it
        if as_json and getattr(exc, "not_built", None):
            print_json([f.to_dict() for f in exc.not_built])
        raise
    if as_json:
        print_json([a.to_dict() for a in result.artifacts] + [f.to_dict() for f in result.failures])
    else:
        render_convert(result, console())
    _debug_reraise(result.failures)
    exit_policy(result)


def _debug_reraise(failures) -> None:
    """--debug: an unforeseen upstream error of one target shows its own traceback."""
    from ..errors import EdgekitError

    if debug_enabled():
        for failure in failures:
            if failure.exception is not None and not isinstance(failure.exception, EdgekitError):
                raise failure.exception


def exit_policy(result) -> None:
    """Exit 1 when a target was not built or an artifact missed its parity gate (the others stay
    written): one error line naming each. Exit 0 otherwise."""
    from ..errors import RuntimeFailure, VerifyFailed

    # the reasons are in the table (or --json) already: the error line names the targets only
    parts = [f"{f.target} {f.precision} {'refused' if f.status == 'refused' else 'failed'}" for f in result.failures]
    if result.failed:
        failed = ", ".join(Path(a.path).name for a in result.failed)
        if not parts:
            raise VerifyFailed(f"verify gate failed for {failed}", "see the table; --no-verify skips the check")
        parts.append(f"verify gate failed for {failed}")
    if parts:
        built = len(result.artifacts)
        raise RuntimeFailure(f"{built} artifact(s) built; " + "; ".join(parts),
                             "see the table; each target's reason is its own")
