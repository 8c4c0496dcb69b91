"""The entry point of every workflow job: ``python -m oldphoto.job TASK key=value ...``.

A rule's ``shell:`` line calls this thin client (standard library only: no numpy, torch or dlib
is imported here).  It turns its arguments into a job request (:mod:`oldphoto.jobs`) and hands it
to a warm worker process of this run (:mod:`oldphoto.worker`), which keeps networks and dlib's
models loaded between jobs, or runs it in this process when workers are off
(``OLDPHOTO_WORKERS=0``, config ``workers: false``).  It exits 0, or 1 after printing the job's
one-line failure reason (for a photo's job not with the quiet console, ``OLDPHOTO_CONSOLE=quiet``:
the run summary names the photo with the reason, :mod:`oldphoto.console`); on Ctrl-C it exits 130
without a traceback.

Arguments (``job_shell`` in ``workflow/rules/common.smk`` writes the first line; the rule's params
entry ``job``, :func:`oldphoto.dag.job_params`, the rest)::

    rule=NAME log=PATH threads=N
    image=STEM
    in.NAME=PATH      one input (in.NAME[]=PATH, repeated, for a list)
    out.NAME=PATH     one output
    p.NAME=VALUE      one of the job's settings (what shapes the outputs)

Scheduling settings — never params, so changing them reruns nothing — come from the
environment the Snakefile sets: ``OLDPHOTO_DEVICE``, ``OLDPHOTO_JOBS_PER_GPU``,
``OLDPHOTO_MAX_IMAGE_PIXELS``, ``OLDPHOTO_MEMORY_BUDGET_MB``, ``OLDPHOTO_WORKERS``,
``OLDPHOTO_WORKER_IDLE``, ``OLDPHOTO_RUN_KEY``.
"""

from __future__ import annotations

import os
import sys
from typing import Any

SETTINGS_ENV = {
    "device": "OLDPHOTO_DEVICE",
    "jobs_per_gpu": "OLDPHOTO_JOBS_PER_GPU",
    "max_image_pixels": "OLDPHOTO_MAX_IMAGE_PIXELS",
    "memory_budget_mb": "OLDPHOTO_MEMORY_BUDGET_MB",
}
HANDLER = "oldphoto.tasks:run_task"
# One-off jobs that gain nothing from a warm worker run in their own process.
IN_PROCESS_TASKS = frozenset({"download_checkpoints", "prepare_checkpoint"})
WORKER_ENV = ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID", "OLDPHOTO_FAKE_GPUS", "OLDPHOTO_GPU_LOCK_DIR",
              "OLDPHOTO_GPU_SLOT_TRACE")


def parse_args(argv: list[str]) -> dict[str, Any]:
    """``TASK key=value ...`` -> a job request (see :mod:`oldphoto.jobs`)."""
    if not argv:
        raise SystemExit("usage: python -m oldphoto.job TASK key=value ...")
    request: dict[str, Any] = {"task": argv[0], "inputs": {}, "outputs": {}, "params": {},
                               "settings": {}}
    for arg in argv[1:]:
        key, sep, value = arg.partition("=")
        if not sep:
            raise SystemExit(f"oldphoto.job: expected key=value, got {arg!r}")
        if key.startswith(("in.", "out.")):
            where, name = key.split(".", 1)
            target = request["inputs" if where == "in" else "outputs"]
            if name.endswith("[]"):
                target.setdefault(name[:-2], []).append(value)
            else:
                target[name] = value
        elif key.startswith("p."):
            request["params"][key[2:]] = value
        elif key in ("rule", "image", "log"):
            request[key] = value
        elif key == "threads":
            request["settings"]["threads"] = int(value)
        else:
            raise SystemExit(f"oldphoto.job: unknown argument {key!r}")
    for name, env in SETTINGS_ENV.items():
        if os.environ.get(env):
            request["settings"][name] = os.environ[env]
    return request


def workers_enabled() -> bool:
    return os.environ.get("OLDPHOTO_WORKERS", "1").strip().lower() not in ("0", "false", "no")


def submit(request: dict[str, Any]) -> dict[str, Any]:
    """Run the request on a warm worker of this run, or here when workers are off."""
    from oldphoto.tasks import NETWORK_TASKS

    if not workers_enabled() or request["task"] in IN_PROCESS_TASKS:
        from oldphoto.tasks import run_task

        return run_task(request)
    from oldphoto.worker.client import WorkerDied
    from oldphoto.worker.client import submit_retrying_once as submit_to_worker

    pool = "net" if request["task"] in NETWORK_TASKS else "cpu"
    # A worker started with other values of these is replaced (they pick its device).
    request["env"] = {name: os.environ.get(name, "") for name in WORKER_ENV}
    try:
        return submit_to_worker(
            request, pool=pool, handler=HANDLER, key=os.environ.get("OLDPHOTO_RUN_KEY"),
            idle_timeout=float(os.environ.get("OLDPHOTO_WORKER_IDLE", "60")),
        )
    except WorkerDied as err:
        # The worker process died under this job (killed, out of memory, a crash in a native
        # library), after one retry in a fresh worker (or with its run gone): this photo fails
        # with the reason; the next job starts a fresh worker.
        again = " again, after one retry" if getattr(err, "retried", None) else ""
        line = (f"FAILED {request.get('rule') or request['task']} {request.get('image', '')} :: "
                f"worker died while running this job{again} ({err}); killed by a signal, e.g. "
                "out of memory or a time limit")
        if request.get("log"):
            with open(request["log"], "a", encoding="utf-8") as handle:
                handle.write(line + "\n")
        return {"ok": False, "message": line}


def main(argv: list[str] | None = None) -> int:
    request = parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        outcome = submit(request)
    except Exception as err:  # noqa: BLE001 - the job fails with a reason in its log, always
        line = (f"FAILED {request.get('rule') or request['task']} {request.get('image', '')} :: "
                f"internal error ({type(err).__name__}): {err}")
        if request.get("log"):
            with open(request["log"], "a", encoding="utf-8") as handle:
                handle.write(line + "\n")
        outcome = {"ok": False, "message": line}
    if not outcome.get("ok"):
        # A photo's failure is named with its reason in the run summary (oldphoto.console); any
        # other job's (a checkpoint download or conversion) is said here.
        from oldphoto.console import IMAGE_RULES  # standard library only

        if os.environ.get("OLDPHOTO_CONSOLE") != "quiet" or request.get("rule") not in IMAGE_RULES:
            print(outcome.get("message", "FAILED"), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        code = main()
    except KeyboardInterrupt:
        # Ctrl-C reaches every process of the terminal's group: Snakemake stops the run and its
        # summary lists what did not run; the job itself ends without a traceback.
        code = 130
    sys.stdout.flush()
    sys.stderr.flush()
    # In-process jobs end here without tearing down an interpreter that holds torch (~1 s).
    os._exit(code)
