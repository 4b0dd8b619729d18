"""The `edgekit` command line: the click group and the table of commands.

Every command lives in edgekit/commands/ (parse -> library call -> views.render_*) and is
imported only when it runs or `--help` lists it, so start-up stays fast and imports no framework.
"""
from __future__ import annotations

import importlib
import sys

import click

from . import __version__
from .commands.common import debug_enabled
from .errors import EdgekitError, RuntimeFailure, summary

# command name -> "module:attribute" of its click command
LAZY_COMMANDS = {
    "convert": "edgekit.commands.convert:convert",
    "inspect": "edgekit.commands.inspect:inspect",
    "doctor": "edgekit.commands.doctor:doctor",
    "demo": "edgekit.commands.demo:demo",
    "predict": "edgekit.commands.predict:predict",
    "bench": "edgekit.commands.bench:bench",
    "devices": "edgekit.commands.devices:devices",
    "edgetpu": "edgekit.commands.edgetpu:edgetpu",
    "run": "edgekit.commands.run:run",
    "deploy": "edgekit.commands.deploy:deploy",
    "remote": "edgekit.commands.deploy:remote",
    "rollback": "edgekit.commands.deploy:rollback",
    "train": "edgekit.commands.train:train",
    "verify": "edgekit.commands.verify:verify",
}


class CommandLoadError(RuntimeFailure):
    """A command's module failed to import. Exit code 1: the command line was fine, this
    installation is broken (exit 2 is kept for input the user can correct)."""


def load_command(name: str) -> click.Command:
    """The click command NAME of LAZY_COMMANDS. Raises CommandLoadError when its module or
    attribute is missing or fails to import: a broken command is an error, never hidden."""
    module_name, attr = LAZY_COMMANDS[name].split(":")
    try:
        command = getattr(importlib.import_module(module_name), attr)
    except Exception as exc:  # ImportError, or anything the module raised while importing
        if debug_enabled():
            raise
        raise CommandLoadError(f"command '{name}' could not be loaded from {module_name} "
                               f"({type(exc).__name__}: {summary(exc)})",
                               "this edgekit installation is broken: reinstall it, or rerun with --debug "
                               "for the traceback") from None
    if not isinstance(command, click.Command):
        raise CommandLoadError(f"command '{name}': {module_name}.{attr} is not a click command",
                               "fix LAZY_COMMANDS in edgekit/cli.py")
    return command


def _fail(exc: EdgekitError) -> None:
    click.echo(f"error: {exc.one_line()}", err=True)
    sys.exit(exc.exit_code)


class EdgekitGroup(click.Group):
    """Loads commands from LAZY_COMMANDS; maps EdgekitError to one line on stderr and its exit
    code: 2 for BadInput (and a bare EdgekitError), 1 for RuntimeFailure (a failed upstream step
    or verify gate, a regression, a command that cannot load); see errors.py."""

    def list_commands(self, ctx):
        return sorted(LAZY_COMMANDS)

    def get_command(self, ctx, name):
        return load_command(name) if name in LAZY_COMMANDS else None

    def main(self, *args, **kwargs):
        try:
            return super().main(*args, **kwargs)
        except CommandLoadError as exc:  # raised while --help lists the commands, before invoke
            if debug_enabled():
                raise
            _fail(exc)

    def invoke(self, ctx):
        from . import interrupt

        debug = debug_enabled()
        interrupt.install()
        try:
            return super().invoke(ctx)
        except EdgekitError as exc:
            if debug:
                raise
            _fail(exc)
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
      edgekit bench out/model_int8.tflite out/model_int8.xml
      edgekit doctor
      edgekit demo
    """


if __name__ == "__main__":
    main()
