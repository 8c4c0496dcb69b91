"""A workstation run with two (fake) GPUs: `snakemake --cores 4 --resources gpu=2`.

Snakemake's `gpu` resource caps the network jobs at two at a time; each job takes a GPU slot itself
(oldphoto.devices) and its rule log says which.  The slot trace (OLDPHOTO_GPU_SLOT_TRACE, written
by the jobs when they take and release their slot) shows when each job held its slot.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from conftest import make_tiny_photos, run_snakemake, workflow_config
from oldphoto.jobs.protocol import NETWORK_TASKS as NETWORK_RULES

pytestmark = pytest.mark.workflow

DEVICE_LINE = re.compile(
    r"device: fake GPU slot (\d+) \(CUDA_VISIBLE_DEVICES=(\d+)\), computing on cpu, 1 thread$")


def test_two_gpu_slots_shared_by_network_jobs(tmp_path):
    made = make_tiny_photos(tmp_path / "in")
    shutil.copy(made["scratched"], tmp_path / "in" / "scratched copy.png")
    config = workflow_config(tmp_path, device="auto", gpu_per_job=1, jobs_per_gpu=1)
    trace = tmp_path / "slots.jsonl"
    env = {"OLDPHOTO_FAKE_GPUS": "2", "OLDPHOTO_GPU_LOCK_DIR": str(tmp_path / "locks"),
           "OLDPHOTO_GPU_SLOT_TRACE": str(trace),
           # a workstation run whatever the test runner's environment ("" counts as unset)
           "CUDA_VISIBLE_DEVICES": "", "SLURM_JOB_ID": ""}
    run_snakemake(tmp_path / "work", config, "--cores", "4", "--resources", "gpu=2", env=env)

    # Every network job's log names its slot (and nothing else ran on a GPU).
    logs = Path(config["output_dir"]) / "logs"
    slots_in_logs = {}
    for rule in NETWORK_RULES:
        for log in sorted((logs / rule).glob("*.log")):
            lines = [m for m in map(DEVICE_LINE.search, log.read_text().splitlines()) if m]
            assert len(lines) == 1, (log, log.read_text())
            slot, visible = lines[0].groups()
            assert slot == visible and slot in {"0", "1"}, log
            slots_in_logs[f"{rule}/{log.stem}"] = int(slot)
    n_photos = 4
    assert sum(key.startswith("restore_global/") for key in slots_in_logs) == n_photos
    assert len(slots_in_logs) > n_photos  # enhance_face jobs too
    for rule in ("blend_faces",):
        for log in (logs / rule).glob("*.log"):
            assert "device:" not in log.read_text(), log

    # Slot holding intervals from the trace: <= 2 holders at once, never one slot twice.
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    held: dict[int, dict] = {}
    intervals = []
    for event in sorted(events, key=lambda e: (e["time"], e["event"] == "acquire")):
        if event["event"] == "acquire":
            held[event["pid"]] = event
        else:
            start = held.pop(event["pid"])
            intervals.append((start["time"], event["time"], start["gpu"]))
    assert not held and len(intervals) == len(slots_in_logs)
    assert sorted(gpu for *_, gpu in intervals) == sorted(slots_in_logs.values())
    max_concurrent, overlapping_pairs = 0, 0
    for i, (start, end, gpu) in enumerate(intervals):
        others = [(s, e, g) for j, (s, e, g) in enumerate(intervals)
                  if j != i and s < end and start < e]
        for _, _, other_gpu in others:
            assert other_gpu != gpu, "two jobs held the same GPU slot at once"
        overlapping_pairs += len(others)
        at_start = 1 + sum(1 for s, e, _ in others if s <= start < e)
        max_concurrent = max(max_concurrent, at_start)
    assert max_concurrent <= 2
    # Snakemake started two network jobs side by side at least once, and they got both slots.
    assert overlapping_pairs > 0 and set(slots_in_logs.values()) == {0, 1}
