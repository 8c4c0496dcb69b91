"""Interrupted runs resume to exactly the uninterrupted result, and no partial file is ever
left under a final name.

* The whole run (Snakemake and its jobs: the process group) is SIGKILLed at seeded random
  moments, several times in a row (each resume is itself killed), then resumed to the end
  (``--unlock``, then a rerun; ``--rerun-incomplete`` is in the helper).
* One job's interpreter is SIGKILLed while it is writing a PNG (found as the process holding a
  non-empty ``.tmp-*`` file open), while Snakemake carries on.

After every kill every PNG under a final name decodes fully; after the completed rerun the
outputs are byte-identical to an uninterrupted run and no ``.tmp-*`` file remains.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import REPO, make_tiny_photos, run_snakemake, workflow_config

pytestmark = pytest.mark.workflow

SEED = 20240611
STAGES = ("stage_1_restore_output", "stage_2_detection_output", "stage_3_face_output",
          "final_output")
BIG = "big noisy.png"  # 1000x750, grainy: each of its PNG writes takes a good fraction of a second


def make_photos(folder: Path) -> None:
    """A small photo with a face (the face chain runs) and a larger grainy one."""
    make_tiny_photos(folder)
    for name in ("no face.jpg", "scratched.png"):
        (folder / name).unlink()
    width, height = 1000, 750
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


def start(workdir: Path, config: dict) -> subprocess.Popen:
    """The workflow as run_snakemake runs it, in its own process group, not waited for.

    Its stderr goes to ``workdir/stderr.txt`` (a pipe nobody reads could fill and block it).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    configfile = workdir / "test-config.yaml"
    configfile.write_text(yaml.safe_dump(config), encoding="utf-8")
    cmd = [
        sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir), "--configfile", str(configfile),
        "--cores", "2", "--keep-going", "--rerun-incomplete", "--latency-wait", "5",
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    with open(workdir / "stderr.txt", "w") as stderr:
        return subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.DEVNULL, stderr=stderr,
                                env=env, start_new_session=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run: its outputs and how long it took here."""
    tmp = tmp_path_factory.mktemp("reference")
    make_photos(tmp / "in")
    config = workflow_config(tmp)
    began = time.monotonic()
    run_snakemake(tmp / "work", config)
    duration = time.monotonic() - began
    files = outputs(Path(config["output_dir"]))
    assert "final_output/face.png" in files and f"final_output/{Path(BIG).stem}.png" in files
    assert any(name.startswith("stage_3_face_output/") for name in files)
    return files, duration


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


def test_whole_run_killed_at_seeded_points_resumes_identically(reference, tmp_path):
    reference_files, duration = reference
    make_photos(tmp_path / "in")
    config = workflow_config(tmp_path)
    out = Path(config["output_dir"])
    rng = random.Random(SEED)
    interrupted = []
    for attempt in range(3):
        # a moment within the first half of an uninterrupted run (Snakemake's own start-up
        # included): the resumed run has less left to do, so later kills land earlier in it
        delay = rng.uniform(0.1, 0.5) * duration
        proc = start(tmp_path / "work", config)
        time.sleep(delay)
        running = proc.poll() is None
        os.killpg(proc.pid, signal.SIGKILL)  # Snakemake and every job it started
        proc.wait()
        if running:
            interrupted.append((attempt, round(delay, 2),
                                len(list((out / "final_output").glob("*.png")))
                                if (out / "final_output").is_dir() else 0))
        # never a partial file under a final name, whenever the kill came
        assert_pngs_complete(out)
        # a SIGKILLed Snakemake leaves its lock behind: the documented resume is unlock + rerun
        run_snakemake(tmp_path / "work", config, "--unlock")
    assert len(interrupted) >= 2, f"the kills came after the run had finished: {interrupted}"
    finish_and_compare(tmp_path, config, reference_files)


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


def test_job_killed_while_writing_leaves_no_partial_png(reference, tmp_path):
    reference_files, _ = reference
    make_photos(tmp_path / "in")
    config = workflow_config(tmp_path)
    out = Path(config["output_dir"])
    proc = start(tmp_path / "work", config)
    victim = None
    deadline = time.monotonic() + 300
    try:
        while victim is None and proc.poll() is None and time.monotonic() < deadline:
            for tmp in temp_files(out) if out.is_dir() else []:
                try:
                    if tmp.stat().st_size == 0:
                        continue  # not a byte written yet: wait for a real mid-write moment
                except OSError:
                    continue  # renamed meanwhile: that write is complete
                pid = _writer_of(tmp, proc.pid)
                if pid is None:
                    continue
                with open(f"/proc/{pid}/cmdline", "rb") as handle:
                    cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace")
                os.kill(pid, signal.SIGKILL)
                victim = (tmp, cmdline)
                break
            time.sleep(0.002)
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert victim is not None, "no job was caught writing a PNG"
    tmp, cmdline = victim
    rule = next(r for r in ("restore_global", "detect_faces", "enhance_face", "blend_faces")
                if f".{r}.py" in cmdline)
    # the kill came mid-write: the partial data is still there, under its temporary name only
    assert tmp.is_file() and tmp.stat().st_size > 0
    assert proc.returncode != 0  # the killed job failed the run; Snakemake finished the rest
    assert_pngs_complete(out)
    summary = json.loads((out / "run_summary.json").read_text())
    failed = {stem: e for stem, e in summary["photos"].items() if e["status"] == "failed"}
    assert len(failed) == 1, summary["photos"]
    [(stem, entry)] = failed.items()
    assert not (out / "final_output" / f"{stem}.png").exists()
    assert any(f"{rule} job ended without finishing" in r for r in entry["reasons"]), entry
    stderr = (tmp_path / "work" / "stderr.txt").read_text()
    assert f"oldphoto: FAILED {stem}: {rule} job ended without finishing" in stderr
    # the next run resumes (no lock to clear: Snakemake ended normally) and cleans up
    finish_and_compare(tmp_path, config, reference_files)
