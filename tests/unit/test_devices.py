"""GPU slot picker and device selection (oldphoto.devices), with real processes and real flocks."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import REPO
from oldphoto import devices
from oldphoto.errors import ConfigError

ENV_VARS = ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID", devices.FAKE_GPUS_ENV, devices.LOCK_DIR_ENV,
            devices.TRACE_ENV)

# A child process: wait for the start signal, hold a slot for a moment, record what it held when.
HOLDER = r"""
import json, os, sys, time
from pathlib import Path
from oldphoto.devices import gpu_slot
lock_dir, go, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
hold, per_gpu = float(sys.argv[4]), int(sys.argv[5])
while not go.exists():
    time.sleep(0.005)
with gpu_slot(2, lock_dir, per_gpu, poll_seconds=0.02) as slot:
    start = time.time()
    visible = os.environ["CUDA_VISIBLE_DEVICES"]
    time.sleep(hold)
    end = time.time()
out.write_text(json.dumps({"gpu": slot.gpu, "share": slot.share, "visible": visible,
                           "start": start, "end": end, "pid": os.getpid()}))
"""

# A child that takes the only slot, says so, and sleeps until it is killed.
SLEEPER = r"""
import sys, time
from pathlib import Path
from oldphoto.devices import acquire_gpu_slot
slot = acquire_gpu_slot(1, sys.argv[1])
Path(sys.argv[2]).write_text(slot.cuda_visible_devices)
time.sleep(600)
"""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """No GPU, Slurm or hook variables from the outside; whatever a test sets is undone."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    threads = torch.get_num_threads()
    yield monkeypatch
    torch.set_num_threads(threads)


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env["PYTHONPATH"] = str(REPO / "src")
    env.update(extra)
    return env


def wait_for_file(path: Path, proc: subprocess.Popen, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while not path.exists():
        assert proc.poll() is None, f"child exited early with {proc.returncode}"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


# ------------------------------------------------------------------------------------------------
# Counting
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value, expected", [
    ("", []), ("-1", []), ("0", ["0"]), ("2,3", ["2", "3"]), (" 1 , 0 ", ["1", "0"]),
    ("0,-1,1", ["0"]), ("GPU-8f3c2a1b-aaaa,1", ["GPU-8f3c2a1b-aaaa", "1"]), ("nvidia0", []),
])
def test_visible_device_entries(value, expected):
    assert devices.visible_device_entries(value) == expected


def test_count_prefers_fake_then_cuda_visible_devices(clean_env):
    clean_env.setenv("CUDA_VISIBLE_DEVICES", "4,5,6")
    assert devices.count_gpus()[0] == 3
    clean_env.setenv(devices.FAKE_GPUS_ENV, "2")
    assert devices.count_gpus() == (2, "OLDPHOTO_FAKE_GPUS=2")
    clean_env.setenv(devices.FAKE_GPUS_ENV, "two")
    with pytest.raises(ConfigError):
        devices.count_gpus()


def test_count_reads_nvidia_smi(clean_env, tmp_path):
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\n"
                   "echo 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-aaaa)'\n"
                   "echo '  MIG 1g.10gb     Device  0: (UUID: MIG-bbbb)'\n"
                   "echo 'GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-cccc)'\n")
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    clean_env.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert devices.count_gpus() == (2, "nvidia-smi -L")


# ------------------------------------------------------------------------------------------------
# Slots
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("per_gpu", [1, 2])
def test_concurrent_processes_never_share_a_slot(tmp_path, per_gpu):
    """6 processes, 2 GPUs: each slot is held by one process at a time; all 6 finish."""
    lock_dir, go, trace = tmp_path / "locks", tmp_path / "go", tmp_path / "trace.jsonl"
    env = child_env(**{devices.TRACE_ENV: str(trace)})
    procs = [
        subprocess.Popen([sys.executable, "-c", HOLDER, str(lock_dir), str(go),
                          str(tmp_path / f"rec{i}.json"), "0.3", str(per_gpu)], env=env)
        for i in range(6)
    ]
    go.touch()
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    records = [json.loads((tmp_path / f"rec{i}.json").read_text()) for i in range(6)]
    by_slot: dict[tuple[int, int], list[dict]] = {}
    for rec in records:
        assert 0 <= rec["gpu"] < 2 and 0 <= rec["share"] < per_gpu
        assert rec["visible"] == str(rec["gpu"])  # the job sees exactly its GPU
        by_slot.setdefault((rec["gpu"], rec["share"]), []).append(rec)
    for slot, held in by_slot.items():
        held.sort(key=lambda r: r["start"])
        for before, after in zip(held, held[1:]):
            assert after["start"] >= before["end"], f"slot {slot} shared by {before} and {after}"
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    assert sorted(e["event"] for e in events) == ["acquire"] * 6 + ["release"] * 6
    assert sorted(p.name for p in lock_dir.iterdir()) == sorted(
        f"gpu-{g}.{s}.lock" for g, s in by_slot)


def test_sigkilled_holder_frees_its_slot(tmp_path):
    lock_dir, held = tmp_path / "locks", tmp_path / "held"
    proc = subprocess.Popen([sys.executable, "-c", SLEEPER, str(lock_dir), str(held)],
                            env=child_env())
    try:
        wait_for_file(held, proc)
        assert held.read_text() == "0"
        with pytest.raises(TimeoutError):  # busy while the holder lives: a non-blocking try fails
            devices.acquire_gpu_slot(1, lock_dir, timeout=0, set_env=False)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    # The kernel dropped the flock with the process; the slot is free without any cleanup.
    slot = devices.acquire_gpu_slot(1, lock_dir, timeout=30, set_env=False)
    assert (slot.gpu, slot.share, slot.cuda_visible_devices) == (0, 0, "0")
    slot.release()


def test_waiting_job_gets_the_slot_once_it_is_released(tmp_path, clean_env):
    lock_dir = tmp_path / "locks"
    with devices.gpu_slot(1, lock_dir) as first:
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "0"
        with pytest.raises(TimeoutError):
            devices.acquire_gpu_slot(1, lock_dir, timeout=0.1, poll_seconds=0.02,
                                     log=lambda m: None)
        assert first.lock_path == lock_dir / "gpu-0.0.lock"
    with devices.gpu_slot(1, lock_dir, timeout=5):
        pass


def test_slots_follow_a_restricted_cuda_visible_devices(tmp_path, clean_env):
    clean_env.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    with devices.gpu_slot(2, tmp_path, set_env=False) as a:  # as if in another process
        with devices.gpu_slot(2, tmp_path) as b:
            assert (a.cuda_visible_devices, b.cuda_visible_devices) == ("2", "3")
            assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"


def test_shared_gpus_spread_before_doubling_up(tmp_path):
    with devices.gpu_slot(2, tmp_path, 2, set_env=False) as a, \
            devices.gpu_slot(2, tmp_path, 2, set_env=False) as b, \
            devices.gpu_slot(2, tmp_path, 2, set_env=False) as c:
        assert [s.label for s in (a, b, c)] == ["0.0", "1.0", "0.1"]


# ------------------------------------------------------------------------------------------------
# Device selection
# ------------------------------------------------------------------------------------------------
def test_cpu_sets_threads_and_takes_no_slot(tmp_path, clean_env):
    clean_env.setenv(devices.FAKE_GPUS_ENV, "2")
    lines: list[str] = []
    device, slot = devices.select_device("cpu", 3, tmp_path / "locks", log=lines.append)
    assert device == torch.device("cpu") and slot is None
    assert torch.get_num_threads() == 3
    assert lines == ["device: cpu, 3 threads"]
    assert not (tmp_path / "locks").exists()


def test_auto_falls_back_to_cpu_without_gpu(tmp_path, clean_env):
    clean_env.setenv("CUDA_VISIBLE_DEVICES", "")
    lines: list[str] = []
    device, slot = devices.select_device("auto", 2, tmp_path, log=lines.append)
    assert device == torch.device("cpu") and slot is None
    assert torch.get_num_threads() == 2
    assert lines == ["device: cpu, 2 threads (no GPU: CUDA_VISIBLE_DEVICES='')"]
    with pytest.raises(ConfigError, match="no GPU"):
        devices.select_device("cuda", 2, tmp_path, log=lines.append)
    with pytest.raises(ConfigError, match="device must be one of"):
        devices.select_device("gpu", 2, tmp_path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a usable GPU")
def test_auto_falls_back_to_cpu_when_torch_cannot_use_listed_gpus(tmp_path, clean_env):
    clean_env.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    lines: list[str] = []
    device, slot = devices.select_device("auto", 1, tmp_path, log=lines.append)
    assert device == torch.device("cpu") and slot is None
    assert "torch cannot use the 2 GPU(s)" in lines[0]
    # the slot it tried was released again
    with devices.gpu_slot(1, tmp_path, timeout=0, set_env=False):
        pass


def test_fake_gpus_pick_slots_but_compute_on_cpu(tmp_path, clean_env):
    clean_env.setenv(devices.FAKE_GPUS_ENV, "2")
    with devices.select_device_for_job("auto", 2, lock_dir=tmp_path) as (dev0, text0):
        with devices.select_device_for_job("cuda", 2, lock_dir=tmp_path) as (dev1, text1):
            assert dev0 == dev1 == torch.device("cpu")
            assert text0 == "fake GPU slot 0 (CUDA_VISIBLE_DEVICES=0), computing on cpu, 2 threads"
            assert text1 == "fake GPU slot 1 (CUDA_VISIBLE_DEVICES=1), computing on cpu, 2 threads"
    # both released at the end of their blocks
    with devices.gpu_slot(2, tmp_path, timeout=0, set_env=False) as slot:
        assert slot.gpu == 0


def test_cpu_only_job_holds_its_slot_but_computes_on_cpu(tmp_path, clean_env):
    """A classical-backend job: takes what the run reserved for it, says it computes on the CPU."""
    clean_env.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    with devices.select_device_for_job("cuda", 1, lock_dir=tmp_path, cpu_only=True) as (dev, text):
        assert dev == "cpu"  # cpu_only jobs never import torch
        assert text == "GPU slot 0 (CUDA_VISIBLE_DEVICES=0) held, computing on cpu, 1 thread"
        with pytest.raises(TimeoutError):
            devices.acquire_gpu_slot(1, tmp_path, timeout=0, set_env=False)
    clean_env.setenv("CUDA_VISIBLE_DEVICES", "")
    lines: list[str] = []
    device, slot = devices.select_device("cuda", 1, tmp_path, log=lines.append, cpu_only=True)
    assert device == "cpu" and slot is None
    clean_env.setenv("SLURM_JOB_ID", "5")
    clean_env.setenv("CUDA_VISIBLE_DEVICES", "1")
    devices.select_device("auto", 1, tmp_path, log=lines.append, cpu_only=True)
    assert lines[-1] == ("device: GPU from Slurm job 5 (CUDA_VISIBLE_DEVICES=1) held, "
                         "computing on cpu, 1 thread")


def test_slurm_gpu_is_used_as_given(tmp_path, clean_env):
    """Under Slurm the picker takes no slot: Slurm's CUDA_VISIBLE_DEVICES stands."""
    clean_env.setenv("SLURM_JOB_ID", "123")
    clean_env.setenv("CUDA_VISIBLE_DEVICES", "1")
    clean_env.setenv(devices.FAKE_GPUS_ENV, "2")
    locks = tmp_path / "locks"
    lines: list[str] = []
    device, slot = devices.select_device("auto", 1, locks, log=lines.append)
    assert device == torch.device("cpu") and slot is None
    assert lines == ["device: fake GPU from Slurm job 123 (CUDA_VISIBLE_DEVICES=1), "
                     "computing on cpu, 1 thread"]
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"
    assert not locks.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a usable GPU")
def test_slurm_gpu_torch_cannot_use_falls_back_for_auto_only(tmp_path, clean_env):
    clean_env.setenv("SLURM_JOB_ID", "77")
    clean_env.setenv("CUDA_VISIBLE_DEVICES", "0")
    device, slot = devices.select_device("auto", 1, tmp_path, log=lambda m: None)
    assert device == torch.device("cpu") and slot is None
    with pytest.raises(ConfigError, match="Slurm job 77"):
        devices.select_device("cuda", 1, tmp_path, log=lambda m: None)


def test_slurm_job_without_gpu_runs_on_cpu(tmp_path, clean_env):
    clean_env.setenv("SLURM_JOB_ID", "9")
    clean_env.setenv(devices.FAKE_GPUS_ENV, "2")  # ignored: Slurm, not the picker, owns the GPUs
    lines: list[str] = []
    device, slot = devices.select_device("auto", 2, tmp_path / "locks", log=lines.append)
    assert device == torch.device("cpu") and slot is None
    assert lines == ["device: cpu, 2 threads (Slurm job 9 has no GPU)"]
    assert not (tmp_path / "locks").exists()
    with pytest.raises(ConfigError, match="given no GPU"):
        devices.select_device("cuda", 2, tmp_path)


GPU_CHILD = r"""
import os, sys, torch
from oldphoto.devices import select_device
device, slot = select_device("cuda", 2, sys.argv[1])
x = torch.ones(4, device=device)
print(device, slot.cuda_visible_devices, os.environ["CUDA_VISIBLE_DEVICES"],
      torch.cuda.device_count(), torch.backends.cuda.matmul.allow_tf32,
      torch.backends.cudnn.allow_tf32, float(x.sum()))
"""


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a real CUDA GPU")
def test_real_gpu_slot_restricts_the_job_to_one_device(tmp_path):
    """On a GPU machine: the job sees exactly its slot's GPU as cuda:0, with TF32 off."""
    proc = subprocess.run([sys.executable, "-c", GPU_CHILD, str(tmp_path)], env=child_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "device: cuda slot 0 (CUDA_VISIBLE_DEVICES=0)" in proc.stderr
    assert proc.stdout.split() == ["cuda:0", "0", "0", "1", "False", "False", "4.0"]
