"""Option names mean one thing each, across every command: `--to` is the target formats of convert
and train (deploy and rollback keep it only as a hidden, warned alias), `--hint` is one checked choice, `--threads` one
type; every option has help text, and every example line fits a 100-column terminal."""
from __future__ import annotations

import click
import pytest

from edgekit.cli import main

WIDTH = 100


def _commands(group: click.Group = main, path: tuple[str, ...] = ()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        yield path + (name,), command
        if isinstance(command, click.Group):
            yield from _commands(command, path + (name,))


COMMANDS = list(_commands())


def _options(command: click.Command):
    return [p for p in command.params if isinstance(p, click.Option)]


def test_every_command_is_listed():
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"convert", "deploy", "rollback", "remote status", "remote bench", "run", "bench", "predict"} <= names


@pytest.mark.parametrize("path, command", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_option_has_help_and_examples_fit_100_columns(path, command):
    missing = [o.opts[0] for o in _options(command) if not o.hidden and not (o.help or "").strip()]
    assert not missing, f"edgekit {' '.join(path)}: options without help: {missing}"
    with click.Context(command, info_name=f"edgekit {' '.join(path)}", terminal_width=WIDTH,
                       max_content_width=WIDTH) as ctx:
        text = command.get_help(ctx)
    if not isinstance(command, click.Group) or command.help:
        assert "Examples:" in text, f"edgekit {' '.join(path)} --help has no examples"
    examples = text.split("Examples:", 1)[1].split("\n\n")[0] if "Examples:" in text else ""
    long = [line for line in examples.splitlines() if len(line) > WIDTH]
    assert not long, f"example lines wider than {WIDTH} columns: {long}"


def test_hint_and_threads_are_one_type_everywhere():
    from edgekit.commands.common import HINTS
    from edgekit.runtime.openvino import HINTS as OPENVINO_HINTS

    assert tuple(HINTS) == tuple(OPENVINO_HINTS)
    seen = set()
    for path, command in COMMANDS:
        for option in _options(command):
            if "--hint" in option.opts:
                assert isinstance(option.type, click.Choice) and tuple(option.type.choices) == HINTS, path
                seen.add("hint")
            if "--threads" in option.opts:
                seen.add("threads")
                if path == ("bench",):   # one row per count: N[,N...], each a positive integer
                    assert option.callback is not None
                    continue
                assert isinstance(option.type, click.IntRange) and option.type.min == 1 and option.type.max is None, path
    assert seen == {"hint", "threads"}


def test_to_means_targets_and_old_spellings_are_hidden_aliases():
    for path, command in COMMANDS:
        for option in _options(command):
            if "--to" in option.opts and path not in (("convert",), ("train",)):   # both: target formats
                assert option.hidden and "Deprecated" in option.help, path
    for path in (("convert",), ("train",)):
        (targets,) = [o for o in _options(dict(COMMANDS)[path]) if "--to" in o.opts]
        assert "target" in targets.help.lower() and not targets.hidden, path
    deploy = dict(COMMANDS)[("deploy",)]
    assert {"--host", "--hosts"} <= {name for o in _options(deploy) for name in o.opts}
    rollback = dict(COMMANDS)[("rollback",)]
    assert "--version" in {name for o in _options(rollback) for name in o.opts}


def test_bench_threads_refuses_what_run_refuses(run_cli, tmp_path):
    for command in (("bench", tmp_path / "m.tflite"), ("run", tmp_path / "m.tflite", "--source", "synthetic"),
                    ("predict", tmp_path / "m.tflite", tmp_path / "a.jpg")):
        code, _, err = run_cli(*command, "--threads", "0")
        assert code == 2 and "--threads" in err, (command, err)
    code, _, err = run_cli("predict", tmp_path / "m.tflite", tmp_path / "a.jpg", "--hint", "fastest")
    assert code == 2 and "'fastest' is not one of 'latency', 'throughput'" in err
