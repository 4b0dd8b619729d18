"""`edgekit deploy`, `edgekit remote bench|run`, `edgekit rollback`: models on boards over SSH."""
from __future__ import annotations

from pathlib import Path

import click

from .common import THREADS, json_option

DEFAULT_ROOT = "~/.edgekit"  # mirrors edgekit.deploy.remote.DEFAULT_ROOT without importing it at start-up


def ssh_options(func):
    """Connection options shared by every command that talks to a board."""
    options = [
        click.option("--key", type=click.Path(path_type=Path, dir_okay=False),
                     help="Private key file (default: ssh-agent and ~/.ssh/config)."),
        click.option("--known-hosts", type=click.Path(path_type=Path, dir_okay=False),
                     help="known_hosts file to verify against (default: ~/.ssh/known_hosts)."),
        click.option("--trust-new-host", is_flag=True,
                     help="First contact: record an unknown host key. A CHANGED key is still refused."),
        click.option("--port", type=click.IntRange(1, 65535), help="SSH port, for hosts without :PORT."),
        click.option("--ssh-config", type=click.Path(path_type=Path, dir_okay=False),
                     help="ssh config file to use instead of ~/.ssh/config."),
        click.option("--ssh-option", "ssh_extra", multiple=True, metavar="NAME=VALUE",
                     help="Extra ssh -o option (repeatable), e.g. ProxyJump=gateway."),
        click.option("--remote-python", default="python3", show_default=True,
                     help="Python on the board (Ansible's ansible_python_interpreter wins)."),
        click.option("--remote-root", default=DEFAULT_ROOT, show_default=True,
                     help="Where bundles live on the board: ROOT/models/NAME/<version>, ROOT/models/NAME/current."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _ssh(kw) -> tuple:
    from ..deploy.ssh import SshOptions
    from ..ui import console

    for option in kw["ssh_extra"]:
        if "=" not in option or option.split("=", 1)[0].strip().lower() in ("batchmode", "stricthostkeychecking"):
            from ..errors import EdgekitError

            raise EdgekitError(f"--ssh-option '{option}' is not allowed",
                               "use NAME=VALUE; BatchMode and StrictHostKeyChecking are fixed (see --trust-new-host)")
    err = console(stderr=True)

    def first_contact(label: str, fingerprint: str) -> None:
        err.print(f"warning: first contact with {label}: recorded its host key {fingerprint}. Check it is the "
                  "board's own (on the board: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub); "
                  "a changed key will be refused from now on", markup=False)

    options = SshOptions(key=kw["key"], known_hosts=kw["known_hosts"], config=kw["ssh_config"], port=kw["port"],
                         trust_new_host=kw["trust_new_host"], extra=list(kw["ssh_extra"]), on_new_host=first_contact)
    return options, kw["remote_python"], kw["remote_root"]


def _deprecated(old: str, new: str):
    """A hidden old spelling kept for one release: it still works and says what replaces it."""
    def warn(ctx, param, value):
        if value not in (None, ()):
            from ..ui import console

            console(stderr=True).print(f"warning: {old} is deprecated here and will be removed in the next "
                                       f"release; use {new}", markup=False)
        return value
    return warn


def _single_host(text: str):
    from ..deploy.hosts import parse_host

    return parse_host(text)


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--host", "--hosts", "hosts", multiple=True, metavar="HOSTS",
              help="user@host[:port]; several comma-separated or repeated; @FILE (host list or Ansible "
                   "INI/YAML inventory).")
@click.option("--to", "old_to", multiple=True, hidden=True, callback=_deprecated("deploy --to", "--host"),
              help="Deprecated spelling of --host.")
@click.option("--name", help="Model name on the board (default: the artifact's file stem).")
@click.option("--profile", help="Device profile (devices/*.yaml) the model is meant for; checked against the model.")
@click.option("--allow-cpu", is_flag=True,
              help="With an Edge TPU --profile: deploy a model not compiled for the Edge TPU anyway, to run on "
                   "the board's CPU.")
@click.option("--labels", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Labels file (default: the labels in the model's manifest).")
@click.option("--include", type=click.Path(path_type=Path, exists=True, dir_okay=False), multiple=True,
              help="Extra file to ship in the bundle (repeatable).")
@click.option("--keep", type=click.IntRange(2, 100), default=3, show_default=True,
              help="Versions kept on the board (current and previous are never removed).")
@click.option("--parallel", type=click.IntRange(1, 256), default=4, show_default=True, help="Boards deployed at once.")
@click.option("--save-bundle", type=click.Path(path_type=Path, file_okay=False),
              help="Also write the bundle to this local folder.")
@click.option("--verify-on-device", is_flag=True,
              help="Run the model's reference pack on the board's runtime first; switch `current` only if it "
                   "passes its gates (else the running version stays, exit 1).")
@ssh_options
@json_option
def deploy(model, hosts, old_to, name, profile, allow_cpu, labels, include, keep, parallel, save_bundle,
           verify_on_device, as_json, **kw):
    """Ship MODEL to one board or a fleet: a versioned bundle with a sha256 for every file,
    verified on the board, then switched in atomically (the previous version stays for rollback).
    Deploying the content that is already current changes nothing (no new version).

    \b
    The board needs Python 3.7+, numpy and a TFLite runtime (ai-edge-litert, or tflite-runtime
    on older boards; libedgetpu for models compiled for the Edge TPU, which the file itself
    tells). edgekit itself is not needed there. Host keys are checked against known_hosts; a
    first contact needs --trust-new-host and prints the fingerprint to check.
    --verify-on-device reruns the artifact's reference pack (ARTIFACT.edgekit.ref.npz, which
    the bundle carries) on the board, on its own accelerator, before `current` moves.
    Exit codes: 0 every host ok, 1 some failed or the pack failed on the boards, 2 bad input
    or no host done.

    \b
    Examples:
      edgekit deploy out/model_int8_edgetpu.tflite --host mendel@coral.local --profile coral-dev-board
      edgekit deploy out/model.tflite --host pi@10.0.0.7:2222 --key ~/.ssh/board --trust-new-host
      edgekit deploy out/model.tflite --hosts @fleet.txt --parallel 8
      edgekit deploy out/model.tflite --hosts @inventory.yml --json
      edgekit deploy out/model_int8_edgetpu.tflite --host mendel@coral.local --verify-on-device
    """
    from ..deploy.bundle import build_bundle
    from ..deploy.hosts import parse_targets
    from ..deploy.remote import deploy_fleet
    from ..ui import console, print_json, warning
    from ..views.deploy import render_deploy

    options, python, root = _ssh(kw)
    hosts = parse_targets(tuple(hosts) + tuple(old_to))
    err = console(stderr=True)
    bundle = build_bundle(model, name=name, labels=labels, include=include, warn=warning,
                          need_reference=verify_on_device)
    if profile:
        _check_profile(profile, bundle, model, allow_cpu, lambda m: err.print(f"warning: {m}", markup=False))
    elif allow_cpu:
        raise _bad_input("--allow-cpu applies only with an Edge TPU --profile", "add --profile, or drop --allow-cpu")
    if save_bundle:
        saved = bundle.save(save_bundle)
        if not as_json:
            err.print(f"bundle written to {saved}")
    with _upload_progress(not as_json, bundle.size) as progress_for:
        results = deploy_fleet(hosts, bundle, options, python, root, keep, parallel, progress_for,
                               verify=verify_on_device)
    failed = [r for r in results if r.status != "ok"]
    if as_json:
        print_json({"name": bundle.name, "version": bundle.version, "bundle": bundle.to_dict(),
                    "results": [r.to_dict() for r in results], "ok": len(results) - len(failed), "failed": len(failed)})
    else:
        render_deploy(bundle, results, console())
    parity = [r for r in failed if r.verify is not None and r.verify.get("status") != "pass"]
    if failed and len(parity) == len(failed):   # the boards answered: the model missed its gates there
        from ..errors import VerifyFailed

        if len(results) == 1:
            raise VerifyFailed(failed[0].error)
        raise VerifyFailed(f"the reference pack failed on {len(failed)} of {len(results)} hosts "
                           f"({', '.join(r.host for r in failed)}); their running versions stay current",
                           "see the table")
    _raise_for(failed, len(results), "deploy")


def _bad_input(message: str, remedy: str | None = None):
    from ..errors import EdgekitError

    return EdgekitError(message, remedy)


def _check_profile(profile: str, bundle, model: Path, allow_cpu: bool, warn) -> None:
    """Whether the model was compiled for the Edge TPU is read from the file (its edgetpu-custom-op),
    never from its name or its manifest's target."""
    from ..bench.profiles import get_profile

    chosen = get_profile(profile)
    name = Path(model).name
    if chosen.backend == "edgetpu" and not bundle.edgetpu:
        if not allow_cpu:
            raise _bad_input(f"profile '{profile}' runs Edge TPU models, and {name} is not compiled for the Edge TPU "
                             "(it has no edgetpu-custom-op; it would run on the board's CPU)",
                             f"compile it first: edgekit edgetpu compile {model} (writes *_edgetpu.tflite), or "
                             "pass --allow-cpu to deploy it as a CPU model")
        warn(f"{name} is not compiled for the Edge TPU: it will run on the CPU of the {chosen.title}")
    elif chosen.backend != "edgetpu" and bundle.edgetpu:
        raise _bad_input(f"{name} is compiled for the Edge TPU, and profile '{profile}' has no Edge TPU",
                         "deploy the uncompiled int8 model (*_edgetpu_ready.tflite or *_int8.tflite), or pick an "
                         "Edge TPU profile")
    elif allow_cpu:
        raise _bad_input(f"--allow-cpu applies only to Edge TPU profiles, and '{profile}' is not one",
                         "drop --allow-cpu")


def _raise_for(failed, total: int, what: str) -> None:
    """Exit codes shared by deploy, rollback and bench: 0 all ok, 1 partial failure, 2 nothing done."""
    from ..errors import EdgekitError

    if not failed:
        return
    if total == 1:
        raise EdgekitError(failed[0].error or f"{what} failed on {failed[0].host}")
    if len(failed) == total:
        raise EdgekitError(f"{what} failed on every host ({', '.join(r.host for r in failed)})",
                           "see the table for each reason")
    error = EdgekitError(f"{what} failed on {len(failed)} of {total} hosts ({', '.join(r.host for r in failed)})",
                         "see the table; the other hosts were done")
    error.exit_code = 1
    raise error


class _upload_progress:
    """One byte-progress bar per host on a terminal (none under --json); in logs (stderr not a
    terminal), a plain line when each host's upload starts and ends, with its duration."""

    def __init__(self, enabled: bool, total: int):
        self.enabled = enabled
        self.total = total
        self.progress = None
        self.plain = None

    def __enter__(self):
        from ..ui import PlainProgress, console, human_size

        err = console(stderr=True)
        if not err.is_terminal:
            self.plain = PlainProgress(err.file)
            self.size = human_size(self.total)
            return self._for_host
        if not self.enabled:
            return None
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                                 console=err, transient=True)
        self.progress.start()
        return self._for_host

    def _for_host(self, host):
        task = []  # the bar appears with the first uploaded bytes, after the device checks passed
        bars = self.progress or self.plain
        description = f"upload to {host.label} ({self.size})" if self.plain else f"upload {host.label}"

        def advance(nbytes: int) -> None:
            if not task:
                task.append(bars.add_task(description, total=self.total))
            bars.advance(task[0], nbytes)
        return advance

    def __exit__(self, kind, value, traceback):
        if self.progress is not None:
            self.progress.stop()
        if self.plain is not None:
            self.plain.close("ended after" if kind is None else "stopped after")   # a failed host ends early


@click.command()
@click.argument("hosts", nargs=-1, required=True)
@click.option("--name", help="Model to roll back (default: the only model on the board).")
@click.option("--version", "version", help="Version to activate (default: the previous one; "
                                           "`edgekit remote status HOST` lists them).")
@click.option("--to", "old_to", hidden=True, callback=_deprecated("rollback --to", "--version"),
              help="Deprecated spelling of --version.")
@click.option("--parallel", type=click.IntRange(1, 256), default=4, show_default=True, help="Boards rolled back at once.")
@ssh_options
@json_option
def rollback(hosts, name, version, old_to, parallel, as_json, **kw):
    """Point `current` back to the previous version (verified first, switched atomically).

    \b
    HOSTS are user@host[:port], comma lists or @FILE, as for deploy.
    Rolling back twice returns to the newer version.
    Exit codes: 0 every host ok, 1 some failed, 2 bad input or no host done.

    \b
    Examples:
      edgekit rollback mendel@coral.local
      edgekit rollback @fleet.txt --name detector --json
      edgekit rollback pi@10.0.0.7 --version 20260101T120000Z-0123456789ab
    """
    from ..deploy.hosts import parse_targets
    from ..deploy.remote import rollback_fleet
    from ..ui import console, print_json
    from ..views.deploy import render_rollback

    if version and old_to:
        raise _bad_input("--version and --to both given", "use --version (--to is its deprecated spelling)")
    version = version or old_to
    options, python, root = _ssh(kw)
    results = rollback_fleet(parse_targets(hosts), options, python, root, name, version, parallel)
    failed = [r for r in results if r.status != "ok"]
    if as_json:
        print_json({"results": [r.to_dict() for r in results], "ok": len(results) - len(failed), "failed": len(failed)})
    else:
        render_rollback(results, console())
    _raise_for(failed, len(results), "rollback")


@click.group()
def remote():
    """Inspect a board's deployed models, verify or benchmark them, or stream their results.

    \b
    Examples:
      edgekit remote status mendel@coral.local
      edgekit remote verify mendel@coral.local
      edgekit remote bench mendel@coral.local --runs 200 --json
      edgekit remote run mendel@coral.local --source 0 --jsonl
      edgekit remote run mendel@coral.local --source 0 --serve 0.0.0.0:8080
    """


@remote.command("status")
@click.argument("host")
@click.option("--name", help="Only this deployed model (default: every model on the board).")
@ssh_options
@json_option
def remote_status(host, name, as_json, **kw):
    """List the models deployed on HOST: every kept version with its date and hashes, which one
    is current and which one `rollback` returns to, and the latest deploy history (deploys,
    rollbacks, `remote verify` results).

    \b
    Examples:
      edgekit remote status mendel@coral.local
      edgekit remote status pi@10.0.0.7:2222 --name detector --json
    """
    from ..deploy.bundle import check_name
    from ..deploy.remote import Device
    from ..errors import EdgekitError
    from ..ui import console, print_json
    from ..views.deploy import render_status

    options, python, root = _ssh(kw)
    device = Device(_single_host(host), options, python, root)
    models = device.models()
    if name:
        check_name(name)
        if name not in models:
            raise EdgekitError(f"{device.host.label}: no model named '{name}' is deployed under {device.root}",
                               f"deployed: {', '.join(models) or 'none'}")
        models = {name: models[name]}
    rows = []
    for model, entry in models.items():
        details = entry.get("details") or {}
        for version in sorted(entry.get("versions", []), reverse=True):
            info = details.get(version) or {}
            state = "current" if version == entry.get("current") else "previous" if version == entry.get("previous") else ""
            rows.append({"name": model, "version": version, "state": state, "created": info.get("created"),
                         "model": info.get("model"), "content_sha256": info.get("content_sha256"),
                         "model_sha256": info.get("model_sha256"), "size_bytes": info.get("size_bytes")})
    events = [{"name": model, **event} for model, entry in models.items() for event in entry.get("history") or []]
    if as_json:
        print_json({"host": device.host.label, "root": device.root, "versions": rows, "history": events})
    else:
        render_status(device.host.label, device.root, rows, console(), events)


@remote.command("bench")
@click.argument("host")
@click.option("--name", "names", multiple=True,
              help="Deployed model; repeat to bench several (default: the only model on the board).")
@click.option("--runs", type=click.IntRange(1), default=100, show_default=True, help="Timed inferences.")
@click.option("--warmup", type=click.IntRange(0), default=10, show_default=True, help="Untimed inferences first.")
@click.option("--threads", type=THREADS, help="CPU threads of the board's interpreter (default: the runtime's).")
@click.option("--profile", "profile_name", metavar="NAME|FILE.yaml",
              help="Device profile (`edgekit devices`, or a YAML file): flag results over 10x its references.")
@ssh_options
@json_option
def remote_bench(host, names, runs, warmup, threads, profile_name, as_json, **kw):
    """Benchmark deployed models on HOST with the bundled runner; the JSON has the same
    shape as `edgekit bench --json` (host facts are the board's).

    A result more than 10x the profile's published reference, or an int8 model slower than the
    fp32 one of the same name, is flagged with its likely cause (`flags` in the JSON).

    \b
    Examples:
      edgekit remote bench mendel@coral.local
      edgekit remote bench pi@10.0.0.7:2222 --runs 200 --threads 4 --json
      edgekit remote bench pi@10.0.0.7 --name net_int8 --name net_fp32 --profile coral-usb-pi4
    """
    from ..bench.profiles import get_profile
    from ..bench.slowness import flag_slowness
    from ..deploy.remote import Device
    from ..errors import EdgekitError
    from ..ui import console, print_json, warning
    from ..views.deploy import render_remote_bench

    profile = get_profile(profile_name) if profile_name else None   # refused before connecting
    options, python, root = _ssh(kw)
    device = Device(_single_host(host), options, python, root)
    report = None
    for name in names or (None,):
        one = device.bench(device.resolve_name(name), runs, warmup, threads)
        if report is None:
            report = one
        else:   # one document, as `edgekit bench` gives for several models
            report["results"].extend(one["results"])
            report.setdefault("bundles", [report.get("bundle")]).append(one.get("bundle"))
    report["flags"] = flag_slowness(report, profile)
    if as_json:
        print_json(report)
    else:
        render_remote_bench(report, device.host.label, console())
    for flag in report["flags"]:
        warning(flag)
    failed = [r for r in report["results"] if r.get("status") != "ok"]
    if failed:
        raise EdgekitError(f"{device.host.label}: benchmark failed: {failed[0].get('error')}")


@remote.command("verify")
@click.argument("host")
@click.option("--name", help="Deployed model (default: the only model on the board).")
@click.option("--threads", type=THREADS, help="CPU threads of the board's interpreter (default: the runtime's).")
@ssh_options
@json_option
def remote_verify(host, name, threads, as_json, **kw):
    """Rerun the deployed model's reference pack on HOST, on the board's own runtime and
    accelerator (the Edge TPU for a compiled model), and gate it against the host's source
    outputs as `edgekit convert` does. The result is added to the model's deploy history.

    \b
    The bundle carries the pack (ARTIFACT.edgekit.ref.npz, written by `edgekit convert`) and
    the parity code; the board needs only Python 3.7+, numpy and a TFLite runtime.
    Exit codes: 0 the pack passed, 1 a gate failed on the board, 2 bad input or no answer.

    \b
    Examples:
      edgekit remote verify mendel@coral.local
      edgekit remote verify pi@10.0.0.7:2222 --name detector --json
    """
    from ..deploy.remote import Device
    from ..errors import VerifyFailed
    from ..ui import console, print_json
    from ..views.verify import render_remote_verify

    options, python, root = _ssh(kw)
    device = Device(_single_host(host), options, python, root)
    model = device.resolve_name(name)
    report = device.verify(model, threads)
    if as_json:
        print_json({"host": device.host.label, "name": model, **report})
    else:
        render_remote_verify(device.host.label, model, report, console())
    if report.get("status") != "pass":
        raise VerifyFailed(f"{device.host.label}: {report.get('model')} failed its reference pack on "
                           f"{report.get('runtime')}", "see the notes above")


@remote.command("run")
@click.argument("host")
@click.option("--name", help="Deployed model (default: the only model on the board).")
@click.option("--source", default="synthetic", show_default=True,
              help="On the board: camera index (0), video file, image folder, or 'synthetic'.")
@click.option("--frames", type=click.IntRange(1), help="Stop after N frames (default: until the source ends).")
@click.option("--top-k", type=click.IntRange(1), default=5, show_default=True, help="Classes kept per frame.")
@click.option("--serve", metavar="HOST:PORT", help="Serve the annotated stream from the board (needs edgekit there).")
@click.option("--jsonl", is_flag=True, help="One JSON object per frame, as the board produces them.")
@ssh_options
@json_option
def remote_run(host, name, source, frames, top_k, serve, jsonl, as_json, **kw):
    """Run the deployed model on HOST and stream its results back, frame by frame.

    \b
    Sources are read on the board: cameras and video files need OpenCV there; image folders
    need OpenCV or Pillow; 'synthetic' needs neither. --serve starts `edgekit run` on the
    board (edgekit must be installed there) and prints the URL.

    \b
    Examples:
      edgekit remote run mendel@coral.local --source 0 --jsonl
      edgekit remote run pi@10.0.0.7 --source /home/pi/photos --frames 20
      edgekit remote run mendel@coral.local --source 0 --serve 0.0.0.0:8080
    """
    import json
    import sys

    from ..deploy.remote import Device
    from ..ui import console, print_json
    from ..views.deploy import frame_text

    options, python, root = _ssh(kw)
    device = Device(_single_host(host), options, python, root)
    model = device.resolve_name(name)
    out = console()
    lines = []
    for line in device.run(model, source, frames, top_k, serve):
        if "serving" in line:
            address = line["serving"]
            bind, _, port = address.rpartition(":")
            shown = device.host.host if bind in ("", "0.0.0.0", "::", "[::]") else bind
            url = f"http://{shown}:{port}/" + (f"?token={line['token']}" if line.get("token") else "")
            if as_json or jsonl:
                sys.stdout.write(json.dumps({"url": url}) + "\n")
                sys.stdout.flush()
            else:
                out.print(f"serving {model} from {device.host.label}: {url} (Ctrl-C stops it)")
            continue
        if as_json:
            lines.append(line)
        elif jsonl:
            sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()
        else:
            out.print(frame_text(line))
    if as_json:
        print_json({"host": device.host.label, "name": model, "frames": lines})


__all__ = ["deploy", "remote", "rollback"]
