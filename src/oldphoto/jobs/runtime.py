"""Running one job in this process: its log, device, cached models, typed settings, failure line.

A job request (:func:`oldphoto.jobs.protocol.parse_command_line`, from the rule's ``shell:``
line) is a plain dict::

    {"task": "restore_global", "rule": "restore_global", "image": "a",
     "inputs": {"image": "in/a.png"}, "outputs": {"restored": "..."},
     "params": {"mode": "scratch", "triage": "false", ...},
     "scheduling": {"device": "cpu", "threads": 2, ...}, "log": "logs/restore_global/a.log"}

:func:`run_request` runs it in this process — a warm worker serving many jobs, or the job's own
process — and returns ``{"ok": bool, "message": str}``.  The task reads its settings typed
(:attr:`Job.params`, :func:`oldphoto.jobs.protocol.read_settings`).  A failure of one photo is
written to the job's log as one line (:func:`oldphoto.jobs.protocol.failed_line`)::

    FAILED <rule> <image> :: <kind>: <file>: <reason>

which the entry point repeats on stderr (unless the console is quiet) before exiting 1, so
Snakemake (``--keep-going``) finishes every other photo and the run summary lists the reason.
Networks and dlib's models are cached in :data:`SESSION` for the life of the process, so a warm
worker loads each once.
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
from oldphoto.jobs import protocol

class Session:
    """What a process keeps between jobs: loaded networks and face models, its GPU binding."""

    def __init__(self) -> None:
        self.networks: dict[tuple, Any] = {}
        self.face_models: dict[tuple, Any] = {}
        self.original_visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        self.bound_gpu: int | None = None  # a CUDA context exists: stay on this GPU

    def network(self, name: str, cache_file: str, device: Any):
        from oldphoto.checkpoints import load_network

        stat = os.stat(cache_file)
        key = (name, os.path.realpath(cache_file), stat.st_size, stat.st_mtime_ns, str(device))
        if key not in self.networks:
            # one copy per network name: a replaced cache file evicts the old network
            for old in [k for k in self.networks if k[0] == name]:
                del self.networks[old]
            self.networks[key] = load_network(name, cache_file, device=device)
            return self.networks[key], False
        return self.networks[key], True

    def faces(self, landmarks: str, detector: str = "hog"):
        from oldphoto import faces

        key = (landmarks, detector)
        if key not in self.face_models:
            self.face_models[key] = faces.load_face_models(landmarks, detector)
            return self.face_models[key], False
        return self.face_models[key], True


SESSION = Session()


class Job:
    """One running job: its files, settings (typed), scheduling, log and (network tasks) device.

    Attributes:
        params: the task's settings, typed (:meth:`read_params`; ``None``: does not apply).
        scheduling: where and how fast it runs (:data:`oldphoto.jobs.protocol.SCHEDULING`) and
            its ``threads``.
    """

    def __init__(self, request: Mapping[str, Any], session: Session = SESSION) -> None:
        self.request = request
        self.task = request["task"]
        self.rule = request.get("rule") or self.task
        self.image = request.get("image", "")
        self.params: dict[str, Any] = {}
        self.scheduling: dict[str, Any] = dict(protocol.read_scheduling({}))
        self.scheduling.update(request.get("scheduling") or {})
        self.inputs: dict[str, Any] = dict(request.get("inputs") or {})
        self.outputs: dict[str, Any] = dict(request.get("outputs") or {})
        self.threads = max(1, int(self.scheduling.get("threads", 1)))
        self.session = session
        self.device: Any = None
        self._stack = ExitStack()
        log_path = request.get("log")
        self._log = None
        if log_path:
            Path(log_path).parent.mkdir(parents=True, exist_ok=True)
            self._log = open(log_path, "w", encoding="utf-8")
        self._lock = threading.Lock()  # the heartbeat thread logs too
        self._started = time.perf_counter()

    def read_params(self) -> None:
        """The task's settings, typed, from the request's texts; a task outside the protocol's
        table (a test's own) takes none.

        Raises:
            ValueError: a setting missing, undeclared or not of its type.
        """
        texts = self.request.get("params") or {}
        if self.task in protocol.TASKS:
            self.params = protocol.read_settings(self.task, texts)
        elif texts:
            raise ValueError(f"task {self.task!r} declares no settings; got {sorted(texts)}")

    # -- files ----------------------------------------------------------------------------------
    def input(self, name: str) -> str:
        value = self.inputs[name]
        return value[0] if isinstance(value, list) else value

    def inputs_list(self, name: str) -> list[str]:
        value = self.inputs.get(name, [])
        return list(value) if isinstance(value, list) else [value]

    def output(self, name: str) -> str:
        value = self.outputs[name]
        return value[0] if isinstance(value, list) else value

    # -- logging --------------------------------------------------------------------------------
    def elapsed(self) -> float:
        """Seconds since this job started (in its worker or process)."""
        return time.perf_counter() - self._started

    def log(self, message: str) -> None:
        line = f"[{time.perf_counter() - self._started:7.2f}s] {message}"
        with self._lock:
            if self._log:
                self._log.write(line + "\n")
                self._log.flush()
            else:
                print(line, file=sys.stderr)

    def fail_line(self, reason: str) -> str:
        line = protocol.failed_line(self.rule, self.image, reason)
        if self._log:
            self._log.write(line + "\n")
            self._log.flush()
        return line

    # -- resources ------------------------------------------------------------------------------
    def open_device(self) -> None:
        """This job's device: a GPU slot on a workstation, Slurm's GPU, or CPU threads.

        In a warm worker the slot is taken per job (as a job process would) and, once a CUDA
        context exists, always on the GPU the worker is bound to.
        """
        from oldphoto.devices import select_device_for_job

        session = self.session
        if session.original_visible is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = session.original_visible
        self.device, description = self._stack.enter_context(
            select_device_for_job(
                self.scheduling["device"], self.threads,
                jobs_per_gpu=self.scheduling["jobs_per_gpu"],
                cpu_only=self.params.get("backend") != "pretrained",
                only_gpu=session.bound_gpu,
            )
        )
        if getattr(self.device, "type", None) == "cuda" and session.bound_gpu is None:
            session.bound_gpu = _slot_gpu(description)
        self.log(f"device: {description}")

    def network(self, name: str):
        """The network ``name`` from its verified cache (an input of the rule), cached."""
        start = time.perf_counter()
        net, warm = self.session.network(name, self.input(name), self.device or "cpu")
        how = "already loaded" if warm else f"loaded in {time.perf_counter() - start:.2f}s"
        self.log(f"loaded {name} ({how})")
        return net

    def face_models(self, landmarks: str, detector: str = "hog"):
        models, warm = self.session.faces(landmarks, detector)
        self.log(f"face models {'already loaded' if warm else 'loaded'}")
        return models

    def read_photo(self, path: str | Path):
        """A decoded photo (:func:`oldphoto.decode.read_image`), its notes in this job's log."""
        from oldphoto.decode import read_image

        return self._noted(path, read_image(path, max_pixels=self._max_pixels()))

    def read_original(self, path: str | Path):
        """A photo as the restoration sees it, in the sRGB working space
        (:func:`oldphoto.archival.master.read_original`), its notes in this job's log."""
        from oldphoto.archival.master import read_original

        return self._noted(path, read_original(path, max_pixels=self._max_pixels()))

    def _max_pixels(self) -> int:
        from oldphoto.decode import DEFAULT_MAX_PIXELS

        limit = self.scheduling["max_image_pixels"]
        return DEFAULT_MAX_PIXELS if limit is None else limit

    def _noted(self, path: str | Path, photo):
        for note in photo.notes:
            self.log(f"{path}: {note}")
        return photo

    def metadata(self) -> dict[str, str]:
        """What an image records about how it was made: version, backend, and the settings that
        shaped it (:func:`oldphoto.jobs.protocol.image_record`: not the backend, stated on its
        own, nor what shapes only the report's views)."""
        import json

        from oldphoto import __version__

        record = (protocol.image_record(self.task, self.params)
                  if self.task in protocol.TASKS else {})
        return {
            "oldphoto:version": __version__,
            "oldphoto:backend": str(self.params.get("backend") or ""),
            "oldphoto:settings": json.dumps(record, sort_keys=True),
        }

    def write_png(self, path: str | Path, rgb, alpha=None) -> None:
        from oldphoto.atomic import write_png

        write_png(path, rgb, alpha=alpha, text=self.metadata())

    def close(self) -> None:
        self._stack.close()
        if self._log:
            self._log.close()
            self._log = None


def _slot_gpu(description: str) -> int | None:
    import re

    match = re.search(r"slot (\d+)", description)
    return int(match.group(1)) if match else None


# How native libraries report a failed allocation with their own exception types: OpenCV's
# cv2.error "(-4:Insufficient memory) Failed to allocate ...", torch's OutOfMemoryError
# "CUDA out of memory" and CPU allocator "can't allocate memory", a C++ std::bad_alloc.
_ALLOCATION_FAILURES = ("insufficient memory", "out of memory", "can't allocate memory",
                        "cannot allocate memory", "bad_alloc")


def _is_allocation_failure(err: BaseException) -> bool:
    text = str(err).lower()
    return any(marker in text for marker in _ALLOCATION_FAILURES)


def _out_of_memory(job: Job) -> str:
    return (f"out of memory: {job.image} needs more than this job's memory "
            f"(memory_budget_mb={job.scheduling.get('memory_budget_mb')})")


def run_request(request: Mapping[str, Any], tasks: Mapping[str, Callable[[Job], None]],
                session: Session = SESSION) -> dict[str, Any]:
    """Run one job request in this process with ``tasks`` (task name -> function of the
    :class:`Job`); never raises for a failure of the photo."""
    from oldphoto.progress import Heartbeat

    job = Job(request, session)
    previous = warnings.showwarning
    # Library warnings (e.g. an all-scratched HR scale) belong in the job's log.
    warnings.showwarning = lambda message, category, *args, **kwargs: job.log(
        f"warning: {message}")
    outcome: dict[str, Any] = {"ok": True, "message": "done"}
    try:
        job.log(f"{job.rule} {job.image}: backend "
                f"{(job.request.get('params') or {}).get('backend', '-')}")
        if job.task not in tasks:
            raise ValueError(f"unknown task {job.task!r}")
        job.read_params()
        if job.task in protocol.NETWORK_TASKS:
            job.open_device()
        with Heartbeat(job.log, every=5.0, what=f"{job.rule} {job.image}"):
            tasks[job.task](job)
        job.log("done")
    except OldPhotoError as err:
        outcome = {"ok": False, "message": job.fail_line(err.one_line())}
    except MemoryError:
        outcome = {"ok": False, "message": job.fail_line(_out_of_memory(job))}
    except Exception as err:  # noqa: BLE001 - one line for the user, the traceback in the log
        job.log(traceback.format_exc())
        if _is_allocation_failure(err):
            reason = (f"{_out_of_memory(job)} ({type(err).__name__}: "
                      f"{' '.join(str(err).split())[:200]})")
        else:
            reason = f"internal error ({type(err).__name__}): {err}"
        outcome = {"ok": False, "message": job.fail_line(reason)}
    finally:
        warnings.showwarning = previous
        job.close()
    return outcome
