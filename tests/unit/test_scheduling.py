"""oldphoto.scheduling: one pending rate-limit re-evaluation, signatures inspected once, relaxed
garbage collection."""

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


def test_function_params_match_inspect_and_are_computed_once(monkeypatch):
    import inspect

    def get_thing(wildcards, input, threads=1):
        return wildcards

    class Holder:
        def evaluate(self, *args, **kwargs):
            return args

    calls = []
    real = inspect.signature
    monkeypatch.setattr(scheduling.inspect, "signature",
                        lambda f: calls.append(f) or real(f))
    first = scheduling.function_params(get_thing)
    assert list(first) == ["wildcards", "input", "threads"]
    assert scheduling.function_params(get_thing) is first and len(calls) == 1
    # a bound method: its signature without self, once for every instance of the class
    bound = scheduling.function_params(Holder().evaluate)
    assert list(bound) == ["args", "kwargs"]
    assert scheduling.function_params(Holder().evaluate) is bound and len(calls) == 2
    # Snakemake's own override wins
    get_thing._overwrite_params = {"wildcards": None}
    assert scheduling.function_params(get_thing) == {"wildcards": None}


def test_function_params_installed_where_snakemake_looks():
    import snakemake.common as common
    import snakemake.rules as rules

    originals = common.get_function_params, rules.get_function_params
    try:
        assert scheduling.cache_function_signatures()
        assert common.get_function_params is scheduling.function_params
        assert rules.get_function_params is scheduling.function_params

        def f(wildcards, input):
            return None
        # what Snakemake derives from it is unchanged
        assert common.get_input_function_aux_params(f, {"input": 1, "output": 2}) == {"input": 1}
    finally:
        common.get_function_params, rules.get_function_params = originals


def test_garbage_collection_relaxed_never_tightened():
    import gc

    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        scheduling.relax_garbage_collection()
        assert gc.get_threshold() == scheduling.GC_THRESHOLDS
        gc.set_threshold(100_000, 50, 200)
        scheduling.relax_garbage_collection()
        assert gc.get_threshold() == (100_000, 50, 200)
    finally:
        gc.set_threshold(*before)
