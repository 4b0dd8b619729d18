"""`edgekit verify`: rerun artifacts' reference packs on this host's runtime, gated as convert does."""
from __future__ import annotations

from pathlib import Path

import click

from .common import debug_enabled, json_option


@click.command()
@click.argument("artifacts", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--backend", help="Runtime backend: litert, edgetpu, openvino, onnxruntime, coreml "
                                "(default: the artifact's own; edgetpu for a model compiled for it).")
@click.option("--device", help="The backend's device: CPU, GPU or NPU (openvino), usb:0 or pci:0 (edgetpu), "
                               "all, cpuOnly or cpuAndNE (coreml).")
@click.option("--reference", type=click.Path(path_type=Path, dir_okay=False),
              help="The reference pack, when it is not beside the artifact (one artifact only).")
@json_option
def verify(artifacts, backend, device, reference, as_json):
    """Rerun each ARTIFACT's reference pack on this host and gate it against the source's outputs.

    \b
    `edgekit convert` writes ARTIFACT.edgekit.ref.npz beside every artifact: real inputs as
    the runtime is fed them, the source framework's outputs on them and the gates for the
    artifact's precision. Copy it with the artifact and its .edgekit.json to the machine that
    has the runtime (a Mac for Core ML, a host with a Coral for Edge TPU models, an Intel
    GPU or NPU for OpenVINO) and run this there. The report is convert's.
    The pack must be the one convert wrote with the artifact (its sha256 is in the manifest),
    and an artifact whose bytes changed since conversion fails.
    An artifact this host has no runtime for is reported as skipped and the others still run.
    Exit codes: 0 every artifact passed; 1 a gate failed, an artifact changed, or some artifact
    could not run here; 2 bad input, or no artifact could run on this host.

    \b
    Examples:
      edgekit verify out/model_int8.tflite
      edgekit verify out/                                     # every artifact in the folder
      edgekit verify out/*.mlpackage                          # on a Mac
      edgekit verify out/model_int8.xml --device NPU
      edgekit verify out/model_int8_edgetpu.tflite --device usb:0 --json
    """
    from ..proof import verify_artifacts
    from ..ui import console, native_output_captured, print_json
    from ..views.verify import render_verify

    from ..listing import models_only

    models, _ = models_only(artifacts)   # `out/*` or `out/` brings manifests, packs and .bin files along
    with native_output_captured(not debug_enabled()):
        result = verify_artifacts(models, backend, device, reference)
    if as_json:
        print_json(result.to_dict())
    else:
        render_verify(result, console())
    if result.failed or result.skipped:
        from ..errors import VerifyFailed

        parts = [f"verify failed for {', '.join(Path(c.artifact).name for c in result.failed)}"] if result.failed \
            else []
        if result.skipped:
            parts.append(f"not verified on this host: {', '.join(Path(c.artifact).name for c in result.skipped)}")
        raise VerifyFailed("; ".join(parts), "run those on a host with their runtime (see the notes above)"
                           if result.skipped else "see the notes above")
