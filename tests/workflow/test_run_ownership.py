"""A live run is never unlocked by a second ``oldphoto``; a dead one resumes without ceremony; a job
whose warm worker died is retried once in the same run (oldphoto.locks, oldphoto.cli,
oldphoto.worker.client.submit_retrying_once, oldphoto.summary).

One collection — 15 tiny photos and a 1600x1200 grainy one, classical backend, one core, so a
run lasts a while — is restored alone once (the reference).  Then:

- a run is started, and while it works a second ``oldphoto`` on the same folder is started from
  this machine, from another PID namespace (``unshare -p -f --mount-proc``, where the first run's
  processes do not exist in ``/proc``), and ``oldphoto --unlock`` is tried: all are refused, with
  the owner named; the first run finishes and its outputs equal the reference byte for byte;
- a run is SIGKILLed (the command, Snakemake, its jobs), and the next ``oldphoto`` removes the
  dead run's lock by itself and finishes: outputs equal the reference;
- a run's warm workers are SIGKILLed while one serves the big photo's job: that job is retried
  once in a fresh worker, every photo finishes in the same run, the summary counts the retry; a
  broken file among them fails once and is not retried.

The other PID namespace needs ``unshare`` as root: without it that test is skipped, naming why,
except in CI (``OLDPHOTO_REQUIRE_UNSHARE=1``, .ci/run), where it fails.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import make_tiny_photos
from oldphoto.atomic import TEMP_PREFIX
from oldphoto.locks import try_flock
from oldphoto.worker.client import runtime_dir, running_workers

pytestmark = pytest.mark.workflow

STAGES = ("stage_1_restore_output", "stage_2_detection_output", "stage_3_face_output",
          "final_output")
BIG = "big noisy"


def oldphoto_command() -> list[str]:
    script = Path(sys.executable).parent / "oldphoto"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "oldphoto.cli"]


def oldphoto_args(photos: Path, out: Path, *more: str) -> list[str]:
    return [*oldphoto_command(), "--input_folder", str(photos), "--output_folder", str(out),
            "--GPU", "-1", "--backend", "classical", *more]


def make_collection(folder: Path) -> None:
    """15 tiny photos (three kinds, five copies each) and a 1600x1200 grainy one."""
    seeds = make_tiny_photos(folder / "seeds")
    for i in range(15):
        seed = list(seeds.values())[i % len(seeds)]
        shutil.copy(seed, folder / f"p{i:02d}{seed.suffix}")
    shutil.rmtree(folder / "seeds")
    height, width = 1200, 1600
    y, x = np.mgrid[0:height, 0:width]
    ramp = np.dstack([x * 255 // width, y * 255 // height, (x + y) * 255 // (width + height)])
    grain = np.random.default_rng(23).normal(0, 2, (height, width, 3))
    Image.fromarray(np.clip(ramp + grain, 0, 255).astype(np.uint8)).save(folder / f"{BIG}.png")


def outputs(out: Path, *, but_temporary: bool = False) -> dict[str, bytes]:
    """Every file of the stage folders and final_output (what must equal a run alone; the
    sidecars and logs hold times).  ``but_temporary``: without the temporary files of atomic
    writes (``.tmp-*``), which a process killed mid-write leaves until the next run."""
    return {str(p.relative_to(out)): p.read_bytes()
            for sub in STAGES for p in sorted((out / sub).rglob("*"))
            if p.is_file() and not (but_temporary and p.name.startswith(TEMP_PREFIX))}


def start(args: list[str], log: Path) -> subprocess.Popen:
    """A run in its own process group (so a kill reaches the command, Snakemake and its jobs)."""
    with open(log.with_suffix(".out"), "w") as stdout, open(log.with_suffix(".err"), "w") as err:
        return subprocess.Popen(args, stdout=stdout, stderr=err, start_new_session=True)


def wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the run ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def snakemake_locked(out: Path) -> bool:
    return (out / ".snakemake" / "locks" / "0.output.lock").is_file()


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """The photos and the outputs of a run alone."""
    tmp = tmp_path_factory.mktemp("ownership")
    make_collection(tmp / "in")
    proc = subprocess.run(oldphoto_args(tmp / "in", tmp / "reference", "--cores", "2"),
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    reference = outputs(tmp / "reference")
    assert len([k for k in reference if k.startswith("final_output/")]) == 16
    return tmp / "in", reference


def unshare_problem() -> str | None:
    """Why a second PID namespace cannot be made here (None: it can)."""
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    probe = subprocess.run(["unshare", "-p", "-f", "--mount-proc", "true"], capture_output=True,
                           text=True)
    if probe.returncode != 0:
        return (f"unshare -p -f --mount-proc failed (needs root or user namespaces): "
                f"{probe.stderr.strip()}")
    return None


@pytest.fixture(scope="module")
def live_run(collection, tmp_path_factory):
    """A run, and what three other commands on its folder did while it worked."""
    photos, _ = collection
    tmp = tmp_path_factory.mktemp("live")
    out = tmp / "out"
    first = start(oldphoto_args(photos, out, "--cores", "1"), tmp / "first")
    attempts: dict[str, subprocess.CompletedProcess | str] = {}
    try:
        wait_for(lambda: snakemake_locked(out), first, "Snakemake took its lock")
        config = (out / "oldphoto_config.yaml").read_bytes()
        # another configuration: had it been written, the first run's report would use it
        second = oldphoto_args(photos, out, "--cores", "1", "--with_scratch")
        attempts["same machine"] = subprocess.run(second, capture_output=True, text=True,
                                                  timeout=120)
        problem = unshare_problem()
        attempts["other PID namespace"] = problem or subprocess.run(
            ["unshare", "-p", "-f", "--mount-proc", *second], capture_output=True, text=True,
            timeout=120)
        attempts["unlock"] = subprocess.run(
            [*oldphoto_command(), "--output_folder", str(out), "--unlock"], capture_output=True,
            text=True, timeout=120)
        alive_after = first.poll() is None and not (out / "final_output" / f"{BIG}.png").exists()
        first.wait(timeout=900)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    return {"out": out, "first": first, "attempts": attempts, "alive_after": alive_after,
            "config": config,
            # the run's console: Snakemake's and oldphoto's lines go to stderr, the summary too
            "stdout": (tmp / "first.out").read_text() + (tmp / "first.err").read_text()}


def assert_refused(proc: subprocess.CompletedProcess, first_pid: int) -> None:
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "is in use by a live run; nothing was done" in proc.stderr
    owner = f"owner: oldphoto pid {first_pid}, Snakemake pid "
    assert owner in proc.stderr and f"on host {socket.gethostname()} " in proc.stderr
    assert f"(user {pwd.getpwuid(os.getuid()).pw_name})" in proc.stderr
    since = next(line for line in proc.stderr.splitlines() if owner in line).rsplit("since ", 1)
    assert time.strptime(since[1], "%Y-%m-%d %H:%M:%S %z")
    assert "--unlock" in proc.stderr
    assert "--keep-going" not in proc.stderr  # no Snakemake run was started


def test_a_second_oldphoto_on_the_same_machine_is_refused(live_run):
    assert live_run["alive_after"], "the first run ended before the other commands were tried"
    assert_refused(live_run["attempts"]["same machine"], live_run["first"].pid)


def test_a_second_oldphoto_in_another_pid_namespace_is_refused(live_run):
    attempt = live_run["attempts"]["other PID namespace"]
    if isinstance(attempt, str):
        if os.environ.get("OLDPHOTO_REQUIRE_UNSHARE") == "1":
            pytest.fail(f"another PID namespace is required (OLDPHOTO_REQUIRE_UNSHARE=1): "
                        f"{attempt}")
        pytest.skip(f"no second PID namespace: {attempt}")
    assert live_run["alive_after"], "the first run ended before the other commands were tried"
    assert_refused(attempt, live_run["first"].pid)


def test_unlock_refuses_a_live_run(live_run):
    proc = live_run["attempts"]["unlock"]
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "not unlocked" in proc.stderr and "stop that run first" in proc.stderr
    assert f"oldphoto pid {live_run['first'].pid}" in proc.stderr


def test_the_first_run_finishes_untouched(live_run, collection):
    _, reference = collection
    out = live_run["out"]
    assert live_run["first"].returncode == 0, live_run["stdout"][-3000:]
    assert "16 photo(s) restored" in live_run["stdout"] and "0 failed" in live_run["stdout"]
    assert (out / "oldphoto_config.yaml").read_bytes() == live_run["config"]
    assert outputs(out) == reference
    # its lock and its owner record went with it, and nothing holds its flock any more
    assert not (out / ".snakemake" / "locks").exists()
    fd = try_flock(out / ".oldphoto" / "owner.lock")
    assert fd is not None
    os.close(fd)


def test_a_killed_run_resumes_without_ceremony(collection, tmp_path):
    photos, reference = collection
    out = tmp_path / "out"
    run = start(oldphoto_args(photos, out, "--cores", "1"), tmp_path / "killed")
    try:
        wait_for(lambda: any((out / "stage_1_restore_output" / "restored_image").glob("*.png"))
                 if (out / "stage_1_restore_output").is_dir() else False, run, "a photo")
        assert snakemake_locked(out)
    finally:
        os.killpg(run.pid, signal.SIGKILL)  # the command, Snakemake and its jobs
        run.wait()
    record = json.loads((out / ".snakemake" / "locks" / "oldphoto-owner.json").read_text())
    assert record["pid"] == run.pid
    proc = subprocess.run(oldphoto_args(photos, out, "--cores", "2"), capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (f"oldphoto: removed the owner record of a dead run (oldphoto pid {run.pid}, "
            f"Snakemake pid {record['snakemake']['pid']} on host {socket.gethostname()}"
            in proc.stderr)
    assert (f"oldphoto: removed the stale Snakemake lock {out / '.snakemake' / 'locks'}/"
            "0.output.lock" in proc.stderr)
    assert "16 photo(s) restored" in proc.stdout + proc.stderr
    assert outputs(out) == reference


def _job_client(image: str, rule: str) -> int | None:
    """The pid of the running job client ``python -m oldphoto.jobs RULE ... image=IMAGE``."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"oldphoto.jobs" in argv and f"rule={rule}".encode() in argv \
                and f"image={image}".encode() in argv:
            return int(entry)
    return None


def _serving_worker(client: int, key: str) -> int | None:
    """The ready worker serving ``client``: the slot whose lock file the client holds open."""
    folder = runtime_dir(key)
    try:
        fds = os.listdir(f"/proc/{client}/fd")
    except OSError:
        return None
    for fd in fds:
        try:
            target = Path(os.readlink(f"/proc/{client}/fd/{fd}"))
        except OSError:
            continue
        if target.parent == folder and target.suffix == ".lock":
            pool, _, slot = target.stem.rpartition("-")
            for worker in running_workers(key):
                if (worker["pool"], worker["slot"]) == (pool, int(slot)):
                    return int(worker["pid"])
    return None


def test_workers_killed_mid_run_are_retried_once_in_the_same_run(collection, tmp_path):
    photos, reference = collection
    here = tmp_path / "in"
    shutil.copytree(photos, here)
    broken = here / "broken scan.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    out = tmp_path / "out"
    key = str(out.resolve())
    run = start(oldphoto_args(here, out, "--cores", "1"), tmp_path / "run")
    killed = []
    try:
        served = {}

        def big_job_is_being_served() -> bool:
            client = _job_client(BIG, "restore_global")
            served["worker"] = client and _serving_worker(client, key)
            return bool(served["worker"])

        wait_for(big_job_is_being_served, run, "the big photo's job reached its worker")
        time.sleep(0.3)  # into the request (the job takes seconds)
        assert _job_client(BIG, "restore_global") is not None
        for worker in running_workers(key):  # every worker of the run, as in the field
            os.kill(int(worker["pid"]), signal.SIGKILL)
            killed.append(int(worker["pid"]))
        run.wait(timeout=900)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    assert served["worker"] in killed
    stdout = (tmp_path / "run.out").read_text() + (tmp_path / "run.err").read_text()
    assert run.returncode == 1, stdout[-3000:]  # the broken file
    summary = json.loads((out / "run_summary.json").read_text())
    photos_ = summary["photos"]
    assert {s for s, e in photos_.items() if e["status"] == "restored"} == \
        {s for s in photos_ if s != "broken scan"}
    # the big photo's job died with its worker and was retried once, in a fresh worker
    assert any("restore_global: worker died" in r and "killed by signal 9 (SIGKILL)" in r
               for r in photos_[BIG]["retried"]), photos_[BIG]
    retried = sorted(s for s, e in photos_.items() if "retried" in e)
    assert summary["counts"]["retried"] == len(retried) >= 1
    assert f", {len(retried)} retried after a worker died" in stdout
    logs = {s: "".join(p.read_text() for p in (out / "logs").glob(f"*/{s}.log")) for s in retried}
    assert all("RETRIED " in text and "FAILED " not in text for text in logs.values())
    # the broken file failed for its own reason, once, and was not retried
    assert photos_["broken scan"]["status"] == "failed" and "retried" not in photos_["broken scan"]
    assert any("bad image" in r for r in photos_["broken scan"]["reasons"])
    broken_log = (out / "logs" / "restore_global" / "broken scan.log").read_text()
    assert broken_log.count("FAILED ") == 1 and "RETRIED" not in broken_log
    # every other photo is what a run alone makes (a write the kill interrupted may have left
    # its temporary file, under its temporary name only; the next run removes it)
    assert outputs(out, but_temporary=True) == reference
