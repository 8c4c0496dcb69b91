"""Progress lines for long single jobs.

Snakemake reports progress per job ("5 of 14 steps done"); a single job that runs for minutes
(a large photo through the non-local mapping on a CPU) would otherwise write nothing until it
ends.  :class:`Heartbeat` writes ``still working on <what> (<N> s)`` to the job's log every few
seconds from a daemon thread, so ``tail -f`` on a log shows the job is alive::

    with Heartbeat(job.log, every=5.0, what="restore_global photo.png"):
        result = stages.restore_global(...)
"""

from __future__ import annotations

import threading
import time
from typing import Callable


class Heartbeat:
    """Context manager: log ``still working on <what> (<N> s)`` every ``every`` seconds.

    Args:
        log: called with one line of text each beat (e.g. ``Job.log``); it runs on the heartbeat
            thread, so it must be safe to call while the job itself logs (a write and a flush
            of one line, as ``Job.log`` does, is).
        every: seconds between lines (> 0); the first line comes after one interval, so jobs
            shorter than that log nothing extra.
        what: what the job is doing, as the line names it.

    The thread is a daemon (it never keeps a dying job alive) and is stopped and joined on exit,
    also when the block raises; no line is written after ``__exit__`` returns.  ``beats`` counts
    the lines written.  An exception raised by ``log`` stops the heartbeat, never the job.
    """

    def __init__(self, log: Callable[[str], None], every: float = 5.0,
                 what: str = "this job") -> None:
        if not every > 0:
            raise ValueError(f"every must be > 0 seconds, got {every}")
        self.log = log
        self.every = float(every)
        self.what = what
        self.beats = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._started = 0.0

    def __enter__(self) -> Heartbeat:
        self._started = time.monotonic()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat {self.what}",
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        with self._lock:  # a beat in progress finishes before the job goes on
            self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            with self._lock:
                if self._stop.is_set():
                    return
                elapsed = time.monotonic() - self._started
                try:
                    self.log(f"still working on {self.what} ({elapsed:.0f} s)")
                except Exception:  # noqa: BLE001 - a broken log must not break the job
                    return
                self.beats += 1
