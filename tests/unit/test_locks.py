"""Who holds an output folder (oldphoto.locks): the owner record, the flock, and when a lock goes.

Real folders, real processes and real flocks; no Snakemake.  A "dead" owner is a process that ran
and was reaped; a "live" one a ``sleep`` child; a reused pid is a live process named with another
start time.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from oldphoto import locks
from oldphoto.locks import FolderInUse, Machine, judge_owner, take_ownership, unlock

HERE = Machine("vm-a", "boot-1", "pid:[4026531836]")


def start_time(pid: int) -> int:
    """Field 22 of /proc/<pid>/stat, read here independently of oldphoto.worker.procs."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return int(text[text.rfind(")") + 2:].split()[19])


def record_for(pid: int, starttime: int | None, machine: Machine | None = None,
               **fields) -> dict:
    machine = machine or locks.this_machine()
    record = {"host": machine.host, "boot_id": machine.boot_id,
              "pid_namespace": machine.pid_namespace, "pid": pid, "starttime": starttime,
              "snakemake": None, "user": "someone", "uid": 1234,
              "since": "2024-06-11 12:00:03 +0000", "since_epoch": 1718107203.0,
              "flock": True, "token": "0123456789abcdef"}
    record.update(fields)
    return record


def leftover(work: Path, record: dict | None) -> dict[str, bytes]:
    """A folder as a killed run leaves it: Snakemake's two lock files and (optionally) the owner
    record; returns every file's bytes, to check later that nothing changed."""
    folder = work / ".snakemake" / "locks"
    folder.mkdir(parents=True)
    (folder / "0.input.lock").write_text(f"{work}/in/a.png\n")
    (folder / "0.output.lock").write_text(f"{work}/final_output/a.png\n")
    if record is not None:
        (folder / locks.OWNER_RECORD).write_text(json.dumps(record))
    return snapshot(work)


def snapshot(work: Path) -> dict[str, bytes]:
    return {str(p.relative_to(work)): p.read_bytes()
            for p in sorted((work / ".snakemake").rglob("*")) if p.is_file()}


@pytest.fixture
def sleeper():
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture
def dead_process():
    """(pid, start time) of a process that ran and is gone."""
    proc = subprocess.Popen(["sleep", "60"])
    started = start_time(proc.pid)
    proc.kill()
    proc.wait()
    return proc.pid, started


def hold_flock(path: Path) -> subprocess.Popen:
    """Another process holding an exclusive flock on ``path`` (as a running oldphoto does)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    code = ("import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


# ------------------------------------------------------------------------------------------------
# judge_owner: the decision alone
# ------------------------------------------------------------------------------------------------
def never_alive(pid, starttime):
    return False


def test_judge_same_host_boot_and_namespace_decides_by_the_processes():
    record = record_for(100, 5000, HERE, snakemake={"pid": 101, "starttime": 5001})
    assert judge_owner(record, HERE, flock="free", alive=never_alive).state == "dead"
    # either process alive (with its start time) keeps the lock
    assert judge_owner(record, HERE, flock="free",
                       alive=lambda pid, start: (pid, start) == (101, 5001)).state == "alive"
    assert judge_owner(record, HERE, flock="unsupported",
                       alive=lambda pid, start: pid == 100).state == "alive"


def test_judge_a_held_flock_is_alive_whatever_the_record_says():
    for record in (None, {}, record_for(100, 5000, HERE),
                   record_for(100, 5000, HERE._replace(host="vm-b"))):
        verdict = judge_owner(record, HERE, flock="held", alive=never_alive)
        assert verdict.state == "alive" and "holds the folder's lock" in verdict.reason


@pytest.mark.parametrize("where, words", [
    (HERE._replace(host="node-17"), "started on host node-17, not this one"),
    (HERE._replace(boot_id="boot-0"), "another boot (boot-0; now boot-1)"),
    (HERE._replace(boot_id=""), "another boot (unknown; now boot-1)"),
])
def test_judge_another_host_or_boot_is_unknown(where, words):
    verdict = judge_owner(record_for(100, 5000, where), HERE, flock="free", alive=never_alive)
    assert verdict.state == "unknown" and words in verdict.reason


def test_judge_without_a_record_or_with_an_unreadable_one_is_unknown():
    assert judge_owner(None, HERE, flock="free").state == "unknown"
    assert "no oldphoto owner record" in judge_owner(None, HERE, flock="free").reason
    assert judge_owner({}, HERE, flock="free").reason == "the owner record is unreadable"
    assert judge_owner({"host": "vm-a"}, HERE, flock="free").state == "unknown"


def test_judge_another_pid_namespace_of_this_kernel_trusts_only_the_flock():
    other = HERE._replace(pid_namespace="pid:[4026532175]")
    record = record_for(1, 77, other)
    # pid 1 is alive here, but it is not the owner: that pid lives in the other namespace
    assert judge_owner(record, HERE, flock="free", alive=lambda *a: True).state == "dead"
    assert judge_owner(record, HERE, flock="held").state == "alive"
    # an owner that held no flock (its file system had none) cannot be checked from here
    unflocked = record_for(1, 77, other, flock=False)
    assert judge_owner(unflocked, HERE, flock="free", alive=never_alive).state == "unknown"
    assert judge_owner(record, HERE, flock="unsupported", alive=never_alive).state == "unknown"


# ------------------------------------------------------------------------------------------------
# take_ownership: real folders and processes
# ------------------------------------------------------------------------------------------------
def test_a_new_run_records_itself_holds_the_flock_and_releases_both(tmp_path):
    before = time.time()
    ownership, removed = take_ownership(tmp_path)
    try:
        assert removed == []
        record = json.loads((tmp_path / ".snakemake" / "locks" / locks.OWNER_RECORD).read_text())
        assert record["host"] == socket.gethostname()
        assert record["boot_id"] == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        assert record["pid_namespace"] == os.readlink("/proc/self/ns/pid")
        assert (record["pid"], record["starttime"]) == (os.getpid(), start_time(os.getpid()))
        assert record["uid"] == os.getuid() and record["flock"] is True
        assert before - 1 <= record["since_epoch"] <= time.time()
        assert record["since"] == time.strftime("%Y-%m-%d %H:%M:%S %z",
                                                time.localtime(record["since_epoch"]))
        # the flock is held: another open file description cannot take it
        assert locks.try_flock(tmp_path / ".oldphoto" / "owner.lock") is None
        with pytest.raises(FolderInUse) as refused:
            take_ownership(tmp_path)
        assert refused.value.verdict.state == "alive"
        assert f"oldphoto pid {os.getpid()} on host {socket.gethostname()}" in refused.value.owner
    finally:
        ownership.release()
    assert not (tmp_path / ".snakemake" / "locks" / locks.OWNER_RECORD).exists()
    fd = locks.try_flock(tmp_path / ".oldphoto" / "owner.lock")
    assert fd is not None
    os.close(fd)


def test_this_host_dead_pid_lock_is_removed(tmp_path, dead_process):
    pid, started = dead_process
    leftover(tmp_path, record_for(pid, started))
    ownership, removed = take_ownership(tmp_path)
    try:
        lock_dir = tmp_path / ".snakemake" / "locks"
        assert removed == [
            f"the owner record of a dead run (oldphoto pid {pid} on host "
            f"{socket.gethostname()} (user someone), since 2024-06-11 12:00:03 +0000)",
            f"the stale Snakemake lock {lock_dir / '0.input.lock'}",
            f"the stale Snakemake lock {lock_dir / '0.output.lock'}",
        ]
        assert sorted(p.name for p in lock_dir.iterdir()) == [locks.OWNER_RECORD]
        assert json.loads((lock_dir / locks.OWNER_RECORD).read_text())["pid"] == os.getpid()
    finally:
        ownership.release()


def test_reused_pid_with_another_start_time_is_dead(tmp_path, sleeper):
    # the recorded pid runs, but it is another process: it started at another time
    leftover(tmp_path, record_for(sleeper.pid, start_time(sleeper.pid) + 1))
    ownership, removed = take_ownership(tmp_path)
    ownership.release()
    assert len(removed) == 3 and locks.lock_files(tmp_path) == []
    assert sleeper.poll() is None  # untouched


def test_this_host_live_pid_is_refused_and_nothing_changes(tmp_path, sleeper):
    before = leftover(tmp_path, record_for(sleeper.pid, start_time(sleeper.pid)))
    with pytest.raises(FolderInUse) as refused:
        take_ownership(tmp_path)
    assert refused.value.verdict == locks.Verdict(
        "alive", f"process {sleeper.pid} of that run is still running")
    assert f"oldphoto pid {sleeper.pid} on host {socket.gethostname()}" in refused.value.owner
    assert "since 2024-06-11 12:00:03 +0000" in refused.value.owner
    assert snapshot(tmp_path) == before


def test_the_snakemake_pid_of_the_record_counts_too(tmp_path, dead_process, sleeper):
    pid, started = dead_process
    before = leftover(tmp_path, record_for(pid, started, snakemake={
        "pid": sleeper.pid, "starttime": start_time(sleeper.pid)}))
    with pytest.raises(FolderInUse) as refused:
        take_ownership(tmp_path)
    assert refused.value.verdict.state == "alive"
    assert f"Snakemake pid {sleeper.pid}" in refused.value.owner
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("change, words", [
    ({"host": "node-17.cluster"}, "started on host node-17.cluster, not this one"),
    ({"boot_id": "00000000-0000-0000-0000-000000000000"}, "during another boot"),
])
def test_another_host_or_boot_is_refused(tmp_path, dead_process, change, words):
    pid, started = dead_process
    before = leftover(tmp_path, record_for(pid, started, **change))
    with pytest.raises(FolderInUse) as refused:
        take_ownership(tmp_path)
    assert refused.value.verdict.state == "unknown" and words in refused.value.verdict.reason
    assert f"oldphoto pid {pid} on host" in refused.value.owner
    assert snapshot(tmp_path) == before


def test_a_run_that_is_just_starting_is_refused(tmp_path):
    """Its flock is held, its record not written yet."""
    holder = hold_flock(tmp_path / ".oldphoto" / "owner.lock")
    try:
        with pytest.raises(FolderInUse) as refused:
            take_ownership(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert refused.value.verdict.state == "alive"
    assert refused.value.owner == "not recorded yet (a run that is just starting)"
    assert not (tmp_path / ".snakemake").exists()


def test_a_lock_without_owner_record_is_refused(tmp_path):
    before = leftover(tmp_path, None)
    stamp = (tmp_path / ".snakemake" / "locks" / "0.input.lock").stat().st_mtime
    with pytest.raises(FolderInUse) as refused:
        take_ownership(tmp_path)
    assert refused.value.verdict.state == "unknown"
    assert refused.value.owner == (
        "unknown (Snakemake lock files 0.input.lock, 0.output.lock since "
        + time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(stamp)) + ", no owner record)")
    assert snapshot(tmp_path) == before


def test_an_unreadable_record_is_refused(tmp_path):
    folder = tmp_path / ".snakemake" / "locks"
    folder.mkdir(parents=True)
    (folder / locks.OWNER_RECORD).write_text('{"host": "vm", "pi')
    with pytest.raises(FolderInUse) as refused:
        take_ownership(tmp_path)
    assert refused.value.verdict.reason == "the owner record is unreadable"
    assert (folder / locks.OWNER_RECORD).read_text() == '{"host": "vm", "pi'


def test_a_live_record_without_snakemake_lock_is_refused(tmp_path, sleeper):
    """A run between its start and Snakemake's lock (Snakemake builds its DAG first)."""
    folder = tmp_path / ".snakemake" / "locks"
    folder.mkdir(parents=True)
    (folder / locks.OWNER_RECORD).write_text(
        json.dumps(record_for(sleeper.pid, start_time(sleeper.pid))))
    with pytest.raises(FolderInUse):
        take_ownership(tmp_path)
    assert locks.lock_files(tmp_path) == [] and (folder / locks.OWNER_RECORD).is_file()


def test_a_dead_record_without_snakemake_lock_is_replaced(tmp_path, dead_process):
    folder = tmp_path / ".snakemake" / "locks"
    folder.mkdir(parents=True)
    (folder / locks.OWNER_RECORD).write_text(json.dumps(record_for(*dead_process)))
    ownership, removed = take_ownership(tmp_path)
    ownership.release()
    assert len(removed) == 1 and removed[0].startswith("the owner record of a dead run")


def test_another_pid_namespace_is_judged_by_the_flock(tmp_path):
    other = locks.this_machine()._replace(pid_namespace="pid:[1]")
    before = leftover(tmp_path, record_for(1, 1, other))
    holder = hold_flock(tmp_path / ".oldphoto" / "owner.lock")
    try:
        with pytest.raises(FolderInUse) as refused:
            take_ownership(tmp_path)
        assert refused.value.verdict.state == "alive"
        assert snapshot(tmp_path) == before
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone, the kernel dropped its flock: that run is over
    ownership, removed = take_ownership(tmp_path)
    ownership.release()
    assert len(removed) == 3


def test_a_dead_owner_is_kept_while_a_snakemake_process_works_in_the_folder(tmp_path,
                                                                             dead_process):
    work = tmp_path / "work"
    before = leftover(work, record_for(*dead_process))
    fake = tmp_path / "snakemake"  # a (fake) Snakemake process working in that folder
    fake.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(30)\n")  # no child process
    fake.chmod(0o755)
    holder = subprocess.Popen([str(fake), "--cores", "1"], cwd=work)
    try:
        deadline = time.monotonic() + 5
        while not locks.snakemake_processes(work) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert locks.snakemake_processes(work) == [holder.pid]
        with pytest.raises(FolderInUse) as refused:
            take_ownership(work)
        assert refused.value.verdict.reason == (
            f"Snakemake process {holder.pid} on this machine works in it")
        assert snapshot(work) == before
    finally:
        holder.kill()
        holder.wait()
    ownership, removed = take_ownership(work)
    ownership.release()
    assert len(removed) == 3


def test_a_dry_run_judges_but_changes_nothing(tmp_path, dead_process, sleeper):
    before = leftover(tmp_path, record_for(*dead_process))
    assert take_ownership(tmp_path, dry_run=True) == (None, [])
    assert snapshot(tmp_path) == before
    live = tmp_path / "live"
    leftover(live, record_for(sleeper.pid, start_time(sleeper.pid)))
    with pytest.raises(FolderInUse):
        take_ownership(live, dry_run=True)


def test_of_many_simultaneous_starts_exactly_one_wins(tmp_path):
    """Processes started together: the flock lets one in."""
    go = tmp_path / "go"
    code = ("import os, sys, time\n"
            "from oldphoto.locks import FolderInUse, take_ownership\n"
            "while not os.path.exists(sys.argv[2]):\n"
            "    time.sleep(0.001)\n"
            "try:\n"
            "    ownership, _ = take_ownership(sys.argv[1])\n"
            "except FolderInUse as err:\n"
            "    print('refused', err.verdict.state, flush=True)\n"
            "else:\n"
            "    print('owner', flush=True)\n"
            "    time.sleep(2)\n"
            "    ownership.release()\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "out"), str(go)],
                              stdout=subprocess.PIPE, text=True) for _ in range(6)]
    time.sleep(1.0)
    go.touch()
    answers = sorted(proc.communicate(timeout=60)[0].strip() for proc in procs)
    assert answers == ["owner"] + ["refused alive"] * 5


def test_without_flock_the_record_alone_lets_one_in(tmp_path, monkeypatch):
    """Where the file system has no flock (e.g. NFS mounted nolock across machines), the
    record's creation by link() decides: of many simultaneous starts exactly one wins."""
    monkeypatch.setattr(locks, "_flock", lambda workdir: (None, "unsupported"))
    barrier = threading.Barrier(8)
    results = []

    def start():
        barrier.wait()
        try:
            results.append(take_ownership(tmp_path)[0])
        except FolderInUse as err:
            results.append(err.verdict.state)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    owners = [r for r in results if isinstance(r, locks.Ownership)]
    assert len(owners) == 1 and sorted(r for r in results if isinstance(r, str)) == ["alive"] * 7
    assert owners[0].record["flock"] is False
    owners[0].release()


def test_a_killed_snakemake_leaves_the_record_for_the_next_run(tmp_path):
    """An oldphoto whose Snakemake was SIGKILLed keeps its record (naming both processes) with
    the lock left behind; once it has exited too, the next oldphoto removes both."""
    code = ("import json, os, signal, subprocess, sys\n"
            "from pathlib import Path\n"
            "from oldphoto.locks import take_ownership\n"
            "work = Path(sys.argv[1])\n"
            "ownership, _ = take_ownership(work)\n"
            "snakemake = subprocess.Popen(['sleep', '60'], pass_fds=ownership.pass_fds)\n"
            "ownership.started(snakemake.pid)\n"
            "(work / '.snakemake' / 'locks' / '0.output.lock').write_text('x\\n')\n"
            "snakemake.kill()\n"
            "ownership.ended(snakemake.wait())\n"
            "ownership.release()\n"
            "print(json.dumps([os.getpid(), snakemake.pid]))\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                         text=True, check=True)
    oldphoto_pid, snakemake_pid = json.loads(out.stdout)
    path = tmp_path / ".snakemake" / "locks" / locks.OWNER_RECORD
    record = json.loads(path.read_text())  # kept: it explains the lock left behind
    assert (record["pid"], record["snakemake"]["pid"]) == (oldphoto_pid, snakemake_pid)
    ownership, removed = take_ownership(tmp_path)
    ownership.release()
    assert removed == [
        f"the owner record of a dead run ({locks.describe_owner(record)})",
        f"the stale Snakemake lock {path.parent / '0.output.lock'}"]
    assert f"Snakemake pid {snakemake_pid}" in removed[0]


def test_snakemake_ending_normally_lets_the_record_go(tmp_path):
    ownership, _ = take_ownership(tmp_path)
    ownership.ended(1)  # a failed run still removes its lock
    ownership.release()
    assert not (tmp_path / ".snakemake" / "locks" / locks.OWNER_RECORD).exists()


# ------------------------------------------------------------------------------------------------
# oldphoto --unlock
# ------------------------------------------------------------------------------------------------
def test_unlock_removes_the_lock_and_the_record_and_says_what(tmp_path):
    leftover(tmp_path, record_for(4242, 1, locks.this_machine()._replace(host="node-17")))
    lock_dir = tmp_path / ".snakemake" / "locks"
    assert unlock(tmp_path) == [
        f"Snakemake lock {lock_dir / '0.input.lock'}",
        f"Snakemake lock {lock_dir / '0.output.lock'}",
        f"owner record {lock_dir / locks.OWNER_RECORD} (oldphoto pid 4242 on host node-17 "
        "(user someone), since 2024-06-11 12:00:03 +0000)",
    ]
    assert list(lock_dir.iterdir()) == []
    assert unlock(tmp_path) == []
    assert unlock(tmp_path / "missing") == []


def test_unlock_refuses_a_run_alive_on_this_machine(tmp_path, sleeper):
    before = leftover(tmp_path, record_for(sleeper.pid, start_time(sleeper.pid)))
    with pytest.raises(FolderInUse):
        unlock(tmp_path)
    assert snapshot(tmp_path) == before
    holder = hold_flock(tmp_path / ".oldphoto" / "owner.lock")
    try:
        sleeper.kill()
        sleeper.wait()
        with pytest.raises(FolderInUse) as refused:
            unlock(tmp_path)
        assert "holds the folder's lock" in refused.value.verdict.reason
    finally:
        holder.kill()
        holder.wait()
    assert len(unlock(tmp_path)) == 3


# ------------------------------------------------------------------------------------------------
# The command line: the refusal and --unlock, in process (nothing is run)
# ------------------------------------------------------------------------------------------------
def test_the_command_stops_before_writing_anything_and_names_the_owner(tmp_path, capsys):
    from oldphoto import cli

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.png").write_bytes(b"")  # a photo (by name): the folder is checked first
    out = tmp_path / "out"
    other = locks.this_machine()._replace(host="node-17")
    before = leftover(out, record_for(4242, 1, other))
    code = cli.main(["--input_folder", str(tmp_path / "in"), "--output_folder", str(out),
                     "--backend", "classical"])
    err = capsys.readouterr().err.splitlines()
    assert code == cli.EXIT_FOLDER_IN_USE == 3
    assert err[:3] == [
        f"oldphoto: error: {out} is locked by a run that cannot be checked from here; "
        "nothing was done",
        "oldphoto:   owner: oldphoto pid 4242 on host node-17 (user someone), since "
        "2024-06-11 12:00:03 +0000",
        f"oldphoto:   why: the run was started on host node-17, not this one "
        f"({socket.gethostname()}): it cannot be checked from here",
    ]
    assert f"oldphoto:     oldphoto --output_folder {out} --unlock" in err
    assert any(line.startswith("oldphoto:   or: ") and line.endswith(
        f"--directory {out} --configfile {out / 'oldphoto_config.yaml'} --unlock")
        for line in err)
    assert not (out / "oldphoto_config.yaml").exists() and snapshot(out) == before


def test_the_command_unlock_removes_both_and_says_what(tmp_path, capsys):
    from oldphoto import cli

    out = tmp_path / "out"
    leftover(out, record_for(4242, 1, locks.this_machine()._replace(host="node-17")))
    assert cli.main(["--output_folder", str(out), "--unlock"]) == 0
    lines = capsys.readouterr().out.splitlines()
    lock_dir = out / ".snakemake" / "locks"
    assert lines == [
        f"oldphoto: removed Snakemake lock {lock_dir / '0.input.lock'}",
        f"oldphoto: removed Snakemake lock {lock_dir / '0.output.lock'}",
        f"oldphoto: removed owner record {lock_dir / locks.OWNER_RECORD} (oldphoto pid 4242 on "
        "host node-17 (user someone), since 2024-06-11 12:00:03 +0000)"]
    assert cli.main(["--output_folder", str(out), "--unlock"]) == 0
    assert capsys.readouterr().out == f"oldphoto: {out} has no lock; nothing removed\n"
