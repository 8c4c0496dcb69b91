"""Which device a job computes on: a GPU slot on a workstation, Slurm's GPU, or CPU threads.

Snakemake limits how many GPU jobs run at once (``--resources gpu=N``) but never tells a local job
*which* GPU it may use (snakemake/snakemake#281).  On a workstation every network job therefore
takes a **slot** itself: slot ``(gpu, share)``, ``share < jobs_per_gpu``, is one lock file
``<lock_dir>/gpu-<gpu>.<share>.lock`` held with ``fcntl.flock`` for the job's lifetime.  The kernel
drops the lock when the process exits for any reason (also SIGKILL, OOM kill), so a crashed job
never leaves a slot taken.  The chosen GPU is put into ``CUDA_VISIBLE_DEVICES`` before torch
initialises CUDA, so the job sees exactly one device, ``cuda:0``.

Under SLURM (``SLURM_JOB_ID`` set) no slot is picked: Slurm has already allocated the GPUs and set
``CUDA_VISIBLE_DEVICES`` for the job, and that is used as it is.

How many GPUs a workstation has is counted without initialising CUDA in the job itself:

1. ``CUDA_VISIBLE_DEVICES`` when set (its entries up to the first invalid one, as CUDA reads it;
   the slots then map to those entries, so ``CUDA_VISIBLE_DEVICES=2,3`` gives slots on GPUs 2, 3);
2. else the ``GPU n:`` lines of ``nvidia-smi -L`` when ``nvidia-smi`` is on PATH;
3. else 0 for a torch built without CUDA, or ``torch.cuda.device_count()`` run in a child process
   (a CUDA call in the job itself would freeze ``CUDA_VISIBLE_DEVICES`` before the slot is known).

Testing hook: ``OLDPHOTO_FAKE_GPUS=N`` makes the picker believe N GPUs exist (workstation slots,
or Slurm's fake GRES GPUs) while the job computes on the CPU, and the log line says so.
``OLDPHOTO_GPU_LOCK_DIR`` overrides the lock folder (default ``/tmp/oldphoto-gpu-slots-<uid>``,
deliberately not ``$TMPDIR``, which may differ per job); ``OLDPHOTO_GPU_SLOT_TRACE=<file>`` appends
one JSON line per slot taken and released (pid, slot, wall-clock time) for tests and diagnosis.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from oldphoto.errors import ConfigError
from oldphoto.locks import try_flock

DEVICES = ("auto", "cpu", "cuda")
FAKE_GPUS_ENV = "OLDPHOTO_FAKE_GPUS"
LOCK_DIR_ENV = "OLDPHOTO_GPU_LOCK_DIR"
TRACE_ENV = "OLDPHOTO_GPU_SLOT_TRACE"

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------
# Counting GPUs
# ------------------------------------------------------------------------------------------------
_DEVICE_ENTRY = re.compile(r"^(\d+|GPU-[0-9A-Za-z-]+|MIG-[0-9A-Za-z/-]+)$")


def visible_device_entries(value: str) -> list[str]:
    """The devices a ``CUDA_VISIBLE_DEVICES`` value makes visible (CUDA stops at the first invalid
    entry, so ``"0,-1,1"`` is ``["0"]`` and ``""`` or ``"-1"`` is none)."""
    entries = []
    for raw in value.split(","):
        entry = raw.strip()
        if not _DEVICE_ENTRY.match(entry):
            break
        entries.append(entry)
    return entries


def count_gpus() -> tuple[int, str]:
    """``(number of visible CUDA GPUs, how it was counted)``; never initialises CUDA here."""
    fake = fake_gpu_count()
    if fake is not None:
        return fake, f"{FAKE_GPUS_ENV}={fake}"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len(visible_device_entries(visible)), f"CUDA_VISIBLE_DEVICES={visible!r}"
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            proc = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30)
            if proc.returncode == 0:
                count = sum(1 for line in proc.stdout.splitlines() if line.startswith("GPU "))
                return count, "nvidia-smi -L"
        except (OSError, subprocess.SubprocessError):
            pass
    import torch

    if not torch.backends.cuda.is_built():
        return 0, "torch built without CUDA"
    proc = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.cuda.device_count())"],
        capture_output=True, text=True, timeout=120,
    )
    try:
        return int(proc.stdout.strip().splitlines()[-1]), "torch.cuda.device_count() (child)"
    except (ValueError, IndexError):
        return 0, "torch.cuda.device_count() failed in a child process"


def fake_gpu_count() -> int | None:
    """``OLDPHOTO_FAKE_GPUS`` as a count, or None when unset."""
    value = os.environ.get(FAKE_GPUS_ENV, "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise ConfigError(None, f"{FAKE_GPUS_ENV} must be a whole number, not {value!r}")
    return int(value)


# ------------------------------------------------------------------------------------------------
# Slots
# ------------------------------------------------------------------------------------------------
def default_lock_dir() -> Path:
    """``$OLDPHOTO_GPU_LOCK_DIR``, else ``/tmp/oldphoto-gpu-slots-<uid>`` (one per user and
    machine: every job of every run on this machine must see the same lock files)."""
    configured = os.environ.get(LOCK_DIR_ENV)
    if configured:
        return Path(configured)
    return Path("/tmp") / f"oldphoto-gpu-slots-{os.getuid()}"


@dataclass
class GpuSlot:
    """A held slot: share ``share`` of GPU number ``gpu`` (an index into the visible devices)."""

    gpu: int
    share: int
    jobs_per_gpu: int
    cuda_visible_devices: str
    lock_path: Path
    _fd: int | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        """``"1"`` for GPU 1 (``"1.0"`` when GPUs are shared by several jobs)."""
        return str(self.gpu) if self.jobs_per_gpu == 1 else f"{self.gpu}.{self.share}"

    def release(self) -> None:
        if self._fd is None:
            return
        _trace("release", self)
        fd, self._fd = self._fd, None
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _trace(event: str, slot: GpuSlot) -> None:
    path = os.environ.get(TRACE_ENV)
    if not path:
        return
    record = {"event": event, "slot": slot.label, "gpu": slot.gpu, "share": slot.share,
              "pid": os.getpid(), "time": time.time()}
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(record) + "\n").encode())  # one O_APPEND write: atomic
    finally:
        os.close(fd)


def _try_lock(path: Path) -> int | None:
    """:func:`~oldphoto.locks.try_flock`, then the holder's pid into the file (for a person
    looking at who holds a slot)."""
    fd = try_flock(path, 0o644)
    if fd is None:
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def acquire_gpu_slot(n_slots: int, lock_dir: str | Path | None = None, jobs_per_gpu: int = 1,
                     *, poll_seconds: float = 0.25, timeout: float | None = None,
                     log: Log | None = None, set_env: bool = True,
                     only_gpu: int | None = None) -> GpuSlot:
    """Take a free slot (see :func:`gpu_slot`); the caller releases it (or exits).

    ``only_gpu``: take a slot of that GPU only (a warm worker whose CUDA context lives there).
    """
    if n_slots < 1:
        raise ValueError(f"no GPU slots to pick from (n_slots={n_slots})")
    if jobs_per_gpu < 1:
        raise ValueError(f"jobs_per_gpu must be >= 1, not {jobs_per_gpu}")
    folder = Path(lock_dir) if lock_dir is not None else default_lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    visible = visible_device_entries(os.environ.get("CUDA_VISIBLE_DEVICES", ""))
    # Spread over the GPUs first: share 0 of every GPU, then share 1, ...
    order = [(gpu, share) for share in range(jobs_per_gpu) for gpu in range(n_slots)
             if only_gpu is None or gpu == only_gpu]
    deadline = None if timeout is None else time.monotonic() + timeout
    waiting_logged = False
    while True:
        for gpu, share in order:
            path = folder / f"gpu-{gpu}.{share}.lock"
            fd = _try_lock(path)
            if fd is None:
                continue
            # A parent CUDA_VISIBLE_DEVICES=2,3 means slot 0 is device 2 and slot 1 is device 3.
            device = visible[gpu] if len(visible) >= n_slots else str(gpu)
            slot = GpuSlot(gpu, share, jobs_per_gpu, device, path, fd)
            if set_env:
                os.environ["CUDA_VISIBLE_DEVICES"] = device
            _trace("acquire", slot)
            return slot
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(f"no free GPU slot among {len(order)} in {folder} after {timeout}s")
        if not waiting_logged:
            (log or _stderr)(f"all {len(order)} GPU slots in {folder} are busy; waiting")
            waiting_logged = True
        time.sleep(poll_seconds * random.uniform(0.8, 1.2))


@contextlib.contextmanager
def gpu_slot(n_slots: int, lock_dir: str | Path | None = None, jobs_per_gpu: int = 1,
             **kwargs: Any) -> Iterator[GpuSlot]:
    """Hold one of ``n_slots * jobs_per_gpu`` slots for the ``with`` block.

    Tries every slot without blocking (GPU by GPU, then the next share of each); when all are
    taken, polls until one frees up (``timeout`` seconds at most, None = forever).  Sets
    ``CUDA_VISIBLE_DEVICES`` to the slot's GPU; call this before torch touches CUDA.  The lock is
    released on exit from the block, and by the kernel if the process dies.
    """
    slot = acquire_gpu_slot(n_slots, lock_dir, jobs_per_gpu, **kwargs)
    try:
        yield slot
    finally:
        slot.release()


# ------------------------------------------------------------------------------------------------
# Device selection
# ------------------------------------------------------------------------------------------------
def slurm_gpus() -> tuple[str, str] | None:
    """``(job id, CUDA_VISIBLE_DEVICES)`` when this is a Slurm job that Slurm gave GPUs."""
    job = os.environ.get("SLURM_JOB_ID")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if job and visible is not None and visible_device_entries(visible):
        return job, visible
    return None


def _use_cpu(threads: int, torch_needed: bool = True) -> Any:
    """The CPU with ``threads`` threads; a job that never uses torch does not import it (~2 s)."""
    if not torch_needed:
        os.environ["OMP_NUM_THREADS"] = str(threads)
        return "cpu"
    import torch

    torch.set_num_threads(threads)
    return torch.device("cpu")


def _use_cuda(threads: int) -> Any:
    import torch

    torch.set_num_threads(threads)
    # Bit-stable float32 results: no TF32 in matmuls and convolutions.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return torch.device("cuda", 0)


def _cuda_usable() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.device_count() > 0


def select_device(config_device: str, threads: int, lock_dir: str | Path | None = None,
                  jobs_per_gpu: int = 1, log: Log | None = None,
                  cpu_only: bool = False) -> tuple[Any, GpuSlot | None]:
    """Choose this job's device and log one line saying which (``device: ...``).

    - ``cpu``: the CPU with ``threads`` torch threads (the rule's ``threads:``).
    - ``auto``/``cuda`` under Slurm (``SLURM_JOB_ID`` and Slurm's ``CUDA_VISIBLE_DEVICES``): the
      GPU Slurm allocated, no slot.  A Slurm job without GPUs runs on the CPU (``auto``).
    - ``auto``/``cuda`` on a workstation: a free GPU slot (blocking until one is free) and
      ``cuda:0`` restricted to it; ``auto`` falls back to the CPU when there is no GPU.
    - ``OLDPHOTO_FAKE_GPUS=N``: slots as if N GPUs existed, computing on the CPU.
    - ``cpu_only=True`` (a job that never uses torch on a GPU, e.g. the classical backend): the
      slot or Slurm GPU is still taken, so the GPU accounting of the run stays what Snakemake and
      Slurm reserved, but the job computes on the CPU and its line says so.

    ``cuda`` without a usable GPU raises ``ConfigError``.  The returned slot (or None) is held until
    ``slot.release()`` or the end of the process; prefer :func:`select_device_for_job`.
    """
    device, slot, description = _select(config_device, threads, lock_dir, jobs_per_gpu, log,
                                        cpu_only)
    (log or _stderr)(f"device: {description}")
    return device, slot


@contextlib.contextmanager
def select_device_for_job(config_device: str, threads: int, jobs_per_gpu: int = 1,
                          lock_dir: str | Path | None = None, log: Log | None = None,
                          cpu_only: bool = False,
                          only_gpu: int | None = None) -> Iterator[tuple[Any, str]]:
    """:func:`select_device` for the length of a ``with`` block: yields ``(device, description)``
    (the caller logs ``device: <description>``) and releases the GPU slot at the end."""
    device, slot, description = _select(config_device, threads, lock_dir, jobs_per_gpu, log,
                                        cpu_only, only_gpu)
    try:
        yield device, description
    finally:
        if slot is not None:
            slot.release()


def _select(config_device: str, threads: int, lock_dir: str | Path | None, jobs_per_gpu: int,
            log: Log | None, cpu_only: bool = False,
            only_gpu: int | None = None) -> tuple[Any, GpuSlot | None, str]:
    if config_device not in DEVICES:
        raise ConfigError(None, f"device must be one of {', '.join(DEVICES)}, "
                                f"not {config_device!r}")
    threads = max(1, int(threads))
    cpu = f"{threads} thread{'s' if threads != 1 else ''}"
    if config_device == "cpu":
        return _use_cpu(threads, not cpu_only), None, f"cpu, {cpu}"

    if cpu_only:
        config_device = "auto"  # nothing will run on a GPU: never fail for the lack of one
    fake = fake_gpu_count()
    slurm = slurm_gpus()
    if os.environ.get("SLURM_JOB_ID"):
        job = os.environ["SLURM_JOB_ID"]
        if slurm is None:
            if config_device == "cuda":
                raise ConfigError(None, f"device cuda, but Slurm job {job} was given no GPU "
                                        "(set gpu_per_job >= 1)")
            return _use_cpu(threads, not cpu_only), None, f"cpu, {cpu} (Slurm job {job} has no GPU)"
        visible = slurm[1]
        where = f"Slurm job {job} (CUDA_VISIBLE_DEVICES={visible})"
        if fake is not None:
            return _use_cpu(threads, not cpu_only), None, f"fake GPU from {where}, computing on cpu, {cpu}"
        if cpu_only:
            return _use_cpu(threads, not cpu_only), None, f"GPU from {where} held, computing on cpu, {cpu}"
        if _cuda_usable():
            return _use_cuda(threads), None, f"cuda from {where}, {cpu}"
        if config_device == "cuda":
            raise ConfigError(None, f"device cuda, but torch cannot use the GPU of {where}")
        return _use_cpu(threads, not cpu_only), None, f"cpu, {cpu} (torch cannot use the GPU of {where})"

    n_gpus, counted_by = count_gpus()
    if n_gpus == 0:
        if config_device == "cuda":
            raise ConfigError(None, f"device cuda, but no GPU is visible ({counted_by})")
        return _use_cpu(threads, not cpu_only), None, f"cpu, {cpu} (no GPU: {counted_by})"
    slot = acquire_gpu_slot(n_gpus, lock_dir, jobs_per_gpu, log=log, only_gpu=only_gpu)
    where = f"slot {slot.label} (CUDA_VISIBLE_DEVICES={slot.cuda_visible_devices})"
    if fake is not None:
        return _use_cpu(threads, not cpu_only), slot, f"fake GPU {where}, computing on cpu, {cpu}"
    if cpu_only:
        return _use_cpu(threads, not cpu_only), slot, f"GPU {where} held, computing on cpu, {cpu}"
    if _cuda_usable():
        return _use_cuda(threads), slot, f"cuda {where}, {cpu}"
    slot.release()
    if config_device == "cuda":
        raise ConfigError(None, f"device cuda, but torch cannot use a GPU ({counted_by} counts "
                                f"{n_gpus}; is this torch built with CUDA?)")
    reason = f"torch cannot use the {n_gpus} GPU(s) {counted_by} lists"
    return _use_cpu(threads, not cpu_only), None, f"cpu, {cpu} ({reason})"
