"""Every registry is complete: formats, sources, bridges, targets, runtime backends, CLI
commands, stream feeds and sinks.

For each: every module of its package registers something (or is a helper an entry uses),
every class implementing the contract there is registered, every entry satisfies the contract,
and the registries agree with each other (every format is read by a source or run by a
backend, every target writes a registered format that some backend runs, every precision has
a verify gate). Adding a format, target, backend or command is then adding one module: these
tests say what it still lacks.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
import re
from pathlib import Path

import click
import pytest

from edgekit.bridges.base import BRIDGES, Bridge
from edgekit.formats import FORMATS, Format, for_suffix
from edgekit.manifest import LAYOUTS
from edgekit.registry import Registry
from edgekit.routes import FORMS
from edgekit.runtime.base import BACKENDS, Runner
from edgekit.sources.base import SOURCES, TORCH_MODULE, SourceModel
from edgekit.stream.sinks.base import SINKS, Sink
from edgekit.targets.base import TARGETS, Target

# camera inputs: edgekit.stream.feeds once renamed from edgekit.stream.sources
FEEDS_PACKAGE = "edgekit.stream.feeds" if importlib.util.find_spec("edgekit.stream.feeds") else "edgekit.stream.sources"
_feeds_base = importlib.import_module(f"{FEEDS_PACKAGE}.base")
FEEDS = next(v for v in vars(_feeds_base).values() if isinstance(v, Registry))
FEED = _feeds_base.Source if hasattr(_feeds_base, "Source") else _feeds_base.Feed

# registry -> (package its entries live in, the contract class; None: entries are Format records)
REGISTRIES = {
    "formats": (FORMATS, "edgekit.formats", None),
    "sources": (SOURCES, "edgekit.sources", SourceModel),
    "bridges": (BRIDGES, "edgekit.bridges", Bridge),
    "targets": (TARGETS, "edgekit.targets", Target),
    "backends": (BACKENDS, "edgekit.runtime", Runner),
    "feeds": (FEEDS, FEEDS_PACKAGE, FEED),
    "sinks": (SINKS, "edgekit.stream.sinks", Sink),
}
PACKAGES_OF_ENTRIES = ("formats", "sources", "bridges", "targets", "feeds", "sinks")  # runtime/ holds more


def modules_of(package: str) -> list[str]:
    root = importlib.import_module(package)
    return sorted(m.name for m in pkgutil.walk_packages(root.__path__, f"{package}.") if not m.ispkg)


def entry_module(item) -> str:
    """The module that defines a registered entry (a class, an instance, or a Format record)."""
    if isinstance(item, Format):
        return item.sniff.__module__
    return (item if inspect.isclass(item) else type(item)).__module__


def _source(module: str) -> str:
    return Path(importlib.import_module(module).__file__).read_text()


@pytest.mark.parametrize("name", PACKAGES_OF_ENTRIES)
def test_every_module_registers_something_or_serves_one_that_does(name):
    registry, package, _ = REGISTRIES[name]
    entries = {entry_module(item) for item in registry.values()}
    helpers = {m for m in modules_of(package) if m.rsplit(".", 1)[-1] != "base"} - entries
    for helper in sorted(helpers):
        short = helper.rsplit(".", 1)[-1]
        used = [e for e in entries if re.search(rf"(from \.{short} import|import {re.escape(helper)}\b|"
                                                rf"-m\", \"{re.escape(helper)}\"|\"{re.escape(helper)}\")",
                                                _source(e))]
        assert used, f"{helper} registers no {registry.kind} and no entry of {package} uses it"


@pytest.mark.parametrize("name", [n for n, (_, _, contract) in REGISTRIES.items() if contract is not None])
def test_every_implementation_of_the_contract_is_registered(name):
    """A class written for the registry but not registered (a forgotten decorator) is caught."""
    registry, package, contract = REGISTRIES[name]
    registered = {item if inspect.isclass(item) else type(item) for item in registry.values()}
    defined = set()
    for module_name in modules_of(package):
        if module_name.rsplit(".", 1)[-1] == "base":
            continue   # the contract and its abstract helpers (VideoCaptureSource)
        module = importlib.import_module(module_name)
        defined |= {obj for obj in vars(module).values()
                    if inspect.isclass(obj) and issubclass(obj, contract) and obj is not contract
                    and obj.__module__ == module_name}
    assert defined == registered, (f"defined, not registered: {sorted(c.__name__ for c in defined - registered)}; "
                                   f"registered from elsewhere: {sorted(c.__name__ for c in registered - defined)}")


def _reason_is_text_or_none(item) -> None:
    reason = item.unavailable_reason()
    assert reason is None or (isinstance(reason, str) and reason and "\n" not in reason), (item, reason)


# ------------------------------------------------------------------ each registry's contract

@pytest.mark.parametrize("name", FORMATS.names())
def test_format_records(name):
    fmt = FORMATS.get(name)
    assert fmt.name == name and fmt.title
    assert fmt.source or fmt.backend, f"{name}: neither a source reads it nor a backend runs it"
    for suffix in fmt.suffixes:
        assert suffix.startswith(".") and suffix == suffix.lower(), suffix
        assert for_suffix(suffix) is fmt, f"{suffix} belongs to {for_suffix(suffix)} and {fmt}"
    if fmt.source:
        assert SOURCES.get(name).__module__ == f"edgekit.sources.{fmt.source}"
    if fmt.backend:
        assert name in BACKENDS.get(fmt.backend).formats, f"{fmt.backend} does not run {name}"
    if fmt.probe:
        compile(fmt.probe, f"<{name} probe>", "exec")
    for hook in (fmt.sniff, fmt.companions, fmt.check, fmt.inspector, fmt.near_miss):
        assert hook is None or callable(hook)
    if fmt.inspector:
        assert fmt.check, f"{name} has an inspector but no structure check to run before it"


@pytest.mark.parametrize("name", SOURCES.names())
def test_source_kinds(name):
    cls = SOURCES.get(name)
    assert name in FORMATS or name == TORCH_MODULE, f"source '{name}' reads no registered format"
    assert cls.kind in FORMS and cls.layout in LAYOUTS
    assert callable(getattr(cls, "from_path", None)) or name == TORCH_MODULE
    # inputs() is shared: it fixes what declared_inputs() leaves free (batch, --input-size)
    for method in ("declared_inputs", "outputs", "infer"):
        assert getattr(cls, method) is not getattr(SourceModel, method), f"{cls.__name__} lacks {method}"


@pytest.mark.parametrize("name", BRIDGES.names())
def test_bridges(name):
    bridge = BRIDGES.get(name)
    assert bridge.name == name and bridge.src in FORMS and bridge.dst in FORMS and bridge.src != bridge.dst
    assert isinstance(bridge.tool, str) and isinstance(bridge.requires, tuple)
    assert type(bridge).convert is not Bridge.convert
    _reason_is_text_or_none(bridge)


@pytest.mark.parametrize("name", TARGETS.names())
def test_targets(name):
    from edgekit.verify import GATES

    target = TARGETS.get(name)
    assert target.name == name and target.format in FORMATS
    written = target.artifact_name("model", target.default_precision)
    assert for_suffix(Path(written).suffix) is FORMATS.get(target.format), written
    assert target.runtime in BACKENDS and target.format in BACKENDS.get(target.runtime).formats
    assert target.precisions and set(target.precisions) <= set(GATES), "every precision needs a verify gate"
    assert set(target.accepts) <= set(FORMS) and set(target.refusals) <= set(FORMS)
    assert type(target).convert is not Target.convert
    _reason_is_text_or_none(target)


@pytest.mark.parametrize("name", BACKENDS.names())
def test_backends(name):
    runner = BACKENDS.get(name)
    assert runner.backend == name and runner.formats and set(runner.formats) <= set(FORMATS.names())
    assert isinstance(runner.options, tuple) and isinstance(runner.requires, tuple)
    implements = any(getattr(runner, m) is not getattr(Runner, m) for m in ("_infer", "_run"))
    assert implements, f"{runner.__name__} implements neither _infer nor _load/_run/_results"
    _reason_is_text_or_none(runner)


@pytest.mark.parametrize("name", FEEDS.names())
def test_feeds(name):
    feed = FEEDS.get(name)
    assert isinstance(feed.kind, str) and isinstance(feed.live, bool)
    assert inspect.ismethod(feed.claims), f"{feed.__name__}.claims must be a classmethod"
    assert not feed.claims("definitely-not-a-source-%%")
    for method in ("open", "read"):
        assert getattr(feed, method) is not getattr(FEED, method), f"{feed.__name__} lacks {method}"


@pytest.mark.parametrize("name", SINKS.names())
def test_sinks(name):
    sink = SINKS.get(name)
    assert sink.name == name and sink.write is not Sink.write


# ------------------------------------------------------------------ CLI commands

def _commands():
    from edgekit.cli import LAZY_COMMANDS, load_command

    return {name: load_command(name) for name in LAZY_COMMANDS}


def test_every_lazy_command_imports():
    from edgekit.cli import LAZY_COMMANDS

    for name, command in _commands().items():
        assert isinstance(command, click.Command) and command.name == name, (name, command)
    modules = {target.split(":")[0] for target in LAZY_COMMANDS.values()}
    package = modules_of("edgekit.commands")
    assert set(package) - {"edgekit.commands.common"} == modules, "a commands/ module no command comes from"


def _all_commands():
    for name, command in _commands().items():
        yield name, command
        if isinstance(command, click.Group):
            for sub_name, sub in command.commands.items():
                yield f"{name} {sub_name}", sub


@pytest.mark.parametrize("name", [n for n, c in _all_commands() if not isinstance(c, click.Group)])
def test_every_command_takes_json(name):
    """Every command offers --json (tests/test_cli_options.py checks help texts and examples)."""
    command = dict(_all_commands())[name]
    assert "--json" in {opt for param in command.params for opt in getattr(param, "opts", [])}, name


def test_a_command_that_fails_to_import_is_an_error_not_a_hidden_command(run_cli, monkeypatch):
    from edgekit import cli

    monkeypatch.setitem(cli.LAZY_COMMANDS, "broken", "edgekit.commands.no_such_module:broken")
    for args in (["broken", "--help"], ["--help"], ["broken"]):
        code, out, err = run_cli(*args)
        assert code == 1, (args, code, out, err)
        assert err.strip().count("\n") == 0 and "Traceback" not in err
        assert re.search(r"error: command 'broken' could not be loaded from edgekit\.commands\.no_such_module "
                         r"\(ModuleNotFoundError: .*\)\. this edgekit installation is broken", err), err
