"""Processes as ``/proc`` shows them (Linux): start times, liveness, ancestry, exit statuses.

A process is named by ``(pid, starttime)``, ``starttime`` being field 22 of ``/proc/<pid>/stat``
(clock ticks since boot), so a pid the kernel has reused for another process never passes for the
one that was meant.  A zombie counts as gone.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (field 3, state, is index 0)."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2:].split()


def process_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot, or None when there is no such process."""
    fields = _stat_fields(pid)
    if fields is None or len(fields) < 20:
        return None
    return int(fields[19])


def parent_pid(pid: int) -> int | None:
    """The parent of ``pid``, or None when it cannot be read."""
    fields = _stat_fields(pid)
    if fields is None or len(fields) < 2:
        return None
    return int(fields[1])


def process_alive(pid: int, starttime: int | None = None) -> bool:
    """Whether ``pid`` runs (not a zombie) and, when ``starttime`` is given (not None or 0),
    started then."""
    fields = _stat_fields(pid)
    if fields is None:
        return False
    if fields[0] in ("Z", "X"):
        return False
    return not starttime or (len(fields) >= 20 and int(fields[19]) == starttime)


def command_line(pid: int) -> list[str]:
    """``argv`` of ``pid`` (empty when unreadable or a kernel thread)."""
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def looks_like_snakemake(argv: list[str]) -> bool:
    """``snakemake ...`` (also as ``python /path/bin/snakemake ...``) or ``python -m snakemake``."""
    for arg in argv[:2]:
        if os.path.basename(arg) == "snakemake":
            return True
    return any(argv[i] == "-m" and argv[i + 1] == "snakemake"
               for i in range(min(len(argv) - 1, 4)))


def find_run_owner() -> tuple[int, int]:
    """``(pid, starttime)`` of the process whose end ends this run's workers.

    That is the **outermost** Snakemake among the ancestors of this process: Snakemake runs each
    ``run:`` job in its own short-lived ``python -m snakemake`` child, so the nearest one may be a
    single job, while the outermost is the user's run (inside a Slurm allocation, the Snakemake
    the job script started: the walk ends at ``slurmstepd``).  Without one, the parent of this
    process.
    """
    parent = os.getppid()
    owner = None
    pid: int | None = parent
    seen = 0
    while pid is not None and pid > 1 and seen < 256:
        if looks_like_snakemake(command_line(pid)):
            owner = pid
        pid = parent_pid(pid)
        seen += 1
    target = owner if owner is not None else parent
    return target, process_start_time(target) or 0


def describe_returncode(returncode: int) -> str:
    """``"exit status 3"`` or ``"killed by signal 11 (SIGSEGV)"`` for a subprocess returncode."""
    if returncode >= 0:
        return f"exit status {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = "unknown signal"
    return f"killed by signal {-returncode} ({name})"
