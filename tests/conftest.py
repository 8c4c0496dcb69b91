"""Shared helpers for tests that run the real Snakemake workflow."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "resources" / "samples"

# Final outputs state when they were made (their XMP History event's "when"); a fixed
# SOURCE_DATE_EPOCH makes reruns byte-identical, which the resume tests compare
# (docs/archival.md#identity-xmp-media-management).  Every run the tests start inherits it.
os.environ.setdefault("SOURCE_DATE_EPOCH", "1700000000")


def workflow_config(tmp: Path, **overrides) -> dict:
    """A complete config for a test run whose every path lives under ``tmp``."""
    config = {
        "input_dir": str(tmp / "in"),
        "output_dir": str(tmp / "out"),
        "backend": "classical",
        "checkpoints_dir": str(tmp / "checkpoints"),
        "cache_dir": str(tmp / "cache"),
        "device": "cpu",
        "gpu_per_job": 0,
        "threads": 1,
    }
    config.update(overrides)
    return config


def snakemake_invocation(workdir: Path, config: dict, *args: str,
                         env: dict | None = None) -> tuple[list[str], dict]:
    """The command and environment that run the repository's Snakefile in ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    configfile = workdir / "test-config.yaml"
    configfile.write_text(yaml.safe_dump(config), encoding="utf-8")
    cmd = [
        sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir), "--configfile", str(configfile),
        "--cores", "2", "--keep-going", "--rerun-incomplete", "--latency-wait", "5",
        *args,
    ]
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(REPO / "src")
    if env:
        full_env.update(env)
    return cmd, full_env


def run_snakemake(workdir: Path, config: dict, *args: str, check: bool = True,
                  timeout: float = 900, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the repository's Snakefile in ``workdir`` with ``config``; returns the process."""
    cmd, full_env = snakemake_invocation(workdir, config, *args, env=env)
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout,
                          env=full_env)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({proc.returncode})\nSTDOUT:\n{proc.stdout[-4000:]}\n"
            f"STDERR:\n{proc.stderr[-8000:]}"
        )
    return proc


def make_tiny_photos(folder: Path) -> dict[str, Path]:
    """Three small photos cut from the bundled samples: one face, one face + scratches, no face."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    made = {}
    with Image.open(SAMPLES / "old" / "a.png") as im:  # face rect (74,114,254,293)
        crop = im.convert("RGB").crop((24, 64, 304 - 6, 344))
        made["face"] = folder / "face.png"
        crop.save(made["face"])
    with Image.open(SAMPLES / "old" / "b.png") as im:  # no face
        small = im.convert("RGB").resize((160, 120), Image.BILINEAR)
        made["noface"] = folder / "no face.jpg"
        small.save(made["noface"], quality=92)
    with Image.open(SAMPLES / "old_w_scratch" / "c.png") as im:
        small = im.convert("RGB").resize((128, 168), Image.BILINEAR)
        made["scratched"] = folder / "scratched.png"
        small.save(made["scratched"])
    return made


def dry_run_jobs(proc: subprocess.CompletedProcess) -> dict[str, int]:
    """Job counts per rule from a dry run's summary table."""
    counts: dict[str, int] = {}
    text = proc.stdout + proc.stderr
    in_table = False
    for line in text.splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            in_table = True
            continue
        if in_table:
            if len(parts) == 2 and parts[1].isdigit():
                if parts[0] != "total":
                    counts[parts[0]] = int(parts[1])
            elif parts and not set(parts[0]) <= {"-"}:
                in_table = False
    return counts


def slurm_unavailable() -> str | None:
    """Why the SLURM tests cannot run here (no cluster answers, no executor plugin), or None."""
    try:
        proc = subprocess.run(["sinfo", "-h", "-o", "%a"], capture_output=True, text=True,
                              timeout=20)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"sinfo does not answer ({err}); start a cluster with scripts/cluster/slurm-up.sh"
    if proc.returncode != 0 or "up" not in proc.stdout.split():
        return f"sinfo does not answer: {proc.stderr.strip() or proc.stdout.strip()}"
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "snakemake-executor-plugin-slurm is not installed (pip install '.[slurm]')"
    return None


@pytest.fixture
def tiny_inputs(tmp_path: Path) -> Path:
    make_tiny_photos(tmp_path / "in")
    return tmp_path


@pytest.fixture(scope="session")
def recipe_checkpoints(tmp_path_factory) -> Path:
    """All nine official checkpoint files with recipe weights, in the official layout (once)."""
    from oldphoto.testing.recipe import write_recipe_checkpoints

    folder = tmp_path_factory.mktemp("recipe-checkpoints")
    write_recipe_checkpoints(folder)
    return folder


def embedded(report_html: str, name: str):
    """A JSON variable of the report page (``<script id="results"> var results = {...};``)."""
    match = re.search(rf'<script id="{name}">\s*var {name} = (.*?);\s*</script>', report_html,
                      re.S)
    assert match, name
    return json.loads(match.group(1))
