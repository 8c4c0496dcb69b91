"""The long-lived exiftool (oldphoto.archival.exiftool): same answers as one exiftool per call,
failures with their reason, a stuck exiftool stopped, and never left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from archival_corpus import require_exiftool
from oldphoto.archival.exiftool import ExifToolError, ExifToolSession
from oldphoto.archival.master import exiftool_path, run_exiftool
from oldphoto.errors import BadImageError

require_exiftool()

SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def _tags(output: bytes) -> dict:
    """exiftool's JSON without the System group (reading a file may change its access time)."""
    record = json.loads(output)[0]
    return {key: value for key, value in record.items() if not key.startswith("System:")}


def test_answers_equal_one_exiftool_per_call():
    session = ExifToolSession(exiftool_path())
    try:
        for path in sorted((SAMPLES / "old").glob("*.png"))[:4]:
            args = ["-j", "-a", "-G1", "-n", "-charset", "filename=utf8", str(path)]
            once = subprocess.run([exiftool_path(), "-@", "-"], input="\n".join(args).encode(),
                                  capture_output=True, check=True).stdout
            assert _tags(session.run(args, timeout=60)) == _tags(once)
        pid = session._process.pid
        session.run(["-ver"], timeout=60)
        assert session._process.pid == pid  # one process for every call
    finally:
        session.close()
    assert not _alive(pid)


def test_a_failure_names_its_reason_and_the_next_call_works(tmp_path):
    missing = tmp_path / "missing.png"
    with pytest.raises(BadImageError, match="File not found"):
        run_exiftool(["-j", str(missing)], missing)
    assert b"ExifToolVersion" in run_exiftool(["-j", str(SAMPLES / "old" / "a.png")], None)


def test_a_stuck_exiftool_is_stopped_and_replaced(tmp_path):
    silent = tmp_path / "silent-exiftool"
    silent.write_text("#!/bin/sh\nexec sleep 600\n")
    silent.chmod(0o755)
    session = ExifToolSession(str(silent))
    with pytest.raises(TimeoutError):
        session.run(["-ver"], timeout=0.5)
    assert session._process is None  # stopped, the next call starts a new one
    session.executable = exiftool_path()
    assert session.run(["-ver"], timeout=60).strip()
    session.close()


def test_a_dead_exiftool_fails_the_call_and_is_restarted():
    session = ExifToolSession(exiftool_path())
    session.run(["-ver"], timeout=60)
    os.kill(session._process.pid, signal.SIGKILL)
    session._process.wait()
    assert session.run(["-ver"], timeout=60).strip()  # poll() saw it gone: a new one
    session.close()
    with pytest.raises(ValueError):
        session.run(["-Title=two\nlines"], timeout=60)


def test_it_never_outlives_its_process_even_after_kill_9():
    code = ("import sys; from oldphoto.archival.exiftool import session; "
            "from oldphoto.archival.master import exiftool_path; s = session(exiftool_path()); "
            "s.run(['-ver'], timeout=60); print(s._process.pid, flush=True); "
            "import time; time.sleep(600)")
    owner = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    pid = int(owner.stdout.readline())
    assert _alive(pid)
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid), "exiftool outlived its owner"


def test_errors_carry_the_exit_status():
    err = ExifToolError(1, b"Error: x")
    assert err.status == 1 and "exit 1" in str(err)
