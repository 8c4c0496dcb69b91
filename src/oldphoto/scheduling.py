"""Three fixes for Snakemake's own process at archive scale, installed by
``workflow/rules/common.smk``.

1. One pending re-evaluation timer, not one per scheduling round
(:func:`coalesce_rate_limit_wakeups`).

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

2. Each function's signature inspected once (:func:`cache_function_signatures`).  Snakemake asks
``snakemake.common.get_function_params`` which arguments a callable takes — every input function,
params function and resource of every job, several times each, about 80 times per photo in this
workflow (about 820,000 inspections in a 10,000-photo dry run; caching them took it from 75 s to
67 s).  A function's signature does not change, so it is computed once per function (a bound
method: once per underlying function).  Functions that carry Snakemake's own
``_overwrite_params`` keep it.

3. Fewer garbage collections while the DAG is built (:func:`relax_garbage_collection`).  A
10,000-photo DAG is millions of long-lived objects (jobs, their files, wildcards); with Python's
default thresholds (700, 10, 10) the collector ran 8,921 times in that dry run and took 8.0 s of
its 64.5 s.  With these thresholds it runs 550 times (1.7 s; bench/dry_run_gc.py); nothing else
changes: cycles are still collected, just in larger batches (peak memory measured the same).
"""

from __future__ import annotations

import gc
import inspect
import threading
from typing import Any, Callable, Mapping

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


_SIGNATURES: dict[tuple[int, bool], tuple[Callable[..., Any], Mapping[str, inspect.Parameter]]] = {}
_MAX_CACHED = 10_000  # distinct functions: a workflow has a few dozen; a bound, not a leak


def function_params(func: Callable[..., Any]) -> Mapping[str, inspect.Parameter]:
    """``inspect.signature(func).parameters``, computed once per function (replaces
    ``snakemake.common.get_function_params``, same result)."""
    overwritten = getattr(func, "_overwrite_params", None)
    if overwritten is not None:
        return overwritten
    inner = getattr(func, "__func__", func)
    key = (id(inner), hasattr(func, "__self__"))
    cached = _SIGNATURES.get(key)
    if cached is None or cached[0] is not inner:  # the id of a function since collected
        if len(_SIGNATURES) >= _MAX_CACHED:
            _SIGNATURES.clear()
        cached = (inner, inspect.signature(func).parameters)
        _SIGNATURES[key] = cached
    return cached[1]


def cache_function_signatures() -> bool:
    """Install :func:`function_params` where Snakemake looks signatures up; whether it was."""
    try:
        import snakemake.common as common
        import snakemake.rules as rules
    except ImportError:
        return False
    installed = False
    for module in (common, rules):
        if hasattr(module, "get_function_params"):
            module.get_function_params = function_params
            installed = True
    return installed


GC_THRESHOLDS = (50_000, 20, 100)


def relax_garbage_collection(thresholds: tuple[int, int, int] = GC_THRESHOLDS) -> None:
    """Raise the collector's thresholds (never lowers one that is already larger)."""
    current = gc.get_threshold()
    gc.set_threshold(*(max(c, t) for c, t in zip(current, thresholds)))
