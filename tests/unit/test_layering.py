"""The package's import layering: test-only helpers stay out of the production import path, the
import graph has no circle, and no module imports from a layer above its own.

The layers, lowest first (docs/design.md, "Module map"; a module belongs to the layer of the
longest name in :data:`LAYERS` that it starts with):

* ``core`` — vocabulary and plain files: errors, spellings, the photo's mode, decoding and atomic
  writes, the input folder, the photo sheet, locks, the console;
* ``nets`` — the network architectures;
* ``checkpoints`` — the official files, their manifests and the verified cache;
* ``library`` — the stages as pure functions and their parts (restore, faces, blend, classical,
  archival, report views, devices), the output layout;
* ``worker`` — the transport of the warm workers;
* ``jobs`` — one job: the protocol of its command line, its runtime, the task functions;
* ``plan`` — one run: the run plan, what it requires, its summary, the SLURM array;
* ``interface`` — the commands people run: ``oldphoto``, ``oldphoto review``;
* ``testing`` — test-only helpers (nothing above imports them).
"""

from __future__ import annotations

import ast
import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import oldphoto

SRC = Path(oldphoto.__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(SRC)}

PROBE = """
import importlib, json, sys
found = {}
for name in sys.argv[1:]:
    importlib.import_module(name)
    found[name] = sorted(m for m in sys.modules if m.split(".")[:2] == ["oldphoto", "testing"])
print(json.dumps(found))
"""


def production_modules() -> list[str]:
    """Every module of the oldphoto package outside ``oldphoto.testing``."""
    names = ["oldphoto"]
    for info in pkgutil.walk_packages(oldphoto.__path__, "oldphoto."):
        if info.name.split(".")[:2] != ["oldphoto", "testing"]:
            names.append(info.name)
    return names


def test_production_modules_never_import_the_testing_package():
    modules = production_modules()
    # the modules this layering exists for must be among those checked
    assert {"oldphoto.checkpoints", "oldphoto.checkpoints.cache", "oldphoto.stages",
            "oldphoto.restore", "oldphoto.nets", "oldphoto.jobs.runtime", "oldphoto.cli",
            "oldphoto.plan.run", "oldphoto.summary", "oldphoto.jobs.tasks",
            "oldphoto.jobs.entry"} <= set(modules)
    proc = subprocess.run([sys.executable, "-c", PROBE, *modules], capture_output=True,
                          text=True, timeout=300, env=ENV, check=True)
    found = json.loads(proc.stdout)
    assert list(found) == modules
    offenders = {name: testing for name, testing in found.items() if testing}
    assert not offenders, f"production modules import oldphoto.testing: {offenders}"


def test_the_probe_sees_an_import_of_the_testing_package():
    """The check above would notice: importing a testing module shows up in sys.modules."""
    proc = subprocess.run([sys.executable, "-c", PROBE, "oldphoto.testing.degrade"],
                          capture_output=True, text=True, timeout=300,
                          env=ENV, check=True)
    assert json.loads(proc.stdout) == {
        "oldphoto.testing.degrade": ["oldphoto.testing", "oldphoto.testing.degrade"]}


# ---------------------------------------------------------------------------------------------
# Layers and circles

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("core", ("oldphoto", "oldphoto.errors", "oldphoto.spellings", "oldphoto.hashing",
              "oldphoto.mode", "oldphoto.decode", "oldphoto.atomic", "oldphoto.inputs",
              "oldphoto.sheet", "oldphoto.locks", "oldphoto.worker.procs", "oldphoto.console",
              "oldphoto.progress", "oldphoto.scheduling", "oldphoto.checkout")),
    ("nets", ("oldphoto.nets",)),
    ("checkpoints", ("oldphoto.checkpoints",)),
    ("library", ("oldphoto.tensors", "oldphoto.tiling", "oldphoto.restore", "oldphoto.scratch",
                 "oldphoto.faces", "oldphoto.enhance", "oldphoto.blend", "oldphoto.classical",
                 "oldphoto.triage", "oldphoto.devices", "oldphoto.archival", "oldphoto.views",
                 "oldphoto.report",
                 "oldphoto.layout", "oldphoto.stages")),
    ("worker", ("oldphoto.worker",)),
    ("jobs", ("oldphoto.jobs",)),
    ("plan", ("oldphoto.plan", "oldphoto.requirements", "oldphoto.summary", "oldphoto.slurm")),
    ("interface", ("oldphoto.cli", "oldphoto.review")),
    ("testing", ("oldphoto.testing",)),
]
"""The layers, lowest first: a module may import its own layer and those below."""

KNOWN_UPWARD: set[tuple[str, str]] = set()
"""Imports from a lower layer to a higher one that are allowed: none (the network registry
lives beside the checkpoint table, so ``nets`` imports nothing above it)."""

PACKAGE = Path(oldphoto.__file__).resolve().parent


def module_files() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__``)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports_of(name: str, path: Path, modules: set[str]) -> set[str]:
    """The package's modules that ``name`` imports anywhere in its file (module level, inside
    functions, under TYPE_CHECKING): ``from a import b`` counts as importing ``a.b`` when that
    is a module, else ``a``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            submodules = {f"{source}.{alias.name}" for alias in node.names} & modules
            found |= submodules or {source}
    return {target for target in found if target in modules and target != name}


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    return {name: imports_of(name, path, set(files)) for name, path in files.items()}


def layer_of(module: str) -> int:
    best, layer = -1, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, layer = len(prefix), index
    return layer


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{source} ({LAYERS[layer_of(source)][0]}) imports {target} "
                  f"({LAYERS[layer_of(target)][0]})"
                  for source, targets in graph.items() for target in targets
                  if layer_of(target) > layer_of(source)
                  and (source, target) not in KNOWN_UPWARD)


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_module_has_a_layer():
    assert [name for name in module_files() if layer_of(name) < 0] == []


def test_the_import_graph_has_no_circle():
    assert circles(import_graph()) == []


def test_no_module_imports_from_a_layer_above_its_own():
    graph = import_graph()
    assert upward_imports(graph) == []
    for source, target in KNOWN_UPWARD:  # an exception that no longer applies goes too
        assert target in graph.get(source, set()), (source, target)


def test_the_checks_see_function_level_imports_circles_and_upward_imports():
    graph = import_graph()
    # a function-level import (the entry point runs a task in its own process)
    assert "oldphoto.jobs.tasks" in graph["oldphoto.jobs.entry"]
    # `from oldphoto.jobs import protocol` is an import of the module oldphoto.jobs.protocol
    assert "oldphoto.jobs.protocol" in graph["oldphoto.plan.run"]
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    wrong = dict(graph, **{"oldphoto.stages": graph["oldphoto.stages"] | {"oldphoto.plan.run"}})
    assert upward_imports(wrong) == [
        "oldphoto.stages (library) imports oldphoto.plan.run (plan)"]
    assert [LAYERS[layer_of(m)][0] for m in ("oldphoto", "oldphoto.worker.procs",
                                            "oldphoto.worker.client", "oldphoto.review.app")] \
        == ["core", "core", "worker", "interface"]


@pytest.mark.parametrize("module", ["oldphoto.jobs.entry", "oldphoto.jobs.protocol"])
def test_the_job_entry_point_depends_on_no_library_module(module):
    """The entry point of every job stays light: below it only the core and the transport."""
    graph = import_graph()
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        if name in seen or name == "oldphoto.jobs.tasks":  # run only with workers off
            continue
        seen.add(name)
        todo += graph[name]
    assert {LAYERS[layer_of(m)][0] for m in seen} <= {"core", "worker", "jobs"}, sorted(seen)
