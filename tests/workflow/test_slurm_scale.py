"""A 200-photo collection through the real SLURM cluster (scripts/cluster/slurm-up.sh): one
``sbatch --array`` with a task per shard of at most 50 photos (``oldphoto --slurm 50``).

Asserted from Slurm's own records (sacct): one job, at most one array task per 50 photos, every
task COMPLETED but the one whose shard holds the broken photo (FAILED); from the merged run
summary: every good photo restored, the broken one failed with its reason; and every final output
byte-identical to a local run of the same photos.  Skipped without a cluster, except under
OLDPHOTO_REQUIRE_SLURM=1 (.ci/run), where that is a failure.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import REPO
from conftest import slurm_unavailable as _unavailable

pytestmark = [pytest.mark.slurm, pytest.mark.workflow]

N_PHOTOS = 200
PER_JOB = 50


@pytest.fixture(scope="module")
def cluster():
    reason = _unavailable()
    if reason:
        if os.environ.get("OLDPHOTO_REQUIRE_SLURM") == "1":
            pytest.fail(f"SLURM required (OLDPHOTO_REQUIRE_SLURM=1): {reason}")
        pytest.skip(reason)


def make_collection(folder: Path) -> None:
    """200 small aged scans (deterministic) and one file that is not an image."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(7)
    ys, xs = np.mgrid[0:72, 0:96]
    for i in range(N_PHOTOS):
        base = 120 + 60 * np.sin(xs / (7 + i % 5)) * np.cos(ys / (9 + i % 3))
        faded = 0.6 * base + 60 + rng.normal(0, 6, base.shape)
        rgb = np.clip(np.stack([faded * 1.05, faded, faded * 0.85], axis=2), 0, 255)
        Image.fromarray(rgb.astype(np.uint8)).save(folder / f"scan {i:04d}.png")
    (folder / "broken.png").write_bytes(b"not a png at all")


def oldphoto(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    return subprocess.run([sys.executable, "-m", "oldphoto.cli", *args], capture_output=True,
                          text=True, timeout=1800, env=env)


def finals(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "final_output").glob("*.png"))}


def sacct(job_id: str) -> dict[str, str]:
    proc = subprocess.run(["sacct", "-n", "-P", "-X", "-j", job_id, "-o", "JobID,State"],
                          capture_output=True, text=True, check=True)
    return dict(line.split("|")[:2] for line in proc.stdout.split())


def test_two_hundred_photos_in_one_array_of_shards(cluster, tmp_path):
    make_collection(tmp_path / "in")
    common = ["--input_folder", str(tmp_path / "in"), "--backend", "classical"]

    slurm_out = tmp_path / "slurm"
    proc = oldphoto(*common, "--output_folder", str(slurm_out), "--slurm", str(PER_JOB),
                    "--slurm-cpus", "1", "--slurm-mem", "2000")
    assert proc.returncode == 1, proc.stdout + proc.stderr  # the broken photo
    job_id = next(line.split()[3] for line in proc.stdout.splitlines()
                  if line.startswith("oldphoto: SLURM job "))

    # one sbatch: one job whose array has a task per shard of at most 50 photos
    tasks = sacct(job_id)
    shards = math.ceil((N_PHOTOS + 1) / PER_JOB)
    assert sorted(tasks) == sorted(f"{job_id}_{i}" for i in range(1, shards + 1)), tasks
    summary = json.loads((slurm_out / "run_summary.json").read_text())
    assert summary["counts"]["restored"] == N_PHOTOS, summary["counts"]
    assert summary["counts"]["failed"] == 1
    broken = summary["photos"]["broken"]
    assert broken["status"] == "failed" and "bad image" in broken["reasons"][0], broken
    failed_shards = [i for i, state in summary["shards"].items() if state != "ok"]
    assert len(failed_shards) == 1, summary["shards"]
    # the broken photo's task alone ended FAILED; the others COMPLETED
    states = {task.split("_")[1]: state for task, state in tasks.items()}
    assert states.pop(failed_shards[0]) == "FAILED"
    assert set(states.values()) == {"COMPLETED"}, states
    # each task ran its shard with warm workers: dlib's models were loaded once per worker
    logs = [p.read_text() for p in (slurm_out / "logs" / "detect_and_enhance_faces").glob("*.log")]
    warm = sum("face models already loaded" in text for text in logs)
    assert warm >= N_PHOTOS - 2 * shards, (warm, len(logs))

    # byte-identical to a local run of the same photos
    local_out = tmp_path / "local"
    local = oldphoto(*common, "--output_folder", str(local_out), "--GPU", "-1", "--cores", "2")
    assert local.returncode == 1, local.stdout + local.stderr
    expected = finals(local_out)
    assert len(expected) == N_PHOTOS
    assert finals(slurm_out) == expected
