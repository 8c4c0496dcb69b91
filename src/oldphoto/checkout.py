"""The checkout a command runs: where the Snakefile and the workflow files are.

The ``oldphoto`` command (:mod:`oldphoto.cli`) and the review page's reruns
(:mod:`oldphoto.review.main`) run this checkout's workflow; a wheel holds only the package, so
both look for the checkout here.
"""

from __future__ import annotations

import os
from pathlib import Path


class UsageError(Exception):
    """A command line that cannot be run; the message says what to change."""


def workflow_root() -> Path:
    """The checkout holding the Snakefile: ``$OLDPHOTO_WORKFLOW`` or the editable install's.

    ``oldphoto`` runs the workflow files of the repository (Snakefile, workflow/, config/), which
    a wheel does not contain; with an editable install (scripts/install.sh, ``pip install -e``)
    they sit two levels above the package: ``<repo>/src/oldphoto``.
    """
    override = os.environ.get("OLDPHOTO_WORKFLOW")
    if override:
        root = Path(override).expanduser().resolve()
        if not (root / "Snakefile").is_file():
            raise UsageError(f"OLDPHOTO_WORKFLOW={override}: no Snakefile there; point it at an "
                             "oldphoto checkout")
        return root
    import oldphoto

    package = Path(oldphoto.__file__).resolve().parent
    root = package.parents[1]
    if package.parent.name == "src" and (root / "Snakefile").is_file() \
            and (root / "workflow" / "rules" / "common.smk").is_file():
        return root
    raise UsageError(
        f"the oldphoto package at {package} is not inside an oldphoto checkout (no "
        f"{root / 'Snakefile'}), so the workflow files cannot be found. Install from a clone "
        "in editable mode (bash scripts/install.sh, or pip install -e <clone>), or set "
        "OLDPHOTO_WORKFLOW=<clone>."
    )
