"""The architecture code knows no loader: ``oldphoto.nets`` imports nothing from the package
but itself (no ``oldphoto.checkpoints``, nothing above it), as in BasicSR and spandrel.

Every module of ``oldphoto.nets`` is imported in a fresh interpreter and the ``oldphoto`` modules
that loaded are read from ``sys.modules`` (the probe of ``tests/unit/test_layering.py``): what
all of them load together is more than what any one of them loads.
"""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import oldphoto
import oldphoto.nets

SRC = Path(oldphoto.__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(SRC)}

PROBE = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] == "oldphoto")))
"""


def loaded_oldphoto_modules(*modules: str) -> list[str]:
    """The ``oldphoto`` modules that importing ``modules`` in a new interpreter loads."""
    proc = subprocess.run([sys.executable, "-c", PROBE, *modules], capture_output=True,
                          text=True, timeout=300, env=ENV, check=True)
    return json.loads(proc.stdout)


def nets_modules() -> list[str]:
    return ["oldphoto.nets"] + [info.name for info in
                                pkgutil.walk_packages(oldphoto.nets.__path__, "oldphoto.nets.")]


def test_nets_imports_only_itself():
    modules = nets_modules()
    # every architecture family is among those checked
    assert {"oldphoto.nets.unet_arch", "oldphoto.nets.vae_arch", "oldphoto.nets.mapping_arch",
            "oldphoto.nets.nonlocal_arch", "oldphoto.nets.patch_attention_arch",
            "oldphoto.nets.spade_arch", "oldphoto.nets.arch_util"} <= set(modules)
    loaded = loaded_oldphoto_modules(*modules)
    assert set(modules) <= set(loaded)
    assert [m for m in loaded if m != "oldphoto" and not m.startswith("oldphoto.nets")] == []


def test_the_probe_sees_the_registry_join_nets_and_checkpoints():
    """The check above would notice: the registry loads both packages, so the probe lists both."""
    found = loaded_oldphoto_modules("oldphoto.checkpoints.registry")
    assert {"oldphoto.checkpoints.files", "oldphoto.checkpoints.registry",
            "oldphoto.nets", "oldphoto.nets.unet_arch"} <= set(found)
