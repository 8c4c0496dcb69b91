"""A fix for Snakemake's scheduler at archive scale: one pending re-evaluation timer, not one per
scheduling round.

Snakemake (9.x, ``snakemake.scheduling.job_scheduler.JobScheduler``) limits job starts with
``--max-jobs-per-timespan`` (default 100/1s).  At the end of every scheduling round that leaves
jobs waiting it starts a ``threading.Timer`` that wakes the scheduler one timespan later, and the
round that timer triggers starts another one.  Every job that ends triggers a round too, so each
finished job adds a timer chain that lives as long as photos are queued behind busy cores: after
k jobs, k wake-ups per second, each a full round (ready jobs, their input sizes, job selection).
Measured (bench/results/scale.md, 200 tiny photos, official networks on 2 CPU cores): Snakemake
used 388 s of CPU in a 515 s run, competing with the jobs for the cores.

:func:`coalesce_rate_limit_wakeups` replaces that timer start with one that keeps at most one
timer pending per scheduler (a daemon thread, so it never delays the end of a run): the rate
limit still gets its re-evaluation within one timespan, and the scheduler wakes as often as jobs
end.  When Snakemake's scheduler does not have the method (another version), nothing changes.
"""

from __future__ import annotations

import threading
from typing import Any

_ATTRIBUTE = "_oldphoto_pending_timer"


def _schedule_one_reevaluation(scheduler: Any, delay: float) -> None:
    """At most one pending wake-up of ``scheduler`` (replaces ``_schedule_reevalutation``)."""
    pending = getattr(scheduler, _ATTRIBUTE, None)
    if pending is not None and pending.is_alive():
        return
    timer = threading.Timer(delay, scheduler._open_jobs.release)
    timer.daemon = True
    setattr(scheduler, _ATTRIBUTE, timer)
    timer.start()


def coalesce_rate_limit_wakeups() -> bool:
    """Install the fix in this process's Snakemake; whether it was installed."""
    try:
        from snakemake.scheduling.job_scheduler import JobScheduler
    except ImportError:
        return False
    if not hasattr(JobScheduler, "_schedule_reevalutation"):
        return False
    JobScheduler._schedule_reevalutation = _schedule_one_reevaluation
    return True
