"""The test configurations in .test/ (snakemake-workflows style): each dry-runs, the smallest runs.

Each ``.test/config/*.yaml`` is used as the README says, ``snakemake --directory .test
--configfile .test/config/<name>.yaml``, on a copy of ``.test/`` (its config and photos) so that
the checkout stays clean.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, dry_run_jobs

TEST_DIR = REPO / ".test"
CONFIGS = sorted((TEST_DIR / "config").glob("*.yaml"))
PHOTOS = sorted(p.stem for p in (TEST_DIR / "data").iterdir() if p.is_file())
# Jobs each configuration must plan, per photo (on top of the stages every run has).
EXPECTED = {
    "config": {"restore_global", "detect_and_enhance_faces", "blend_faces"},
    "scratch": {"detect_scratches", "triage_scratches", "restore_global", "blend_faces"},
}


def copy_of_test_dir(tmp_path: Path) -> Path:
    work = tmp_path / ".test"
    shutil.copytree(TEST_DIR / "config", work / "config")
    shutil.copytree(TEST_DIR / "data", work / "data")
    return work


def snakemake(work: Path, config: Path, *args: str, timeout: float = 300):
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(work), "--configfile", str(config), *args]
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    return subprocess.run(cmd, cwd=work.parent, capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_test_configs_are_there():
    assert {c.stem for c in CONFIGS} == set(EXPECTED)
    assert len(PHOTOS) == 2
    for config in CONFIGS:
        values = yaml.safe_load(config.read_text(encoding="utf-8"))
        assert values["backend"] == "classical" and values["input_dir"] == "data"
        assert not Path(values["output_dir"]).is_absolute()


@pytest.mark.workflow
def test_lint_is_clean(tmp_path):
    """`snakemake --lint` finds nothing to say about the workflow (README: Development)."""
    work = copy_of_test_dir(tmp_path)
    proc = snakemake(work, work / "config" / "config.yaml", "--lint")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Lints for" not in output, output[-4000:]
    assert "your workflow is in a good condition" in output


@pytest.mark.workflow
@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_test_config_dry_runs(tmp_path, config):
    work = copy_of_test_dir(tmp_path)
    proc = snakemake(work, work / "config" / config.name, "-n", "--cores", "2")
    assert proc.returncode == 0, proc.stderr[-4000:]
    counts = dry_run_jobs(proc)
    for rule in EXPECTED[config.stem]:
        assert counts.get(rule) == len(PHOTOS), (rule, counts)


@pytest.mark.workflow
def test_smallest_test_config_runs(tmp_path):
    """``.test/config/config.yaml`` end to end (about 15 s on 2 cores), then nothing left to do."""
    work = copy_of_test_dir(tmp_path)
    config = work / "config" / "config.yaml"
    proc = snakemake(work, config, "--cores", "2")
    assert proc.returncode == 0, proc.stderr[-8000:]
    results = work / "results"
    assert sorted(p.stem for p in (results / "final_output").glob("*.png")) == PHOTOS
    summary = json.loads((results / "run_summary.json").read_text(encoding="utf-8"))
    assert summary["counts"]["restored"] == len(PHOTOS) and summary["counts"]["failed"] == 0
    assert summary["photos"]["face"]["faces"] == 1  # the crop of old/a.png keeps its face
    again = snakemake(work, config, "-n", "--cores", "2")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
