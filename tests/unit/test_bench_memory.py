"""bench/_common.RunMemory counts every process of a run, also the detached warm workers.

The workers leave Snakemake's process tree (a new session, re-parented to init), so a run's
memory is Snakemake's tree plus every process carrying the run's ``OLDPHOTO_RUN_KEY``; a process
of another run (another key) is not counted.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("bench_common", REPO / "bench" / "_common.py")
bench_common = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_common)

MIB = 2**20
HOLD = ("import sys, time; block = bytearray({mib} << 20); print('ready', flush=True); "
        "time.sleep(60)")
# Snakemake with one job: the job is its child (in its tree, no key needed)
ROOT = ("import subprocess, sys, time; block = bytearray(40 << 20); "
        "job = subprocess.Popen([sys.executable, '-c', sys.argv[1]], stdout=subprocess.PIPE, "
        "text=True); job.stdout.readline(); print('ready', job.pid, flush=True); time.sleep(60)")
# a launcher that starts the "worker" in its own session and exits: the worker is re-parented
# away from the launcher's tree, as oldphoto.worker.client does it
DETACH = ("import subprocess, sys; subprocess.Popen([sys.executable, '-c', sys.argv[1]], "
          "start_new_session=True, stdout=open(sys.argv[2], 'w'))")


def test_a_run_is_its_tree_and_the_detached_processes_with_its_key(tmp_path):
    key = str(tmp_path / "out")
    started: list = []
    try:
        root = subprocess.Popen([sys.executable, "-c", ROOT, HOLD.format(mib=30)],
                                stdout=subprocess.PIPE, text=True)
        started.append(root)
        ready = tmp_path / "worker.ready"
        subprocess.run([sys.executable, "-c", DETACH, HOLD.format(mib=90), str(ready)],
                       env={**os.environ, "OLDPHOTO_RUN_KEY": key}, check=True)
        unrelated = subprocess.Popen([sys.executable, "-c", HOLD.format(mib=20)],
                                     stdout=subprocess.PIPE, text=True)
        other_run = subprocess.Popen([sys.executable, "-c", HOLD.format(mib=150)],
                                     env={**os.environ, "OLDPHOTO_RUN_KEY": key + "-other"},
                                     stdout=subprocess.PIPE, text=True)
        started += [unrelated, other_run]
        word, job = root.stdout.readline().split()
        assert word == "ready"
        started.append(int(job))
        for process in (unrelated, other_run):
            assert process.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 30
        while "ready" not in ready.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)

        memory = bench_common.RunMemory(root.pid, key)
        memory.sample()
        members = set(memory.members())
        workers = members - {root.pid, int(job)}
        assert {root.pid, int(job)} <= members and len(workers) == 1
        started.append(workers.pop())
        assert unrelated.pid not in members and other_run.pid not in members
        summary = memory.summary()
        assert 90 * MIB < summary["largest_hwm"] < 150 * MIB  # the worker, not the other run
        assert (90 + 40 + 30) * MIB < summary["peak_pss_sum"] <= summary["peak_rss_sum"]
        assert 40 * MIB < summary["snakemake_hwm"] < 90 * MIB  # the root's own
        assert summary["processes"] == 3
    finally:
        for process in started:
            if isinstance(process, int):
                try:
                    os.kill(process, 9)
                except ProcessLookupError:
                    pass
            else:
                process.kill()
                process.wait()
