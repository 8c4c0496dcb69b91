"""The entry point of every workflow job: ``python -m oldphoto.jobs TASK key=value ...``.

A rule's ``shell:`` line runs this (standard library only: no numpy, torch or dlib is imported
here).  It reads its arguments into a job request
(:func:`oldphoto.jobs.protocol.parse_command_line`) and hands it to a warm worker process of this
run (:mod:`oldphoto.worker`), which keeps networks and dlib's models loaded between jobs, or runs
it in this process when workers are off (config ``workers: false``) or for a one-off task.  It exits 0, or 1 after printing the job's one-line
failure reason (for a photo's job not with the quiet console, :data:`oldphoto.console.QUIET_ENV`:
the run summary names the photo with the reason, :mod:`oldphoto.console`); on Ctrl-C it exits
130 without a traceback.  The arguments and the environment it reads:
:mod:`oldphoto.jobs.protocol`.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from oldphoto.jobs import protocol


def submit(request: dict[str, Any]) -> dict[str, Any]:
    """Run the request on a warm worker of this run, or here when workers are off or the task
    gains nothing from one."""
    task = protocol.TASKS.get(request["task"])
    scheduling = request["scheduling"]
    if not scheduling["workers"] or (task is not None and task.in_process):
        from oldphoto.jobs.tasks import run_task

        return run_task(request)
    from oldphoto.worker.client import WorkerDied, submit_retrying_once

    # A worker started with other values of these is replaced (they pick its device).
    request["env"] = {name: os.environ.get(name, "") for name in protocol.WORKER_PINNING_ENV}
    rule, image = request.get("rule") or request["task"], request.get("image", "")
    try:
        return submit_retrying_once(
            request, pool="net" if request["task"] in protocol.NETWORK_TASKS else "cpu",
            handler=protocol.HANDLER, key=os.environ.get(protocol.RUN_KEY_ENV),
            idle_timeout=scheduling["worker_idle_seconds"],
            on_retry=lambda died: protocol.append_to_log(
                request.get("log"), protocol.retried_line(rule, image, died)),
        )
    except WorkerDied as err:
        # The worker process died under this job (killed, out of memory, a crash in a native
        # library), after one retry in a fresh worker (or with its run gone): this photo fails
        # with the reason; the next job starts a fresh worker.
        again = " again, after one retry" if getattr(err, "retried", None) else ""
        line = protocol.failed_line(
            rule, image, f"worker died while running this job{again} ({err}); killed by a "
                         "signal, e.g. out of memory or a time limit")
        protocol.append_to_log(request.get("log"), line)
        return {"ok": False, "message": line}


def main(argv: list[str] | None = None) -> int:
    try:
        request = protocol.parse_command_line(list(sys.argv[1:] if argv is None else argv))
    except ValueError as err:  # a scheduling variable that is not of its type
        print(f"{protocol.ENTRY_MODULE}: {err}", file=sys.stderr)
        return 1
    try:
        outcome = submit(request)
    except Exception as err:  # noqa: BLE001 - the job fails with a reason in its log, always
        line = protocol.failed_line(request.get("rule") or request["task"],
                                    request.get("image", ""),
                                    f"internal error ({type(err).__name__}): {err}")
        protocol.append_to_log(request.get("log"), line)
        outcome = {"ok": False, "message": line}
    if not outcome.get("ok"):
        # A photo's failure is named with its reason in the run summary (oldphoto.console); any
        # other job's (a checkpoint download or conversion) is said here.
        from oldphoto.console import IMAGE_RULES, QUIET_ENV  # standard library only

        if os.environ.get(QUIET_ENV) != "quiet" or request.get("rule") not in IMAGE_RULES:
            print(outcome.get("message", "FAILED"), file=sys.stderr)
        return 1
    return 0


def run_as_program() -> None:
    """``python -m oldphoto.jobs``: :func:`main`, then exit without tearing down the
    interpreter."""
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
