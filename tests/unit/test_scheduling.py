"""oldphoto.scheduling: Snakemake's rate-limit re-evaluation keeps one pending timer."""

from __future__ import annotations

import threading
import time

from oldphoto import scheduling


class FakeScheduler:
    def __init__(self) -> None:
        self._open_jobs = threading.Semaphore(0)


def test_one_pending_wakeup_however_many_rounds_ask():
    scheduler = FakeScheduler()
    before = threading.active_count()
    for _ in range(50):
        scheduling._schedule_one_reevaluation(scheduler, 0.3)
    assert threading.active_count() - before <= 1
    assert scheduler._open_jobs.acquire(timeout=5)  # the wake-up comes
    assert not scheduler._open_jobs.acquire(timeout=0.5)  # once
    time.sleep(0.05)
    scheduling._schedule_one_reevaluation(scheduler, 0.1)  # the next round may ask again
    assert scheduler._open_jobs.acquire(timeout=5)


def test_the_timer_never_delays_the_end_of_a_run():
    scheduler = FakeScheduler()
    scheduling._schedule_one_reevaluation(scheduler, 3600)
    timer = getattr(scheduler, scheduling._ATTRIBUTE)
    assert timer.daemon and timer.is_alive()
    timer.cancel()


def test_installed_into_snakemakes_scheduler():
    from snakemake.scheduling.job_scheduler import JobScheduler

    original = JobScheduler._schedule_reevalutation
    try:
        assert scheduling.coalesce_rate_limit_wakeups()
        assert JobScheduler._schedule_reevalutation is scheduling._schedule_one_reevaluation
    finally:
        JobScheduler._schedule_reevalutation = original
