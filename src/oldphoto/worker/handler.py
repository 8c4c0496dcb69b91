"""The handler contract: how a worker (or the client itself) runs one request.

A handler is a callable ``handler(request: dict) -> dict`` named by an import string
``"module:function"``.  A request is a JSON dict::

    {"task": str, "inputs": {...}, "outputs": {...}, "params": {...},
     "log": path | None, "env": {...}}

and the handler returns at least ``{"ok": bool, "message": str}`` (more JSON keys are passed
through).  The handler writes the job's log itself.  :func:`call_handler` turns whatever else
happens into a result dict, so a worker keeps serving after a failed request:

- an :class:`oldphoto.errors.OldPhotoError` → ``ok: false`` with its one-line message and
  ``error_kind``;
- any other exception (or ``SystemExit``) → ``ok: false``,
  ``message: "internal error (ExcType: text)"`` and the ``traceback``;
- a return value that is not such a dict → ``ok: false`` naming what was returned.
"""

from __future__ import annotations

import importlib
import json
import traceback
from typing import Any, Callable

from oldphoto.errors import ConfigError, OldPhotoError

Handler = Callable[[dict], dict]


def load_handler(spec: str) -> Handler:
    """Import ``"module:function"`` and return the function (ConfigError naming the spec)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(None, f"handler {spec!r} is not of the form 'module:function'")
    module = importlib.import_module(module_name)
    target: Any = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigError(None, f"handler {spec!r}: module {module_name!r} has no "
                                    f"{attr!r}") from None
    if not callable(target):
        raise ConfigError(None, f"handler {spec!r} is not callable")
    return target


def check_request(request: Any) -> dict:
    """``request`` as a dict with the contract's keys filled in (ConfigError when malformed)."""
    if not isinstance(request, dict):
        raise ConfigError(None, f"a worker request must be a dict, not {type(request).__name__}")
    task = request.get("task")
    if not isinstance(task, str) or not task:
        raise ConfigError(None, f"a worker request needs a non-empty 'task' string, got {task!r}")
    full = {"inputs": {}, "outputs": {}, "params": {}, "log": None, "env": {}}
    full.update(request)
    env = full["env"]
    if not isinstance(env, dict) or not all(
            isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in env.items()):
        raise ConfigError(None, f"request 'env' must map names to strings or None, got {env!r}")
    return full


def call_handler(handler: Handler, request: dict) -> dict:
    """Run ``handler(request)`` and return a JSON-serialisable result dict, whatever happens."""
    try:
        result = handler(request)
    except OldPhotoError as err:
        return {"ok": False, "message": err.one_line(), "error_kind": err.kind}
    except (Exception, SystemExit) as err:  # noqa: BLE001 - the worker must keep serving
        return {"ok": False, "message": f"internal error ({type(err).__name__}: {err})",
                "traceback": traceback.format_exc()}
    if (not isinstance(result, dict) or not isinstance(result.get("ok"), bool)
            or not isinstance(result.get("message"), str)):
        return {"ok": False, "message": f"internal error (handler returned {result!r:.200}, not "
                                        f"a dict with 'ok' and 'message')"}
    try:
        json.dumps(result)
    except (TypeError, ValueError) as err:
        return {"ok": False, "message": f"internal error (handler result is not JSON: {err})"}
    return result


def noop(request: dict) -> dict:
    """A handler that does nothing: for health checks and for measuring the worker round trip
    (``bench/worker_overhead.py``)."""
    return {"ok": True, "message": f"noop {request.get('task')}"}
