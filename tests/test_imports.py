"""The import graph of edgekit/: no cycles (imports inside functions count: they only hide a
cycle until the function runs), and every module imports on its own, without a framework.

The graph is read with `ast` from the source, so a cycle is found even where no test runs the
function that closes it. An edge is "module A names module B in an import statement"; importing
a submodule also runs its package's __init__, which is left out of the graph (a package that
re-exports its submodules would otherwise be a cycle with each of them).
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import edgekit

ROOT = Path(edgekit.__file__).resolve().parent
HEAVY = ("tensorflow", "torch", "openvino", "coremltools", "onnx", "onnxruntime", "cv2", "nncf", "keras",
         "matplotlib", "onnx2tf", "tf2onnx", "skimage")


def module_files() -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package __init__), for every module under edgekit/."""
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def imports_of(name: str, path: Path, is_package: bool, known: set[str]) -> set[str]:
    """Modules of KNOWN that NAME imports anywhere in its source (top level or in functions)."""
    here = name.split(".") if is_package else name.split(".")[:-1]
    wanted: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            wanted.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(here[: len(here) - node.level + 1] + ([node.module] if node.module else [])) \
                if node.level else node.module
            wanted.add(base)
            wanted.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    resolved = set()
    for target in wanted:
        while target and target not in known:   # `from .base import X`: X is a name in .base
            target = target.rpartition(".")[0]
        if target and target != name:
            resolved.add(target)
    return resolved


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    return {name: imports_of(name, path, is_package, set(files)) for name, (path, is_package) in files.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Cycles, each a path of modules: the strongly connected groups (Tarjan), and in each the
    shortest cycle through every member."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    cycles: list[list[str]] = []
    for group in groups:   # the shortest cycle through each member, each cycle once
        for member in group:
            cycle = _cycle_through(member, set(group), graph)
            turn = cycle.index(min(cycle))
            cycle = cycle[turn:] + cycle[:turn]
            if cycle not in cycles:
                cycles.append(cycle)
    return cycles


def _cycle_through(start: str, members: set[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest path from START back to itself through MEMBERS (breadth first)."""
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node] & members):
                if nxt == start:
                    return paths[node]
                if nxt not in paths:
                    paths[nxt] = paths[node] + [nxt]
                    following.append(nxt)
        frontier = following
    return [start]


def test_cycle_finder_reports_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_graph_sees_imports_inside_functions_and_relative_imports():
    graph = import_graph()
    assert "edgekit.runtime.probe" not in graph["edgekit.runtime.base"]   # run with -m, never imported
    assert "edgekit.formats" in graph["edgekit.runtime.base"]
    assert "edgekit.runtime.base" in graph["edgekit.runtime.probe"]       # inside main()


def test_no_import_cycles():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join([*c, c[0]]) for c in cycles)


def test_every_module_imports_alone_without_a_framework():
    """`python -c "import edgekit.X"` for every X: each import starts with no edgekit module
    loaded (third-party modules stay cached, which is what makes one process enough), and no
    framework is pulled in at import time (they load inside the functions that need them)."""
    names = sorted(n for n in module_files() if not n.endswith("__main__"))   # __main__ runs the CLI
    script = (
        "import importlib, json, sys, traceback\n"
        f"heavy = {HEAVY!r}\n"
        "problems = {}\n"
        "for name in json.loads(sys.argv[1]):\n"
        "    for loaded in [m for m in sys.modules if m == 'edgekit' or m.startswith('edgekit.')]:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        problems[name] = traceback.format_exception_only(type(exc), exc)[-1].strip()\n"
        "        continue\n"
        "    pulled = [h for h in heavy if h in sys.modules]\n"
        "    if pulled:\n"
        "        problems[name] = 'imports ' + ', '.join(pulled) + ' at import time'\n"
        "        break\n"
        "print(json.dumps(problems))\n")
    done = subprocess.run([sys.executable, "-c", script, json.dumps(names)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    problems = json.loads(done.stdout.strip().splitlines()[-1])
    assert not problems, "\n".join(f"{name}: {why}" for name, why in problems.items())
