"""One long-lived exiftool per process (``-stay_open``): archival jobs call exiftool three or four
times per photo, and each start of the Perl program costs 0.1-0.2 s of CPU — at archive scale
more than the photo's own pixels.  A warm worker keeps its exiftool for all the jobs it runs.

Protocol (exiftool's documentation of ``-stay_open`` and ``-echo4``): arguments are written one
per line to exiftool's standard input, ending with ``-echo4`` + a marker carrying
``${status}`` (the command's exit status) and ``-execute<N>``; exiftool answers on standard
output up to ``{ready<N>}`` and writes the marker to standard error after the command's own
messages.  Both pipes are read at once, so a chatty command can never fill one pipe while we wait
on the other.  With ``-stay_open`` exiftool keeps waiting at the end of its input, even once this
process is gone: on Linux it is started with a parent-death signal (``PR_SET_PDEATHSIG``), so it
never outlives the thread that started it, not even after ``kill -9``; the next call then starts
a new one.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import threading
import time

_STATUS = re.compile(rb"\{oldphoto-status (\d+) (-?\d+)\}\n")

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent(parent: int) -> None:
    """In the child, before exec: SIGTERM when the parent (thread) ends."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


class ExifToolError(RuntimeError):
    """exiftool failed (``status`` is its exit status; ``stderr`` its messages)."""

    def __init__(self, status: int | None, stderr: bytes) -> None:
        self.status, self.stderr = status, stderr
        super().__init__(f"exit {status}" if status is not None else "no answer")


class ExifToolSession:
    """A ``exiftool -stay_open True -@ -`` process; :meth:`run` is one command."""

    def __init__(self, executable: str) -> None:
        self.executable = executable
        self._process: subprocess.Popen | None = None
        self._sequence = 0
        self._lock = threading.Lock()

    def _start(self) -> subprocess.Popen:
        if self._process is None or self._process.poll() is not None:
            parent = os.getpid()
            self._process = subprocess.Popen(
                [self.executable, "-stay_open", "True", "-@", "-"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                close_fds=True,
                preexec_fn=(lambda: _die_with_parent(parent)) if sys.platform == "linux"
                else None)
        return self._process

    def run(self, args: list[str], *, timeout: float) -> bytes:
        """Run one exiftool command (``args``, one per line; no newline inside an argument);
        its standard output.  Raises :class:`ExifToolError` when its exit status is not 0, and
        TimeoutError (after stopping the process) when it takes longer than ``timeout``."""
        if any("\n" in a or "\r" in a for a in args):
            raise ValueError("an exiftool argument holds a line break")
        with self._lock:
            process = self._start()
            self._sequence += 1
            number = self._sequence
            command = [*args, "-echo4", f"{{oldphoto-status {number} ${{status}}}}",
                       f"-execute{number}"]
            try:
                process.stdin.write(("\n".join(command) + "\n").encode("utf-8"))
                process.stdin.flush()
                stdout, stderr, status = self._read(process, number, timeout)
            except BaseException:
                self.close()  # an interrupted exchange leaves the pipes out of step
                raise
        if status != 0:
            raise ExifToolError(status, stderr)
        return stdout

    def _read(self, process: subprocess.Popen, number: int,
              timeout: float) -> tuple[bytes, bytes, int]:
        ready = f"{{ready{number}}}\n".encode()
        out, err = bytearray(), bytearray()
        status: int | None = None
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ, out)
            selector.register(process.stderr, selectors.EVENT_READ, err)
            while not (out.endswith(ready) and status is not None):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"exiftool did not answer within {timeout:g} s")
                events = selector.select(left)
                for key, _ in events:
                    chunk = os.read(key.fileobj.fileno(), 65536)
                    if not chunk:
                        raise ExifToolError(None, bytes(err))  # exiftool is gone
                    key.data.extend(chunk)
                if status is None:
                    match = _STATUS.search(err)
                    if match and int(match.group(1)) == number:
                        status = int(match.group(2))
                        del err[match.start():]
        return bytes(out[:-len(ready)]), bytes(err), status

    def close(self) -> None:
        """Stop exiftool (it would also exit by itself once this process is gone)."""
        process, self._process = self._process, None
        if process is None:
            return
        try:
            process.stdin.close()
            process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()
        for pipe in (process.stdout, process.stderr):
            pipe.close()


_SESSIONS: dict[tuple[int, str], ExifToolSession] = {}


def session(executable: str) -> ExifToolSession:
    """This process's exiftool session (a forked child gets a new one)."""
    key = (os.getpid(), executable)
    if key not in _SESSIONS:
        _SESSIONS[key] = ExifToolSession(executable)
    return _SESSIONS[key]
