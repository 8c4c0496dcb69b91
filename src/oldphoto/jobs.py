"""The harness of one workflow job: log file, device, networks, failure reporting.

Every script in ``workflow/scripts/`` is ``run_job(snakemake, main)`` around a few library calls.
A failure of one photo is written to the job's log as one line::

    FAILED <rule> <image> :: <kind>: <file>: <reason>

and the job exits 1, so Snakemake (``--keep-going``) finishes every other photo and the run
summary lists the reason.  Nothing heavy is imported unless the job needs it.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
import warnings
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable, Mapping

from oldphoto.errors import OldPhotoError
from oldphoto.progress import Heartbeat
from oldphoto.workflow_support import FAILED_PREFIX


class Job:
    """One running job: its parameters, log and (for network rules) device and networks."""

    def __init__(self, params: Mapping[str, Any], inputs: Any, log_path: str | None,
                 threads: int = 1) -> None:
        self.params = dict(params)
        self.inputs = inputs
        self.threads = max(1, int(threads))
        self.rule = self.params.get("rule", "job")
        self.image = self.params.get("image", "")
        self.backend = self.params.get("backend", "classical")
        self._log = open(log_path, "a", encoding="utf-8") if log_path else None
        self._lock = threading.Lock()  # the heartbeat thread logs too
        self._started = time.perf_counter()
        self.device: Any = None
        self._stack = ExitStack()

    # -- logging ------------------------------------------------------------------------------
    def log(self, message: str) -> None:
        line = f"[{time.perf_counter() - self._started:7.2f}s] {message}"
        with self._lock:
            if self._log:
                self._log.write(line + "\n")
                self._log.flush()
            else:
                print(line, file=sys.stderr)

    def fail(self, reason: str) -> None:
        line = f"{FAILED_PREFIX}{self.rule} {self.image} :: {reason}"
        if self._log:
            self._log.write(line + "\n")
            self._log.flush()
        print(line, file=sys.stderr)

    # -- resources ------------------------------------------------------------------------------
    def open_device(self) -> None:
        """Pick this job's device (GPU slot on a workstation, Slurm's GPU, or CPU threads)."""
        from oldphoto.devices import select_device_for_job

        self.device, description = self._stack.enter_context(
            select_device_for_job(
                self.params["device"],
                self.threads,
                jobs_per_gpu=self.params.get("jobs_per_gpu", 1),
                cpu_only=self.backend != "pretrained",
            )
        )
        self.log(f"device: {description}")

    def network(self, name: str):
        """The network ``name`` loaded from its verified cache (an input of the rule)."""
        from oldphoto.checkpoints import load_network

        start = time.perf_counter()
        net = load_network(name, self.inputs[name], device=self.device or "cpu")
        self.log(f"loaded {name} in {time.perf_counter() - start:.2f}s")
        return net

    def read_photo(self, path: str | Path):
        from oldphoto.imageio import read_image

        photo = read_image(path, max_pixels=self.params.get("max_image_pixels", 89_478_485))
        for note in photo.notes:
            self.log(f"{path}: {note}")
        return photo

    def write_png(self, path: str | Path, rgb, alpha=None) -> None:
        from oldphoto.imageio import write_png

        write_png(path, rgb, alpha=alpha, text=self.params.get("metadata"))

    def close(self) -> None:
        self._stack.close()
        if self._log:
            self._log.close()
            self._log = None


# How native libraries report a failed allocation with their own exception types: OpenCV's
# cv2.error "(-4:Insufficient memory) Failed to allocate ...", torch's OutOfMemoryError
# "CUDA out of memory" and CPU allocator "can't allocate memory", a C++ std::bad_alloc.
_ALLOCATION_FAILURES = ("insufficient memory", "out of memory", "can't allocate memory",
                        "cannot allocate memory", "bad_alloc")


def _is_allocation_failure(err: BaseException) -> bool:
    text = str(err).lower()
    return any(marker in text for marker in _ALLOCATION_FAILURES)


def _out_of_memory(job: Job, params: Mapping[str, Any]) -> str:
    return (f"out of memory: {job.image} needs more than this job's memory "
            f"(memory_budget_mb={params.get('memory_budget_mb')})")


def run_job(snakemake: Any, main: Callable[[Job], None]) -> None:
    """Run ``main(job)`` for a Snakemake ``script:`` job and end the process: exit 0, or exit 1
    with one clear line on failure (no interpreter teardown either way)."""
    params = snakemake.params.job
    log_path = snakemake.log[0] if len(snakemake.log) else None
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        Path(log_path).write_text("", encoding="utf-8")
    job = Job(params, snakemake.input, log_path, threads=snakemake.threads)
    # Library warnings (e.g. an all-scratched HR scale) belong in the job's log.
    warnings.showwarning = lambda message, category, *args, **kwargs: job.log(
        f"warning: {message}")
    code = 0
    try:
        job.log(f"{job.rule} {job.image}: backend {job.backend}")
        if params.get("network"):
            job.open_device()
        with Heartbeat(job.log, every=5.0, what=f"{job.rule} {job.image}"):
            main(job)
        job.log("done")
    except OldPhotoError as err:
        job.fail(err.one_line())
        code = 1
    except MemoryError:
        job.fail(_out_of_memory(job, params))
        code = 1
    except Exception as err:  # noqa: BLE001 - one line for the user, the traceback in the log
        job.log(traceback.format_exc())
        if _is_allocation_failure(err):
            job.fail(f"{_out_of_memory(job, params)} ({type(err).__name__}: "
                     f"{' '.join(str(err).split())[:200]})")
        else:
            job.fail(f"internal error ({type(err).__name__}): {err}")
        code = 1
    finally:
        job.close()
    # End the process here, also on success: tearing down an interpreter that holds torch and
    # loaded networks takes ~1 s on a busy 2-core machine (bench/job_overhead.py), and every
    # output is already written and closed.  On failure Snakemake deletes the outputs.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
