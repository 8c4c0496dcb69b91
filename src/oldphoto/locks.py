"""Snakemake's directory lock after a crash: is anyone still holding it?

Snakemake locks its working directory (``.snakemake/locks/``) while it runs and removes the
lock when it ends.  After ``kill -9`` or a power cut the lock stays, and plain ``snakemake``
refuses to start until ``snakemake --unlock``.  The ``oldphoto`` command checks instead of
guessing: when no Snakemake process on this machine works in that directory, the lock is stale
and is removed (saying so); when one does, it is left alone and Snakemake reports the conflict.

Also the non-blocking ``flock`` that GPU slots (:mod:`oldphoto.devices`) and worker slots
(:mod:`oldphoto.worker.client`) are taken with; standard library only, as the job client needs.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path


def try_flock(path: str | Path, mode: int = 0o600) -> int | None:
    """Take an exclusive ``flock`` on ``path`` (created with ``mode`` if missing) without waiting:
    the open descriptor holding it, or None when another process holds it.  The kernel drops the
    lock when the descriptor is closed or its process dies, also on SIGKILL."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, mode)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        os.close(fd)
        if err.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return None
        raise
    return fd


def _cmdline(pid: str) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [os.fsdecode(part) for part in raw.split(b"\0") if part]


def is_snakemake(argv: list[str]) -> bool:
    """``snakemake ...``, ``python -m snakemake ...`` or a ``.../bin/snakemake`` script."""
    for i, arg in enumerate(argv[:3]):
        if Path(arg).name == "snakemake":
            return True
        if arg == "-m" and i + 1 < len(argv) and argv[i + 1] == "snakemake":
            return True
    return False


def snakemake_processes(workdir: str | Path) -> list[int]:
    """Pids of the Snakemake processes on this machine whose working directory is ``workdir``."""
    target = os.path.realpath(workdir)
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        if not is_snakemake(_cmdline(entry)):
            continue
        try:
            cwd = os.path.realpath(os.readlink(f"/proc/{entry}/cwd"))
        except OSError:
            continue
        if cwd == target:
            pids.append(int(entry))
    return pids


def lock_files(workdir: str | Path) -> list[Path]:
    folder = Path(workdir) / ".snakemake" / "locks"
    return sorted(folder.glob("*.lock")) if folder.is_dir() else []


def clear_stale_lock(workdir: str | Path) -> list[Path]:
    """Remove Snakemake's lock of ``workdir`` if no Snakemake process holds it; returns what was
    removed (nothing when there is no lock or a Snakemake process works there)."""
    locks = lock_files(workdir)
    if not locks or snakemake_processes(workdir):
        return []
    removed = []
    for lock in locks:
        try:
            lock.unlink()
            removed.append(lock)
        except FileNotFoundError:
            continue
    return removed
