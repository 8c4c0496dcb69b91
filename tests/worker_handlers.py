"""Handlers for tests/unit/test_worker.py: small tasks that exercise each way a request can end."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from oldphoto.errors import BadImageError

def handle(request: dict) -> dict:
    task = request["task"]
    params = request["params"]
    if task == "echo":
        return {"ok": True, "message": "echo", "params": params, "pid": os.getpid(),
                "cwd": os.getcwd()}
    if task == "env":
        return {"ok": True, "message": "env",
                "value": os.environ.get(params["name"])}
    if task == "sleep":
        time.sleep(float(params["seconds"]))
        return {"ok": True, "message": "slept", "pid": os.getpid()}
    if task == "write":
        Path(request["outputs"]["file"]).write_text(params["text"], encoding="utf-8")
        return {"ok": True, "message": "written"}
    if task == "raise":
        raise ValueError("boom from the handler")
    if task == "bad_image":
        raise BadImageError(request["inputs"].get("image"), "cannot decode")
    if task == "exit":
        os._exit(int(params.get("status", 3)))
    if task == "exit_once":  # dies the first time (its marker file remembers), then answers
        if request.get("log"):  # as a workflow job, each attempt rewrites its log
            Path(request["log"]).write_text(f"attempt in worker {os.getpid()}\n")
        marker = Path(params["marker"])
        if not marker.exists():
            marker.write_text("died once")
            os._exit(3)
        return {"ok": True, "message": "second life", "pid": os.getpid()}
    if task == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
        time.sleep(10)
    if task == "not_a_dict":
        return "done"  # type: ignore[return-value]
    return {"ok": False, "message": f"unknown task {task!r}"}


def handle_other(request: dict) -> dict:
    """The same tasks under another handler name (a worker must not serve two handlers)."""
    return handle(request)
