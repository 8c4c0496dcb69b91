"""The DAG grows linearly: a fixed number of jobs per photo, whatever the number of photos.

At archive scale Snakemake's own cost is per job (bench/results/scale.md), so the number of jobs
a photo costs is part of the design: three by default (stage 1; stages 2+3; stage 4 with the
report views and the sidecar), one more for scratch detection, one more for its triage.  Dry
runs on empty placeholders (nothing is decoded in a dry run).
"""

from __future__ import annotations

import pytest

from conftest import dry_run_jobs, run_snakemake, workflow_config

pytestmark = pytest.mark.workflow

PER_PHOTO = {
    "default": ({}, {"restore_global", "detect_and_enhance_faces", "blend_faces"}),
    "scratch": ({"with_scratch": True},
                {"detect_scratches", "restore_global", "detect_and_enhance_faces", "blend_faces"}),
    "auto": ({"with_scratch": "auto"},
             {"detect_scratches", "triage_scratches", "restore_global",
              "detect_and_enhance_faces", "blend_faces"}),
}


@pytest.mark.parametrize("mode", sorted(PER_PHOTO))
def test_jobs_per_photo_are_constant(tmp_path, mode):
    overrides, rules = PER_PHOTO[mode]
    for count in (1, 12, 40):
        tmp = tmp_path / str(count)
        (tmp / "in").mkdir(parents=True)
        for index in range(count):
            (tmp / "in" / f"scan {index:04d}.png").write_bytes(b"")
        proc = run_snakemake(tmp / "work", workflow_config(tmp, **overrides), "-n")
        assert dry_run_jobs(proc) == {**{rule: count for rule in rules}, "all": 1}, (mode, count)
