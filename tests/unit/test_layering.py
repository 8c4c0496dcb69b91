"""Test-only helpers stay out of the production import path."""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

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
            "oldphoto.restore", "oldphoto.nets", "oldphoto.jobs", "oldphoto.cli",
            "oldphoto.dag", "oldphoto.summary", "oldphoto.tasks", "oldphoto.job"} <= set(modules)
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
