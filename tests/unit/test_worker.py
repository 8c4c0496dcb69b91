"""Warm model workers (oldphoto.worker): real worker processes, no Snakemake needed.

Handlers live in tests/worker_handlers.py; every test uses its own run key (its tmp_path), so its
workers are its own, and the fixture stops them at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from oldphoto.errors import ConfigError
from oldphoto.jobs import protocol
from oldphoto.worker import client
from oldphoto.worker.client import (
    WorkerPaths,
    runtime_dir,
    running_workers,
    shutdown_all,
    submit,
)
from oldphoto.worker.procs import looks_like_snakemake, process_alive, process_start_time
from oldphoto.worker.protocol import (
    ConnectionClosed,
    ProtocolError,
    WorkerDied,
    WorkerError,
    recv_message,
    send_message,
)

TESTS = Path(__file__).resolve().parents[1]
SRC = TESTS.parent / "src"
HANDLER = "worker_handlers:handle"


def wait_until(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


class Run:
    """One test run's key and the submit() arguments that make its workers this test's."""

    def __init__(self, tmp_path: Path) -> None:
        self.key = str(tmp_path)
        self.env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), str(TESTS)]))
        self.env.pop("CUDA_VISIBLE_DEVICES", None)
        self.watch = (os.getpid(), process_start_time(os.getpid()))

    def submit(self, task: str, pool: str = "cpu", **fields):
        options = {name: fields.pop(name) for name in
                   ("handler", "idle_timeout", "spawn_env") if name in fields}
        options.setdefault("handler", HANDLER)
        options.setdefault("idle_timeout", 30)
        options.setdefault("spawn_env", self.env)
        return submit({"task": task, **fields}, pool=pool, key=self.key, watch=self.watch,
                      connect_timeout=30, **options)

    def paths(self, pool: str = "cpu", slot: int = 0) -> WorkerPaths:
        return WorkerPaths(runtime_dir(self.key), pool, slot)


@pytest.fixture
def run(tmp_path):
    this = Run(tmp_path)
    yield this
    shutdown_all(this.key, timeout=5)
    shutil.rmtree(runtime_dir(this.key), ignore_errors=True)


# ------------------------------------------------------------------------------------------------
def test_client_import_is_light():
    code = ("import sys, json, oldphoto.worker.client; "
            "print(json.dumps([m for m in ('numpy', 'torch', 'PIL', 'cv2') if m in sys.modules]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(SRC)), check=True)
    assert json.loads(proc.stdout) == []


def test_protocol_round_trip_and_ends():
    a, b = socket.socketpair()
    with a, b:
        message = {"task": "x", "params": {"list": [1, 2.5, None], "text": "é"}}
        send_message(a, message)
        assert recv_message(b) == message
        a.sendall(b"\x00\x00\x00\x10{\"trunc")  # announces 16 bytes, sends 7, then closes
        a.shutdown(socket.SHUT_WR)
        with pytest.raises(ProtocolError):
            recv_message(b)
    c, d = socket.socketpair()
    with c, d:
        c.close()
        with pytest.raises(ConnectionClosed):
            recv_message(d)


def test_looks_like_snakemake():
    assert looks_like_snakemake(["/venv/bin/python", "/venv/bin/snakemake", "--cores", "2"])
    assert looks_like_snakemake(["snakemake", "-j1"])
    assert looks_like_snakemake(["python3", "-m", "snakemake", "--target-jobs", "x"])
    assert not looks_like_snakemake(["python", "-m", "pytest", "tests/snakemake_test.py"])
    assert not looks_like_snakemake([])


def test_runtime_dir_is_short_and_keyed(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    first = runtime_dir("/data/run1")
    assert runtime_dir("/data/run1") == first
    assert runtime_dir("/data/run2") != first
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    assert runtime_dir("/data/run1") != first
    longest = WorkerPaths(first, "p" * 32, 255).sock
    assert len(str(longest)) <= client.SOCKET_PATH_MAX


def test_round_trip_and_warm_reuse(run, tmp_path):
    out = tmp_path / "out.txt"
    first = run.submit("echo", params={"n": 1})
    assert first["ok"] and first["params"] == {"n": 1}
    assert first["worker"]["slot"] == 0 and first["worker"]["served"] == 1
    assert first["cwd"] == os.getcwd()  # the worker runs in the client's directory
    written = run.submit("write", outputs={"file": str(out)}, params={"text": "hello"})
    assert written["ok"] and out.read_text() == "hello"
    again = run.submit("echo", params={"n": 2})
    assert again["worker"]["pid"] == first["worker"]["pid"] != os.getpid()
    assert again["worker"]["served"] == 3
    log = run.paths().log.read_text()
    assert "task='echo' ok=True" in log and "task='write' ok=True" in log


def test_concurrent_clients_get_different_workers(run):
    results: dict[int, dict] = {}

    def one(index: int) -> None:
        results[index] = run.submit("sleep", params={"seconds": 1.0})

    threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(results[i]["ok"] for i in range(2))
    assert sorted(results[i]["worker"]["slot"] for i in range(2)) == [0, 1]
    assert results[0]["worker"]["pid"] != results[1]["worker"]["pid"]
    assert len(running_workers(run.key)) == 2


def test_handler_failures_keep_the_worker(run):
    raised = run.submit("raise")
    assert raised["ok"] is False
    assert raised["message"] == "internal error (ValueError: boom from the handler)"
    assert "worker_handlers.py" in raised["traceback"]
    bad = run.submit("bad_image", inputs={"image": "/x/a.png"})
    assert bad["ok"] is False and bad["message"] == "bad image: /x/a.png: cannot decode"
    odd = run.submit("not_a_dict")
    assert odd["ok"] is False and "'done'" in odd["message"]
    after = run.submit("echo")
    assert after["ok"] and after["worker"]["pid"] == raised["worker"]["pid"]
    assert after["worker"]["served"] == 4


@pytest.mark.parametrize("task, returncode, words", [
    ("exit", 3, "exit status 3"),
    ("segfault", -signal.SIGSEGV, "killed by signal 11 (SIGSEGV)"),
])
def test_worker_crash_raises_worker_died_then_respawns(run, task, returncode, words):
    first = run.submit("echo")
    with pytest.raises(WorkerDied) as caught:
        run.submit(task, params={"status": 3})
    err = caught.value
    assert err.returncode == returncode
    assert words in str(err) and f"task {task!r}" in str(err)
    assert err.path == str(run.paths().log)
    assert not process_alive(first["worker"]["pid"])
    assert not run.paths().sock.exists()  # the supervisor removed what the server left
    after = run.submit("echo")
    assert after["ok"] and after["worker"]["pid"] != first["worker"]["pid"]


def test_stale_socket_and_pid_file_are_replaced(run):
    first = run.submit("echo")
    info = json.loads(run.paths().pid.read_text())
    # Freeze the supervisor so nothing cleans up, then kill both: files stay behind.
    os.kill(info["supervisor"], signal.SIGSTOP)
    os.kill(info["pid"], signal.SIGKILL)
    os.kill(info["supervisor"], signal.SIGKILL)
    assert wait_until(lambda: not process_alive(info["pid"], info["starttime"]))
    # The main thread can be a zombie while another thread of the killed worker still holds the
    # listening socket (a connection would be accepted, then reset): wait until nothing listens.
    assert wait_until(lambda: _refused(run.paths().sock))
    assert run.paths().sock.exists() and run.paths().pid.exists()
    after = run.submit("echo")
    assert after["ok"] and after["worker"]["pid"] != first["worker"]["pid"]


def _refused(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except ConnectionRefusedError:
        return True
    finally:
        probe.close()
    return False


def test_idle_worker_exits(run):
    first = run.submit("echo", idle_timeout=1.0)
    pid = first["worker"]["pid"]
    assert wait_until(lambda: not process_alive(pid), timeout=10)
    assert not run.paths().sock.exists() and not run.paths().pid.exists()
    assert "exit: idle for" in run.paths().log.read_text()
    assert running_workers(run.key) == []


def test_shutdown_all_stops_every_worker(run):
    pids = [run.submit("echo", pool=pool)["worker"]["pid"] for pool in ("a", "b-gpu0")]
    assert shutdown_all(run.key) == 2
    assert not any(process_alive(pid) for pid in pids)
    assert running_workers(run.key) == []
    assert "exit: shutdown requested" in run.paths("a").log.read_text()


def test_sigterm_stops_a_worker(run):
    pid = run.submit("echo")["worker"]["pid"]
    os.kill(pid, signal.SIGTERM)
    assert wait_until(lambda: not process_alive(pid), timeout=10)
    assert "exit: SIGTERM" in run.paths().log.read_text()


def test_worker_exits_when_the_run_owner_is_killed(run, tmp_path):
    """An outer fake Snakemake (a script named ``snakemake``) starts an inner one (as Snakemake
    runs a ``run:`` job), which starts a job client.  The worker must watch the **outer** one:
    SIGKILL of it alone takes the worker (and the worker's supervisor) with it."""
    job = (f"import json, os\n"
           f"from oldphoto.worker.client import submit\n"
           f"from oldphoto.worker.procs import find_run_owner\n"
           f"r = submit({{'task': 'echo'}}, pool='cpu', handler={HANDLER!r}, key={run.key!r})\n"
           f"print(json.dumps({{'worker': r['worker']['pid'], 'owner': find_run_owner(),\n"
           f"                  'inner': os.getppid()}}))\n")
    inner_script = str(tmp_path / "inner" / "snakemake")
    scripts = {"inner": f"subprocess.run([sys.executable, '-c', {job!r}], check=True)",
               "outer": f"subprocess.run([sys.executable, {inner_script!r}], check=True)"}
    for name, code in scripts.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "snakemake").write_text(
            f"import subprocess, sys, time\n{code}\nsys.stdout.flush()\ntime.sleep(120)\n")
    outer = subprocess.Popen([sys.executable, str(tmp_path / "outer" / "snakemake")],
                             stdout=subprocess.PIPE, text=True, env=run.env)
    line = {}
    try:
        line = json.loads(outer.stdout.readline())
        assert line["owner"][0] == outer.pid != line["inner"]
        worker = line["worker"]
        info = json.loads(run.paths().pid.read_text())
        assert info["pid"] == worker and process_alive(worker)
    finally:
        outer.kill()
        outer.wait()
    try:
        assert wait_until(lambda: not process_alive(worker), timeout=5)
        assert wait_until(lambda: not process_alive(info["supervisor"]), timeout=5)
        assert process_alive(line["inner"])  # the inner one lives on: it was not watched
        assert f"watched process {outer.pid} is gone" in run.paths().log.read_text()
    finally:
        if line.get("inner"):
            os.kill(line["inner"], signal.SIGKILL)


def test_worker_sees_the_spawning_environment(run):
    env = dict(run.env, CUDA_VISIBLE_DEVICES="7")
    seen = run.submit("env", params={"name": "CUDA_VISIBLE_DEVICES"}, spawn_env=env)
    assert seen["value"] == "7"
    # A request that needs another value gets a worker started with it.
    other = run.submit("env", params={"name": "CUDA_VISIBLE_DEVICES"}, spawn_env=env,
                       env={"CUDA_VISIBLE_DEVICES": "5"})
    assert other["value"] == "5" and other["worker"]["pid"] != seen["worker"]["pid"]
    assert not process_alive(seen["worker"]["pid"])


def test_other_handler_replaces_the_worker(run):
    first = run.submit("echo")
    second = run.submit("echo", handler="worker_handlers:handle_other")
    assert second["ok"] and second["worker"]["pid"] != first["worker"]["pid"]


def test_worker_that_cannot_start_is_reported(run):
    with pytest.raises(WorkerError) as caught:
        run.submit("echo", handler="no_such_module_here:handle")
    assert "failed to start (exit status 1)" in str(caught.value)
    assert "ModuleNotFoundError" in str(caught.value)


def test_run_in_process_answers_like_a_worker_without_one(run):
    result = client.run_in_process({"task": "echo", "params": {"n": 1}}, HANDLER)
    assert result["ok"] and result["pid"] == os.getpid() and "worker" not in result
    assert result["params"] == {"n": 1}
    failed = client.run_in_process({"task": "raise"}, HANDLER)
    assert failed["message"] == "internal error (ValueError: boom from the handler)"
    assert not runtime_dir(run.key).exists()


def test_malformed_requests_are_config_errors(run):
    with pytest.raises(ConfigError):
        submit({"params": {}}, pool="cpu", handler=HANDLER, key=run.key)
    with pytest.raises(ConfigError):
        submit({"task": "echo"}, pool="no/slash", handler=HANDLER, key=run.key)


# ------------------------------------------------------------------------------------------------
# One retry when the worker dies under a request (client.submit_retrying_once)
# ------------------------------------------------------------------------------------------------
def submit_retrying(run: Run, task: str, watch: tuple[int, int] | None = None, **fields):
    """As a workflow job submits: its RETRIED line (oldphoto.jobs.protocol) written on retry."""
    def on_retry(died: str) -> None:
        protocol.append_to_log(fields.get("log"), protocol.retried_line("restore_global", "p07",
                                                                        died))

    return client.submit_retrying_once(
        {"task": task, "rule": "restore_global", "image": "p07", **fields}, pool="cpu",
        key=run.key, watch=watch or run.watch, handler=HANDLER, idle_timeout=30,
        spawn_env=run.env, connect_timeout=30, on_retry=on_retry)


def test_a_request_whose_worker_died_is_retried_once_in_a_fresh_worker(run, tmp_path):
    log = tmp_path / "job.log"
    first = run.submit("echo")["worker"]["pid"]
    reply = submit_retrying(run, "exit_once", params={"marker": str(tmp_path / "marker")},
                            log=str(log))
    assert reply["ok"] and reply["message"] == "second life"
    assert not process_alive(first) and reply["pid"] not in (first, None)
    died = (f"worker died: {run.paths().log}: worker cpu-0 (pid {first}) died during task "
            "'exit_once': exit status 3; see its log")
    assert reply["retried"] == died
    # the second attempt rewrote the log; the retry is its last line
    assert log.read_text().splitlines() == [
        f"attempt in worker {reply['pid']}",
        f"RETRIED restore_global p07 :: {died}; retried once in a fresh worker"]


def test_a_worker_dying_twice_fails_the_request_after_one_retry(run, tmp_path):
    log = tmp_path / "job.log"
    with pytest.raises(WorkerDied) as caught:
        submit_retrying(run, "exit", params={"status": 3}, log=str(log))
    assert "exit status 3" in str(caught.value) and "exit status 3" in caught.value.retried
    assert caught.value.retried != str(caught.value)  # two workers, two pids
    lines = log.read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("RETRIED restore_global p07 :: worker died")


def test_a_request_failing_for_its_own_reasons_is_not_retried(run, tmp_path):
    log = tmp_path / "job.log"
    log.write_text("")
    first = run.submit("echo")["worker"]
    reply = submit_retrying(run, "bad_image", inputs={"image": "broken.png"}, log=str(log))
    assert reply == {"ok": False, "message": "bad image: broken.png: cannot decode",
                     "error_kind": "bad image", "worker": reply["worker"]}
    assert reply["worker"]["pid"] == first["pid"] and reply["worker"]["served"] == 2
    assert "retried" not in reply and log.read_text() == ""


def test_no_retry_once_the_run_that_owns_the_workers_is_gone(run, tmp_path):
    """The worker ends with its run (the watched process): so does the request, unretried."""
    owner = subprocess.Popen(["sleep", "60"])
    watch = (owner.pid, process_start_time(owner.pid))
    log = tmp_path / "job.log"
    log.write_text("")
    killer = threading.Timer(1.0, owner.kill)
    killer.start()
    try:
        with pytest.raises(WorkerDied) as caught:
            submit_retrying(run, "sleep", params={"seconds": 20}, log=str(log), watch=watch)
    finally:
        killer.cancel()
        owner.kill()
        owner.wait()
    assert getattr(caught.value, "retried", None) is None
    assert log.read_text() == ""
    assert f"watched process {owner.pid} is gone" in run.paths().log.read_text()
