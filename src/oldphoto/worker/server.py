"""The warm worker: serves requests of one pool slot, one at a time, until it is not needed.

Started by :func:`oldphoto.worker.client.submit` as::

    python -m oldphoto.worker.server --pool P --slot K --dir D --handler mod:fn --idle S \
        --watch PID:STARTTIME --token T

Processes: the launched process forks and exits at once; its child, the **supervisor**, forks
the **server** and waits for it, so that whatever ends the server (an exception, ``os._exit``, a
signal, the out-of-memory killer) its exit status is written to ``<pool>-<slot>.exit`` for the
client that was waiting, and its socket and pid file are removed.  The supervisor imports
nothing beyond the standard library; the server imports the handler (and with it torch and the
models) once and then serves.

The server exits (removing its socket and pid file first) when

- no request came for ``--idle`` seconds (0: never) and it can take its slot's lock, i.e. no
  client is about to talk to it;
- the watched process is gone (checked every 0.5 s, also during a request, by its pid *and* start
  time, so a reused pid does not keep it alive), or its supervisor is;
- it gets a shutdown message or SIGTERM (while serving a request: once that request is
  answered).

It inherits the environment of the client that spawned it (``CUDA_VISIBLE_DEVICES`` as Slurm or
the GPU slot picker set it); a request whose ``env`` differs from that environment is answered
``{"respawn": ...}`` and the client replaces the worker.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
from datetime import datetime
from pathlib import Path

from oldphoto.locks import try_flock
from oldphoto.worker.client import WorkerPaths
from oldphoto.worker.handler import Handler, call_handler, load_handler
from oldphoto.worker.procs import describe_returncode, process_alive, process_start_time
from oldphoto.worker.protocol import ConnectionClosed, ProtocolError, recv_message, send_message

WATCH_INTERVAL = 0.5
REQUEST_READ_TIMEOUT = 30.0


def _log(name: str, message: str) -> None:
    stamp = datetime.now().isoformat(timespec="milliseconds")
    print(f"{stamp} {name} pid={os.getpid()} {message}", file=sys.stderr, flush=True)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m oldphoto.worker.server")
    parser.add_argument("--pool", required=True)
    parser.add_argument("--slot", type=int, required=True)
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--handler", required=True)
    parser.add_argument("--idle", type=float, default=60.0)
    parser.add_argument("--watch", required=True, help="PID:STARTTIME of the run's owner")
    parser.add_argument("--token", default="")
    return parser.parse_args(argv)


def _parse_watch(value: str) -> tuple[int, int]:
    pid, _, start = value.partition(":")
    return int(pid), int(start or 0)


def _remove_own_files(paths: WorkerPaths, pid: int, socket_inode: int | None) -> None:
    """Remove the pid file if it is ``pid``'s and the socket if it is the one ``pid`` bound (a
    successor may already have replaced both)."""
    try:
        info = json.loads(paths.pid.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        info = None
    if isinstance(info, dict) and info.get("pid") == pid:
        socket_inode = socket_inode if socket_inode is not None else info.get("socket_inode")
        try:
            paths.pid.unlink()
        except FileNotFoundError:
            pass
    if socket_inode is not None:
        try:
            if os.stat(paths.sock).st_ino == socket_inode:
                paths.sock.unlink()
        except FileNotFoundError:
            pass


# ------------------------------------------------------------------------------------------------
# Supervisor
# ------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    if os.fork() > 0:  # the launcher: the client reaps it at once
        os._exit(0)
    paths = WorkerPaths(args.dir, args.pool, args.slot)
    child = os.fork()
    if child == 0:
        code = 1
        try:
            code = Server(args, paths, supervisor=os.getppid()).serve()
        except BaseException:  # noqa: BLE001 - report whatever ends the server, then exit
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(child, signum)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    _, status = os.waitpid(child, 0)
    returncode = os.waitstatus_to_exitcode(status)
    _remove_own_files(paths, child, None)
    record = {"token": args.token, "pid": child, "returncode": returncode}
    temporary = paths.exit.with_name(f"{paths.exit.name}.{os.getpid()}")
    temporary.write_text(json.dumps(record), encoding="utf-8")
    os.replace(temporary, paths.exit)
    if returncode != 0:
        _log(paths.name, f"supervisor: server {child} ended: {describe_returncode(returncode)}")
    os._exit(0)


# ------------------------------------------------------------------------------------------------
# Server
# ------------------------------------------------------------------------------------------------
class Server:
    """One worker: a handler, a listening socket, and the reasons to stop."""

    def __init__(self, args: argparse.Namespace, paths: WorkerPaths, supervisor: int) -> None:
        self.args = args
        self.paths = paths
        self.supervisor = supervisor
        self.watch = _parse_watch(args.watch)
        self.busy = False
        self.stop_reason: str | None = None
        self.served = 0
        self.socket_inode: int | None = None
        self.handler: Handler | None = None
        self.environment = dict(os.environ)

    def log(self, message: str) -> None:
        _log(self.paths.name, message)

    def serve(self) -> int:
        faulthandler.enable()
        args = self.args
        self.log(f"start handler={args.handler} idle={args.idle:g}s watch={args.watch} "
                 f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}")
        started = time.monotonic()
        self.handler = load_handler(args.handler)
        listener = self._listen()
        self.log(f"ready in {time.monotonic() - started:.2f}s")
        signal.signal(signal.SIGTERM, self._on_sigterm)
        threading.Thread(target=self._watchdog, daemon=True, name="watchdog").start()
        reason = self._loop(listener)
        self._remove_files()
        self._drain(listener)
        listener.close()
        self.log(f"exit: {reason} (served {self.served} requests)")
        return 0

    def _listen(self) -> socket.socket:
        # The spawning client holds this slot's lock: no other worker can be binding this path.
        try:
            self.paths.sock.unlink()
        except FileNotFoundError:
            pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        listener.bind(str(self.paths.sock))
        os.chmod(self.paths.sock, 0o600)
        listener.listen(16)
        self.socket_inode = os.stat(self.paths.sock).st_ino
        record = {"pid": os.getpid(), "starttime": process_start_time(os.getpid()),
                  "token": self.args.token, "supervisor": self.supervisor,
                  "socket_inode": self.socket_inode, "handler": self.args.handler}
        temporary = self.paths.pid.with_name(f"{self.paths.pid.name}.{os.getpid()}")
        temporary.write_text(json.dumps(record), encoding="utf-8")
        os.replace(temporary, self.paths.pid)
        return listener

    def _remove_files(self) -> None:
        _remove_own_files(self.paths, os.getpid(), self.socket_inode)

    def _on_sigterm(self, _signum: int, _frame: object) -> None:
        self.stop_reason = "SIGTERM"  # the loop sees it within 0.5 s, or after the request

    def _drain(self, listener: socket.socket) -> None:
        """Answer the connections already queued when the socket file was removed (a client that
        connected just before must not see its worker vanish)."""
        listener.setblocking(False)
        while True:
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, socket.timeout, OSError):
                return
            conn.setblocking(True)
            with conn:
                self._handle(conn)

    def _watchdog(self) -> None:
        while True:
            time.sleep(WATCH_INTERVAL)
            if not process_alive(*self.watch):
                reason = f"watched process {self.watch[0]} is gone"
            elif os.getppid() != self.supervisor:
                reason = f"supervisor {self.supervisor} is gone"
            else:
                continue
            self._remove_files()
            self.log(f"exit: {reason} (served {self.served} requests"
                     f"{', one in progress' if self.busy else ''})")
            os._exit(0)

    def _loop(self, listener: socket.socket) -> str:
        idle = self.args.idle
        last = time.monotonic()
        lock_fd = None
        while True:
            if self.stop_reason:
                return self.stop_reason
            waited = time.monotonic() - last
            if idle > 0 and waited >= idle:
                # Only when no client holds the slot: one that does is about to connect.
                lock_fd = try_flock(self.paths.lock)
                if lock_fd is not None:
                    self._remove_files()  # still holding the lock: no client sees a dying worker
                    return f"idle for {waited:.1f}s"
                listener.settimeout(0.05)
            else:
                listener.settimeout(min(0.5, idle - waited) if idle > 0 else 0.5)
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                continue
            self.busy = True
            try:
                self._handle(conn)
            finally:
                self.busy = False
                conn.close()
            last = time.monotonic()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(REQUEST_READ_TIMEOUT)
        try:
            message = recv_message(conn)
        except (ConnectionClosed, ProtocolError, OSError) as err:
            self.log(f"bad or missing message: {type(err).__name__}: {err}")
            return
        op = message.get("op") if isinstance(message, dict) else None
        request = message.get("request") if op == "run" else None
        if op == "ping":
            reply = {"ok": True, "message": "pong", "pid": os.getpid(), "token": self.args.token}
        elif op == "shutdown":
            self.stop_reason = "shutdown requested"
            self._remove_files()
            reply = {"ok": True, "message": "shutting down", "pid": os.getpid()}
        elif op == "run" and isinstance(request, dict):
            reply = self._run(message, request)
        else:
            reply = {"ok": False, "message": f"unknown message {message!r:.200}"}
        conn.settimeout(REQUEST_READ_TIMEOUT)
        try:
            send_message(conn, reply)
        except OSError as err:
            self.log(f"could not answer ({type(err).__name__}: {err}); the client is gone")

    def _run(self, message: dict, request: dict) -> dict:
        task = request.get("task")
        if message.get("handler") != self.args.handler:
            return {"ok": False, "respawn": f"worker runs handler {self.args.handler!r}, not "
                                            f"{message.get('handler')!r}"}
        env = request.get("env") or {}
        different = {name: value for name, value in env.items()
                     if self.environment.get(name) != value}
        if different:
            return {"ok": False, "respawn": f"worker started with another environment for "
                                            f"{sorted(different)}"}
        cwd = message.get("cwd")
        started = time.monotonic()
        try:
            if cwd:
                os.chdir(cwd)
        except OSError as err:
            result = {"ok": False, "message": f"worker cannot enter {cwd}: {err}"}
        else:
            assert self.handler is not None
            result = call_handler(self.handler, request)
        seconds = time.monotonic() - started
        self.served += 1
        self.log(f"task={task!r} ok={result['ok']} {seconds:.3f}s")
        result["worker"] = {"pid": os.getpid(), "pool": self.paths.pool, "slot": self.paths.slot,
                            "served": self.served, "seconds": round(seconds, 6)}
        return result


if __name__ == "__main__":
    main()
