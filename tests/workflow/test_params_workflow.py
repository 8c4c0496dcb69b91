"""A setting reaches only what it changes (the real workflow, dry runs after a finished run).

Scheduling settings (device, threads, GPUs, memory budget, workers) are nobody's params: after a
finished run, changing them leaves nothing to do.  ``face_blending`` reruns stage 4 and the
previews that show its result; ``with_scratch`` reruns stage 1 onwards.
"""

from __future__ import annotations

import pytest

from conftest import dry_run_jobs, make_tiny_photos, run_snakemake, workflow_config

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("params")
    make_tiny_photos(tmp / "in")
    config = workflow_config(tmp)
    run_snakemake(tmp / "work", config)
    return tmp, config


def planned(tmp, config, **changes):
    proc = run_snakemake(tmp / "work", dict(config, **changes), "-n", "--quiet", "rules")
    return dry_run_jobs(proc), proc


@pytest.mark.parametrize("changes", [
    {"jobs_per_gpu": 3},
    {"threads": 2},
    {"device": "auto", "gpu_per_job": 1},
    {"memory_budget_mb": 6000},
    {"max_image_pixels": 50_000_000},
    {"workers": False, "worker_idle_seconds": 5},
], ids=lambda c: ",".join(c))
def test_scheduling_settings_rerun_nothing(finished, changes):
    tmp, config = finished
    counts, proc = planned(tmp, config, **changes)
    assert counts == {}, counts
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_face_blending_reruns_stage_4_and_its_previews_only(finished):
    tmp, config = finished
    counts, _ = planned(tmp, config, face_blending="adaptive")
    assert counts == {"blend_faces": 3, "all": 1}, counts  # its job makes the previews too


def test_scratch_mode_reruns_from_stage_1(finished):
    tmp, config = finished
    counts, _ = planned(tmp, config, with_scratch=True)
    assert counts["detect_scratches"] == 3 and counts["restore_global"] == 3, counts
    assert counts["blend_faces"] == 3, counts
