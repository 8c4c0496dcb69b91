"""The real workflow on a real SLURM cluster (scripts/cluster/slurm-up.sh): `--workflow-profile
profiles/slurm`, the official snakemake-executor-plugin-slurm, fake GPUs as GRES.

One scenario, asserted piece by piece from Slurm's own records (sacct) and the rule logs:

1. a local run of two tiny photos (the reference);
2. the same photos through SLURM, killed midway (Snakemake SIGKILLed, its jobs scancelled);
3. a broken photo added, unlock, rerun: it completes, and only the broken photo's job fails.

Skipped only when `sinfo` does not answer (or the plugin is missing); with
OLDPHOTO_REQUIRE_SLURM=1 (.ci/run) those are failures instead.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from conftest import REPO, make_tiny_photos, run_snakemake, workflow_config
from conftest import slurm_unavailable as _unavailable
from oldphoto.jobs.protocol import NETWORK_TASKS as NETWORK_RULES

pytestmark = [pytest.mark.slurm, pytest.mark.workflow]

PROFILE = REPO / "profiles" / "slurm"
GOOD = ("face", "no face")
STAGES = ("stage_1_restore_output", "stage_2_detection_output", "stage_3_face_output",
          "final_output")
DEVICE_LINE = re.compile(r"device: fake GPU from Slurm job (\d+) \(CUDA_VISIBLE_DEVICES=(\d+)\), "
                         r"computing on cpu, 1 thread$")


@dataclass
class SlurmJob:
    job_id: str
    rule: str
    wildcards: str
    state: str
    alloc_tres: str
    start: dt.datetime | None
    end: dt.datetime | None


def _time(value: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:  # Unknown, None
        return None


def slurm_jobs(workdir: Path, since: dt.datetime) -> dict[str, SlurmJob]:
    """Every Slurm job of this run, from sacct, named by the plugin's per-job log files
    (.snakemake/slurm_logs/rule_<rule>/<wildcards>/<jobid>.log)."""
    proc = subprocess.run(
        ["sacct", "-X", "-P", "-n", "-S", since.strftime("%Y-%m-%dT%H:%M:%S"),
         "-o", "JobIDRaw,State,AllocTRES,Start,End,WorkDir"],
        capture_output=True, text=True, timeout=60, check=True,
    )
    # After sacct: every job it reports as ended has written its log by now.
    names = {}
    for log in (workdir / ".snakemake" / "slurm_logs").glob("rule_*/*/*.log"):
        names[log.stem] = (log.parent.parent.name.removeprefix("rule_"), log.parent.name)
    jobs = {}
    for line in proc.stdout.splitlines():
        job_id, state, tres, start, end, wd = line.split("|", 5)
        if Path(wd) != workdir:
            continue
        if job_id not in names:
            if state.split()[0] == "RUNNING":
                # allocated, but slurmd has not started its batch step (which creates the log)
                # yet: checked on a later call (the last one comes after the run has ended)
                continue
            # only a job that never started (pending, cancelled) has none
            assert not tres, f"Slurm job {job_id} ran in {workdir} without a plugin log"
            continue
        rule, wildcards = names[job_id]
        jobs[job_id] = SlurmJob(job_id, rule, wildcards, state.split()[0], tres,
                                _time(start), _time(end))
    return jobs


def just_started(workdir: Path, seconds: int = 2) -> bool:
    """A job of this run has been running for at most ``seconds`` (it will not end at once)."""
    queue = subprocess.run(["squeue", "-h", "-t", "running", "-o", "%M|%Z"], capture_output=True,
                           text=True, timeout=60, check=True).stdout
    for line in queue.splitlines():
        used, wd = line.split("|", 1)
        if Path(wd) == workdir and re.fullmatch(r"0:0\d", used) and int(used[-1]) <= seconds:
            return True
    return False


def stage_files(out: Path, stems=GOOD) -> dict[str, bytes]:
    files = {}
    for sub in STAGES:
        for path in sorted((out / sub).rglob("*")):
            if path.is_file() and any(path.name.startswith(s) or s in path.parts for s in stems):
                files[str(path.relative_to(out))] = path.read_bytes()
    return files


def snakemake_cmd(workdir: Path, configfile: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
            "--workflow-profile", str(PROFILE), "--directory", str(workdir),
            "--configfile", str(configfile), *args]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    reason = _unavailable()
    if reason:
        if os.environ.get("OLDPHOTO_REQUIRE_SLURM") == "1":
            pytest.fail(f"SLURM required (OLDPHOTO_REQUIRE_SLURM=1) but {reason}")
        pytest.skip(reason)
    since = dt.datetime.now().replace(microsecond=0) - dt.timedelta(seconds=2)
    tmp = tmp_path_factory.mktemp("slurm")
    made = make_tiny_photos(tmp / "in")
    made["scratched"].unlink()  # two photos keep the run short: one with a face, one without
    settings = dict(device="auto", threads=1, memory_budget_mb=1000, face_jobs="per_face")

    # 1. Reference: a local run on the CPU.
    local = tmp / "local"
    shutil.copytree(tmp / "in", local / "in")
    local_config = workflow_config(local, gpu_per_job=0, **settings)
    run_snakemake(local / "work", local_config, env={"CUDA_VISIBLE_DEVICES": "",
                                                     "SLURM_JOB_ID": ""})

    # 2. SLURM, every network job asking for one (fake) GPU; killed midway: once two jobs have
    #    completed and a later one has just started running (so it is cancelled mid-run).
    work = tmp / "work"
    work.mkdir()
    config = workflow_config(tmp, gpu_per_job=1, **settings)
    configfile = work / "config.yaml"
    configfile.write_text(yaml.safe_dump(config), encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), OLDPHOTO_FAKE_GPUS="2")
    env.pop("CUDA_VISIBLE_DEVICES", None)
    first_log = open(tmp / "first.log", "w", encoding="utf-8")
    first = subprocess.Popen(snakemake_cmd(work, configfile), cwd=work, env=env,
                             stdout=first_log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 240
    try:
        while True:
            jobs = slurm_jobs(work, since)
            if sum(j.state == "COMPLETED" for j in jobs.values()) >= 2 and just_started(work):
                break
            assert first.poll() is None, f"first run ended early: {(tmp / 'first.log').read_text()}"
            assert time.monotonic() < deadline, "the first run never got midway within 240 s"
            time.sleep(0.5)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        first_log.close()
    queued = subprocess.run(["squeue", "-h", "-o", "%i|%Z"], capture_output=True, text=True,
                            check=True).stdout
    left = [line.split("|")[0] for line in queued.splitlines()
            if Path(line.split("|", 1)[1]) == work]
    if left:
        subprocess.run(["scancel", *left], check=True)
    interrupted = {s: (Path(config["output_dir"]) / "final_output" / f"{s}.png").exists()
                   for s in GOOD}

    # 3. A broken photo joins; unlock (the SIGKILLed run left its lock) and rerun.
    (tmp / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    unlock = subprocess.run(snakemake_cmd(work, configfile, "--unlock"), cwd=work, env=env,
                            capture_output=True, text=True, timeout=120)
    assert unlock.returncode == 0, unlock.stderr
    rerun = subprocess.run(snakemake_cmd(work, configfile), cwd=work, env=env,
                           capture_output=True, text=True, timeout=420)
    jobs = slurm_jobs(work, since)
    return {"tmp": tmp, "work": work, "config": config, "local_config": local_config,
            "interrupted": interrupted, "cancelled": left, "rerun": rerun, "jobs": jobs}


def test_interrupted_run_resumes_and_completes(scenario):
    out = Path(scenario["config"]["output_dir"])
    assert not any(scenario["interrupted"].values()), "the first run was not stopped midway"
    assert scenario["cancelled"], "no job was running when the first run was stopped"
    for stem in GOOD:
        assert (out / "final_output" / f"{stem}.png").is_file(), scenario["rerun"].stderr[-4000:]
    # what completed before the stop is not redone; what was cancelled ran again and completed
    for stem in GOOD:
        runs = [j for j in scenario["jobs"].values()
                if (j.rule, j.wildcards) == ("restore_global", stem)]
        assert [j.state for j in runs] == ["COMPLETED"], runs
    cancelled = [j for j in scenario["jobs"].values() if j.state == "CANCELLED"]
    for job in cancelled:
        assert any(o.state == "COMPLETED" and (o.rule, o.wildcards) == (job.rule, job.wildcards)
                   for o in scenario["jobs"].values()), job


def test_every_job_ran_through_slurm(scenario):
    jobs, out = scenario["jobs"], Path(scenario["config"]["output_dir"])
    ran = {(j.rule, j.wildcards) for j in jobs.values() if j.state in ("COMPLETED", "FAILED")}
    logged = {(log.parent.name, log.stem) for log in (out / "logs").glob("*/*.log")}
    assert logged and logged <= ran, logged - ran  # every rule log comes from a SLURM job
    text = scenario["rerun"].stdout + scenario["rerun"].stderr
    local_rules = set(re.findall(r"^localrule (\w+):", text, re.M))
    assert local_rules <= {"all"}, local_rules
    assert "SLURM jobid" in text


def test_network_rules_got_one_gpu_gres(scenario):
    allocated = [j for j in scenario["jobs"].values() if j.alloc_tres]
    assert {j.rule for j in allocated} >= {"restore_global", "enhance_face", "detect_faces",
                                            "blend_faces"}
    for job in allocated:
        if job.rule in NETWORK_RULES:
            assert "gres/gpu=1" in job.alloc_tres.split(","), job
        else:
            assert "gres/gpu" not in job.alloc_tres, job


def test_concurrent_gpu_jobs_saw_distinct_devices(scenario):
    jobs, out = scenario["jobs"], Path(scenario["config"]["output_dir"])
    seen = []
    for rule in NETWORK_RULES:
        for log in sorted((out / "logs" / rule).glob("*.log")):
            lines = [m for m in map(DEVICE_LINE.search, log.read_text().splitlines()) if m]
            assert len(lines) == 1, (log, log.read_text())
            job_id, visible = lines[0].groups()
            job = jobs[job_id]
            assert (job.rule, job.wildcards) == (rule, log.stem)
            assert job.start and job.end, job
            seen.append((job, visible))
    assert len(seen) >= 4  # restore_global x3, enhance_face x1
    overlapping = 0
    for i, (a, va) in enumerate(seen):
        for b, vb in seen[i + 1:]:
            if a.start < b.end and b.start < a.end:  # both held their GPU at the same time
                overlapping += 1
                assert va != vb, (a, b, va)
    # The first wave (restore_global of both photos, 2 CPUs and 2 GPUs free) ran side by side.
    assert overlapping >= 1


def test_outputs_equal_a_local_run(scenario):
    slurm = stage_files(Path(scenario["config"]["output_dir"]))
    local = stage_files(Path(scenario["local_config"]["output_dir"]))
    assert sorted(slurm) == sorted(local) and len(local) >= 10
    assert [name for name in local if local[name] != slurm[name]] == []


def test_broken_photo_fails_only_its_own_job(scenario):
    rerun, jobs = scenario["rerun"], scenario["jobs"]
    out = Path(scenario["config"]["output_dir"])
    assert rerun.returncode != 0
    failed = [j for j in jobs.values() if j.state not in ("COMPLETED", "CANCELLED")]
    assert [(j.rule, j.wildcards, j.state) for j in failed] == [
        ("restore_global", "broken", "FAILED")]
    assert not any(j.wildcards == "broken" and j.rule != "restore_global" for j in jobs.values())
    assert "FAILED restore_global broken" in (out / "logs/restore_global/broken.log").read_text()
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["counts"]["failed"] == 1 and "broken" in summary["photos"]
