"""Interrupted runs resume to exactly the uninterrupted result, and no partial file is ever
left under a final name.

One output folder goes through every kind of interruption in turn (so the suite pays for one
run's work, not one per scenario):

1. one job's interpreter is SIGKILLed while it is writing a PNG (the process of the run that
   holds a non-empty ``.tmp-*`` file open); Snakemake (without ``--keep-going``) lets the
   running jobs end and stops, and the summary names the killed job;
2. the whole run (Snakemake and its jobs: the process group) is SIGKILLed at a seeded random
   moment after its first job started, three times in a row, each time resumed with
   ``--unlock`` and a rerun (``--rerun-incomplete``, as in the test helper);
3. a last rerun completes.

After every kill every PNG under a final name decodes fully; after the completed rerun the
outputs are byte-identical to an uninterrupted run and no ``.tmp-*`` file remains.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import make_tiny_photos, run_snakemake, snakemake_invocation, workflow_config

pytestmark = pytest.mark.workflow

SEED = 20240611
STAGES = ("stage_1_restore_output", "stage_2_detection_output", "stage_3_face_output",
          "final_output")
BIG = "big noisy.png"  # 640x480 and grainy: each of its PNG writes takes a visible while


def make_photos(folder: Path) -> None:
    """A small photo with a face (the face chain runs) and a larger grainy one."""
    make_tiny_photos(folder)
    for name in ("no face.jpg", "scratched.png"):
        (folder / name).unlink()
    width, height = 640, 480
    y, x = np.mgrid[0:height, 0:width]
    ramp = np.dstack([x * 255 // width, y * 255 // height, (x + y) * 255 // (width + height)])
    grain = np.random.default_rng(SEED).normal(0, 2, (height, width, 3))
    Image.fromarray(np.clip(ramp + grain, 0, 255).astype(np.uint8)).save(folder / BIG)


def outputs(out: Path) -> dict[str, bytes]:
    files = {}
    for sub in STAGES:
        for path in sorted((out / sub).rglob("*")):
            if path.is_file():
                files[str(path.relative_to(out))] = path.read_bytes()
    return files


STAGE_RULES = ("restore_global", "detect_faces", "enhance_face", "blend_faces")


def temp_files(out: Path) -> list[Path]:
    return sorted(out.rglob(".tmp-*"))


def assert_pngs_complete(out: Path) -> int:
    """Every PNG under a final name decodes fully (CRCs and every row); returns how many."""
    count = 0
    for path in out.rglob("*.png"):
        if path.name.startswith(".tmp-"):
            continue
        try:
            with Image.open(path) as im:
                im.verify()
            with Image.open(path) as im:
                im.load()
        except Exception as err:  # noqa: BLE001 - any decoder complaint is a partial file
            raise AssertionError(f"partial or corrupt PNG under a final name: {path}: {err}")
        count += 1
    return count


def start(workdir: Path, config: dict, keep_going: bool = True) -> subprocess.Popen:
    """The workflow as run_snakemake runs it, in its own process group, not waited for.

    Its stderr goes to ``workdir/stderr.txt`` (a pipe nobody reads could fill and block it).
    """
    cmd, env = snakemake_invocation(workdir, config)
    if not keep_going:
        cmd.remove("--keep-going")
    with open(workdir / "stderr.txt", "w") as stderr:
        return subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.DEVNULL, stderr=stderr,
                                env=env, start_new_session=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The outputs of an uninterrupted run."""
    tmp = tmp_path_factory.mktemp("reference")
    make_photos(tmp / "in")
    config = workflow_config(tmp, face_jobs="per_face")
    run_snakemake(tmp / "work", config)
    files = outputs(Path(config["output_dir"]))
    assert "final_output/face.png" in files and f"final_output/{Path(BIG).stem}.png" in files
    assert any(name.startswith("stage_3_face_output/") for name in files)
    return files


def finish_and_compare(tmp: Path, config: dict, reference_files: dict[str, bytes]) -> None:
    run_snakemake(tmp / "work", config)
    out = Path(config["output_dir"])
    resumed = outputs(out)
    assert resumed.keys() == reference_files.keys(), set(resumed) ^ set(reference_files)
    differing = [name for name in reference_files if reference_files[name] != resumed[name]]
    assert not differing, differing
    assert temp_files(out) == []
    assert assert_pngs_complete(out) > 0
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["counts"]["restored"] == 2 and summary["counts"]["failed"] == 0


def _group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:
                pids.append(int(entry))
    return pids


def _job_pids(pgid: int) -> dict[int, str]:
    """The run's job interpreters now running: pid -> rule script name."""
    jobs = {}
    for pid in _group_pids(pgid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                args = handle.read().split(b"\0")
        except OSError:
            continue
        if b"oldphoto.jobs" in args:  # python -m oldphoto.jobs TASK rule=NAME ...
            for arg in args:
                if arg.startswith(b"rule="):
                    jobs[pid] = arg[5:].decode(errors="replace")
    return jobs


def _writer_of(path: Path, pgid: int) -> int | None:
    """The process of the run's process group that has ``path`` open, if any."""
    for pid in _group_pids(pgid):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == str(path):
                    return pid
            except OSError:
                continue
    return None


def kill_a_writer(proc: subprocess.Popen, out: Path) -> tuple[Path, str]:
    """SIGKILL the first job caught with a non-empty temporary PNG open; (temp file, cmdline)."""
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        for tmp in temp_files(out) if out.is_dir() else []:
            try:
                if tmp.stat().st_size == 0:
                    continue  # not a byte written yet: wait for a real mid-write moment
            except OSError:
                continue  # renamed meanwhile: that write is complete
            pid = _writer_of(tmp, proc.pid)
            if pid is None:
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as handle:
                    cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace")
                if not any(f" rule={r} " in cmdline for r in STAGE_RULES):
                    continue  # Snakemake's own bookkeeping (the input manifest), a preview
                os.kill(pid, signal.SIGKILL)
            except OSError:
                continue  # it ended meanwhile
            return tmp, cmdline
        time.sleep(0.002)
    raise AssertionError("no job was caught writing a PNG")


def test_interrupted_runs_resume_byte_identical(reference, tmp_path):
    reference_files = reference
    make_photos(tmp_path / "in")
    config = workflow_config(tmp_path, face_jobs="per_face", workers=False)  # SIGKILLs the job process that writes
    out = Path(config["output_dir"])
    work = tmp_path / "work"

    # 1. one job killed mid-write; Snakemake stops after the jobs still running
    proc = start(work, config, keep_going=False)
    try:
        tmp, cmdline = kill_a_writer(proc, out)
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    rule = next(r for r in STAGE_RULES if f" rule={r} " in cmdline)
    # the kill came mid-write: the partial data exists, under its temporary name only
    assert tmp.is_file() and tmp.stat().st_size > 0
    assert proc.returncode != 0
    assert_pngs_complete(out)
    summary = json.loads((out / "run_summary.json").read_text())
    killed = {stem: e for stem, e in summary["photos"].items()
              if any(f"{rule} job ended without finishing" in r for r in e.get("reasons", []))}
    assert len(killed) == 1, summary["photos"]
    [(stem, entry)] = killed.items()
    assert entry["status"] == "failed"
    assert not (out / "final_output" / f"{stem}.png").exists()
    stderr = (work / "stderr.txt").read_text()
    assert f"oldphoto: FAILED {stem}: {rule} job ended without finishing" in stderr

    # 2. the whole run killed at seeded moments, resumed each time: a seeded delay after the
    #    run's first job has started (Snakemake's start-up is not the interesting part)
    rng = random.Random(SEED)
    hits = []
    for attempt in range(3):
        delay = rng.uniform(0.0, 1.0)  # a job here takes 1-5 s
        proc = start(work, config)
        while proc.poll() is None and not _job_pids(proc.pid):
            time.sleep(0.02)
        time.sleep(delay)
        jobs = _job_pids(proc.pid)
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # Snakemake and every job it started
        except ProcessLookupError:
            pass  # the run had already ended
        proc.wait()
        if jobs:
            hits.append((attempt, round(delay, 2), sorted(jobs.values())))
        assert_pngs_complete(out)  # never a partial file under a final name
        # a SIGKILLed Snakemake leaves its lock behind: the documented resume is unlock + rerun
        run_snakemake(work, config, "--unlock")
    assert len(hits) >= 2, f"too few kills landed while a job was running: {hits}"

    # 3. the completed rerun equals the uninterrupted run; no temporary file is left over
    finish_and_compare(tmp_path, config, reference_files)
