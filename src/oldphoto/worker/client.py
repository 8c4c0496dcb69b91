"""The thin job client: hand a request to a warm worker, spawning it when needed.

Standard library only: importing this module imports neither numpy nor torch nor PIL, so a job
that only submits a request starts in a few tens of milliseconds.

Files of one run live in :func:`runtime_dir` (``${XDG_RUNTIME_DIR:-/tmp}/oldphoto-<uid>/<hash>/``,
short because an ``AF_UNIX`` socket path holds at most 107 bytes); per worker ``<pool>-<slot>``:

- ``.lock`` — held with ``flock`` by the client using the slot, for its whole request (the kernel
  drops it when the client dies, also on SIGKILL);
- ``.sock`` — the worker's socket; ``.pid`` — its pid, start time and spawn token (JSON);
- ``.exit`` — written when the worker process ends: its token and exit status, which is how a
  client learns that its worker was killed by SIGSEGV;
- ``.log`` — the worker's log: start, each request's task and duration, exit reason, and anything
  the handler printed or a crash dumped.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import oldphoto
from oldphoto.errors import ConfigError
from oldphoto.locks import try_flock
from oldphoto.worker.handler import call_handler, check_request, load_handler
from oldphoto.worker.procs import describe_returncode, find_run_owner, process_alive
from oldphoto.worker.protocol import (
    ConnectionClosed,
    ProtocolError,
    WorkerDied,
    WorkerError,
    recv_message,
    send_message,
)

MAX_SLOTS = 256
SOCKET_PATH_MAX = 107
_POOL = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
_PACKAGE_DIR = Path(oldphoto.__file__).resolve().parent


class WorkerPaths:
    """The files of worker ``<pool>-<slot>`` in a run directory (a plain class: ``dataclasses``
    would import ``inspect``, ~10 ms of every job's start)."""

    __slots__ = ("folder", "pool", "slot")

    def __init__(self, folder: Path, pool: str, slot: int) -> None:
        self.folder = Path(folder)
        self.pool = pool
        self.slot = slot

    def __repr__(self) -> str:
        return f"WorkerPaths({str(self.folder)!r}, {self.pool!r}, {self.slot})"

    @property
    def name(self) -> str:
        return f"{self.pool}-{self.slot}"

    def _file(self, suffix: str) -> Path:
        return self.folder / f"{self.name}.{suffix}"

    @property
    def sock(self) -> Path:
        return self._file("sock")

    @property
    def lock(self) -> Path:
        return self._file("lock")

    @property
    def pid(self) -> Path:
        return self._file("pid")

    @property
    def exit(self) -> Path:
        return self._file("exit")

    @property
    def log(self) -> Path:
        return self._file("log")


# ------------------------------------------------------------------------------------------------
# Where a run's workers live
# ------------------------------------------------------------------------------------------------
def runtime_base() -> Path:
    """``$XDG_RUNTIME_DIR/oldphoto-<uid>`` when that folder exists and is writable (it may not on
    a Slurm node the variable was copied to), else ``/tmp/oldphoto-<uid>``."""
    name = f"oldphoto-{os.getuid()}"
    xdg = os.environ.get("XDG_RUNTIME_DIR", "")
    if xdg and os.path.isdir(xdg) and os.access(xdg, os.W_OK | os.X_OK):
        base = Path(xdg) / name
        # <base>/<16 hex>/<pool of 32>-<slot of 3>.sock must fit in an AF_UNIX address
        if len(str(base)) + 1 + 16 + 1 + 32 + 1 + 3 + 5 <= SOCKET_PATH_MAX:
            return base
    return Path("/tmp") / name


def sources_stamp() -> int:
    """The newest modification time (ns) of the ``oldphoto`` package's ``.py`` files: part of
    the run key, so a worker started before a code change is never talked to after it."""
    newest = 0
    stack = [str(_PACKAGE_DIR)]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name != "__pycache__":
                        stack.append(entry.path)
                elif entry.name.endswith(".py"):
                    newest = max(newest, entry.stat().st_mtime_ns)
    return newest


def runtime_dir(key: str | None) -> Path:
    """The folder of one run's workers: ``runtime_base()/<16 hex digits>``, hashed from ``key``
    (the workflow passes its absolute output folder; None means the current directory),
    ``SLURM_JOB_ID``, the Python environment and interpreter, where the ``oldphoto`` package is,
    its version and :func:`sources_stamp`.

    The Snakemake process that calls :func:`shutdown_all` must compute the same key as its jobs:
    inside a Slurm job ``SLURM_JOB_ID`` differs from the submitting Snakemake's, so there the
    workers end with the job's own Snakemake (which they watch) rather than by that call."""
    parts = [
        key if key is not None else os.getcwd(),
        os.environ.get("SLURM_JOB_ID", ""),
        # the environment and interpreter, however it was called (python, python3, full path)
        sys.prefix,
        os.path.realpath(sys.executable),
        str(_PACKAGE_DIR),
        oldphoto.__version__,
        str(sources_stamp()),
    ]
    digest = hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:16]
    return runtime_base() / digest


def _private_dir(folder: Path) -> None:
    base = folder.parent
    for path in (base, folder):
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            pass
        info = os.lstat(path)
        if not os.path.isdir(path) or os.path.islink(path) or info.st_uid != os.getuid():
            raise WorkerError(path, "worker folder is not a directory owned by this user")


# ------------------------------------------------------------------------------------------------
# Submitting a request
# ------------------------------------------------------------------------------------------------
def run_in_process(request: dict, handler: str) -> dict:
    """Run ``request`` with ``handler`` in this process (no worker): the same result dict as a
    worker's, without the ``worker`` entry.  The request's ``env`` is applied to
    ``os.environ`` first, as a worker would have been started with it."""
    full = check_request(request)
    for name, value in full["env"].items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    return call_handler(load_handler(handler), full)


def submit(request: dict, *, pool: str, handler: str, key: str | None = None,
           idle_timeout: float = 60, spawn_env: dict[str, str] | None = None,
           connect_timeout: float = 60, watch: tuple[int, int] | None = None) -> dict:
    """Run ``request`` on a warm worker of ``pool`` and return the handler's result dict.

    Args:
        request: ``{"task", "inputs", "outputs", "params", "log", "env"}`` (see
            :mod:`oldphoto.worker.handler`); ``env`` names variables the handler must see, and a
            worker started with other values is replaced by one started with these.
        pool: the worker family (``[A-Za-z0-9_.-]``, at most 32 characters); put anything a
            worker is pinned to at start (its GPU) into the pool name, e.g. ``"net-gpu1"``.
        handler: ``"module:function"`` the worker calls; a worker started with another handler is
            replaced.
        key: what identifies the run (the workflow's absolute output folder); see
            :func:`runtime_dir`.
        idle_timeout: seconds without a request after which a worker exits (0: never).
        spawn_env: the environment a spawned worker starts with (default: this process's),
            updated with ``request["env"]``.
        connect_timeout: seconds a spawned worker has to import its handler and answer.
        watch: ``(pid, starttime)`` of the process whose end ends the worker (default:
            :func:`oldphoto.worker.procs.find_run_owner`).

    Returns the handler's dict plus ``worker``: ``{"pid", "pool", "slot", "served", "seconds"}``.
    Whether a request goes to a worker at all is the caller's choice (:func:`run_in_process`
    runs it here; the workflow's jobs: :mod:`oldphoto.jobs.entry`).

    Raises:
        WorkerDied: the worker died while running this request (the message names its exit
            status or signal and its log); the next submit starts a new one.
        WorkerError: a worker could not be started or reached.
    """
    full = check_request(request)
    if not _POOL.match(pool):
        raise ConfigError(None, f"worker pool name {pool!r} must match {_POOL.pattern}")
    folder = runtime_dir(key)
    _private_dir(folder)
    slot, lock_fd = _take_slot(folder, pool)
    try:
        paths = WorkerPaths(folder, pool, slot)
        envelope = {"op": "run", "handler": handler, "cwd": os.getcwd(), "request": full}
        env = _spawn_environment(spawn_env, full["env"])
        spawns = 0
        for _ in range(6):
            conn = _connect(paths)
            if conn is None:
                if spawns == 2:
                    break
                _discard_stale(paths)
                _spawn(paths, handler=handler, idle_timeout=idle_timeout, env=env,
                       connect_timeout=connect_timeout,
                       watch=watch if watch is not None else find_run_owner())
                spawns += 1
                continue
            reply = _exchange(conn, paths, envelope)
            if reply is None:  # gone before it read the request: start over
                continue
            if reply.get("respawn"):
                _stop_worker(paths)
                continue
            return reply
        raise WorkerError(paths.log, f"no worker of pool {pool!r} slot {slot} could be reached")
    finally:
        os.close(lock_fd)


def submit_retrying_once(request: dict, *, on_retry: Callable[[str], None] | None = None,
                         **options: Any) -> dict:
    """:func:`submit`, and once more in a fresh worker when the worker died under the request.

    A worker that dies mid-request (SIGKILL, the OOM killer, a crash in a native library) takes
    the request with it through no fault of the request's own, so it gets a second chance: the
    next :func:`submit` starts a new worker.  A request that fails for its own reasons (a broken
    file) fails inside a living worker and comes back as the handler's answer: never retried.
    Nor is a request whose run is over: when the process that owns the run's workers (``watch``,
    by default the outermost Snakemake, :func:`~oldphoto.worker.procs.find_run_owner`) is gone,
    its workers ended with it and so does the request.

    After the second attempt (which may rewrite the request's log), ``on_retry`` is called with
    how the first worker died (the workflow's jobs write their ``RETRIED`` line then,
    :func:`oldphoto.jobs.protocol.retried_line`); the answer carries ``retried`` (the same
    words).  A second death raises :class:`WorkerDied` with ``retried`` set likewise.
    ``options`` are :func:`submit`'s.
    """
    try:
        return submit(request, **options)
    except WorkerDied as died:
        watch = options.get("watch") or find_run_owner()
        if not process_alive(*watch):
            raise
        first = str(died)
    try:
        reply = submit(request, **options)
    except WorkerDied as died:
        died.retried = first
        raise
    finally:
        if on_retry is not None:
            on_retry(first)
    reply["retried"] = first
    return reply


def _take_slot(folder: Path, pool: str) -> tuple[int, int]:
    """The first free slot of ``pool`` and the descriptor holding its lock."""
    for slot in range(MAX_SLOTS):
        fd = try_flock(WorkerPaths(folder, pool, slot).lock)
        if fd is not None:
            return slot, fd
    raise WorkerError(folder, f"all {MAX_SLOTS} slots of worker pool {pool!r} are busy")


def _connect(paths: WorkerPaths) -> socket.socket | None:
    """A connection to the worker's socket, or None when nothing listens there."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        conn.connect(str(paths.sock))
    except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
        conn.close()
        return None
    return conn


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _exchange(conn: socket.socket, paths: WorkerPaths, envelope: dict) -> dict | None:
    """Send one message and return the reply; None when the worker was gone before reading it;
    :class:`WorkerDied` when it died after."""
    info = _read_json(paths.pid) or {}
    with conn:
        try:
            send_message(conn, envelope)
        except (BrokenPipeError, ConnectionResetError):
            return None
        try:
            reply = recv_message(conn)
        except (ConnectionClosed, ConnectionResetError, ProtocolError) as err:
            raise _died(paths, info, envelope, err) from None
    if not isinstance(reply, dict):
        raise WorkerError(paths.log, f"worker {paths.name} answered {reply!r:.200}, not a dict")
    return reply


def _died(paths: WorkerPaths, info: dict, envelope: dict, err: Exception) -> WorkerDied:
    """The error for a worker that vanished mid-request, with its exit status when it was
    written within a few seconds."""
    token = info.get("token")
    record = None
    deadline = time.monotonic() + 5.0
    while token is not None and time.monotonic() < deadline:
        record = _read_json(paths.exit)
        if record is not None and record.get("token") == token:
            break
        record = None
        time.sleep(0.02)
    task = envelope.get("request", {}).get("task", envelope.get("op"))
    how = (describe_returncode(int(record["returncode"])) if record is not None
           else f"exit status unknown ({type(err).__name__})")
    pid = info.get("pid", "?")
    return WorkerDied(paths.log, f"worker {paths.name} (pid {pid}) died during task {task!r}: "
                                 f"{how}; see its log",
                      None if record is None else int(record["returncode"]))


def _discard_stale(paths: WorkerPaths) -> None:
    """Remove what a dead (or unreachable) worker of this slot left; the caller holds its lock."""
    info = _read_json(paths.pid)
    if info is not None and process_alive(int(info.get("pid", 0)), info.get("starttime")):
        try:  # alive but not answering on its socket: it can serve no one any more
            os.kill(int(info["pid"]), signal.SIGTERM)
        except ProcessLookupError:
            pass
    for path in (paths.sock, paths.pid):
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def _spawn_environment(spawn_env: dict[str, str] | None, request_env: dict) -> dict[str, str]:
    env = dict(os.environ if spawn_env is None else spawn_env)
    for name, value in request_env.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    # The worker must import this very oldphoto (the run key hashes its sources).
    root = str(_PACKAGE_DIR.parent)
    if not root.endswith(("site-packages", "dist-packages")):
        entries = [e for e in env.get("PYTHONPATH", "").split(os.pathsep) if e]
        if not entries or entries[0] != root:
            env["PYTHONPATH"] = os.pathsep.join([root, *entries])
    return env


def _spawn(paths: WorkerPaths, *, handler: str, idle_timeout: float, env: dict[str, str],
           connect_timeout: float, watch: tuple[int, int]) -> None:
    """Start the worker of ``paths`` and wait until it answers a ping."""
    token = os.urandom(8).hex()
    cmd = [sys.executable, "-m", "oldphoto.worker.server", "--pool", paths.pool,
           "--slot", str(paths.slot), "--dir", str(paths.folder), "--handler", handler,
           "--idle", repr(float(idle_timeout)), "--watch", f"{watch[0]}:{watch[1]}",
           "--token", token]
    with open(paths.log, "ab") as log:
        # The launched process forks the worker and exits at once (reaped here), so the worker
        # is in its own session, outside Snakemake's process group, and no child of this one.
        launcher = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    env=env, close_fds=True, start_new_session=True)
    deadline = time.monotonic() + connect_timeout
    try:
        launcher.wait(timeout=connect_timeout)
    except subprocess.TimeoutExpired:
        launcher.kill()
        launcher.wait()
    if launcher.returncode != 0:
        raise WorkerError(paths.log, f"worker {paths.name} launcher failed "
                                     f"({describe_returncode(launcher.returncode)}):\n"
                                     f"{_log_tail(paths.log)}")
    delay = 0.005
    while True:
        conn = _connect(paths)
        if conn is not None:
            with conn:
                try:
                    send_message(conn, {"op": "ping"})
                    reply = recv_message(conn)
                except (OSError, ConnectionClosed):
                    reply = None
            if isinstance(reply, dict) and reply.get("token") == token:
                return
        record = _read_json(paths.exit)
        if record is not None and record.get("token") == token:
            raise WorkerError(paths.log, f"worker {paths.name} failed to start "
                                         f"({describe_returncode(int(record['returncode']))}):\n"
                                         f"{_log_tail(paths.log)}")
        if time.monotonic() > deadline:
            raise WorkerError(paths.log, f"worker {paths.name} did not answer within "
                                         f"{connect_timeout:g} s")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _ask(paths: WorkerPaths, message: dict, timeout: float = 10.0) -> dict | None:
    conn = _connect(paths)
    if conn is None:
        return None
    with conn:
        conn.settimeout(timeout)
        try:
            send_message(conn, message)
            reply = recv_message(conn)
        except (OSError, ConnectionClosed):
            return None
    return reply if isinstance(reply, dict) else None


def _wait_gone(processes: list[tuple[int, int | None]], timeout: float) -> int:
    """Wait until the processes are gone (at most ``timeout`` s); how many are."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [p for p in processes if process_alive(*p)]
        if not alive or time.monotonic() >= deadline:
            return len(processes) - len(alive)
        time.sleep(0.02)


def _stop_worker(paths: WorkerPaths, timeout: float = 10.0) -> None:
    """Shut down the worker of a slot whose lock the caller holds, and wait until it is gone."""
    info = _read_json(paths.pid) or {}
    if _ask(paths, {"op": "shutdown"}) is None and "pid" in info:
        try:
            os.kill(int(info["pid"]), signal.SIGTERM)
        except ProcessLookupError:
            pass
    if "pid" in info:
        process = (int(info["pid"]), info.get("starttime"))
        if _wait_gone([process], timeout) == 0:
            try:
                os.kill(process[0], signal.SIGKILL)
            except ProcessLookupError:
                pass
            _wait_gone([process], 2.0)
    _discard_stale(paths)


# ------------------------------------------------------------------------------------------------
# A run's workers as a whole
# ------------------------------------------------------------------------------------------------
def running_workers(key: str | None) -> list[dict[str, Any]]:
    """The live workers of the run ``key``: their pid files (``pid``, ``starttime``, ``token``,
    ``handler``, ``supervisor``) plus ``pool`` and ``slot``."""
    folder = runtime_dir(key)
    if not folder.is_dir():
        return []
    workers = []
    for pid_file in sorted(folder.glob("*.pid")):
        info = _read_json(pid_file)
        if info is None or not process_alive(int(info.get("pid", 0)), info.get("starttime")):
            continue
        pool, _, slot = pid_file.stem.rpartition("-")
        if slot.isdigit():
            workers.append({**info, "pool": pool, "slot": int(slot)})
    return workers


def shutdown_all(key: str | None, timeout: float = 10.0) -> int:
    """Tell every worker of the run ``key`` to exit and wait up to ``timeout`` s; returns how
    many stopped.  An idle worker gets a shutdown message; one busy with a request gets SIGTERM
    and exits when that request is answered.  The run's folder (locks, logs) stays."""
    return _shutdown(runtime_dir(key), key, timeout)


def _shutdown(folder: Path, key: str | None, timeout: float) -> int:
    processes = []
    for worker in running_workers(key):
        paths = WorkerPaths(folder, worker["pool"], worker["slot"])
        lock_fd = try_flock(paths.lock)
        told = False
        if lock_fd is not None:
            try:
                told = _ask(paths, {"op": "shutdown"}, timeout=timeout) is not None
            finally:
                os.close(lock_fd)
        if not told:
            try:
                os.kill(int(worker["pid"]), signal.SIGTERM)
            except ProcessLookupError:
                pass
        processes.append((int(worker["pid"]), worker.get("starttime")))
    return _wait_gone(processes, timeout) if processes else 0
