"""What a job pays to hand a request to a warm worker, against what it pays without one.

Variants (all with the no-op handler ``oldphoto.worker.handler:noop``, so only overhead is timed):

- ``warm round trip``: :func:`oldphoto.worker.client.submit` in a loop in this process against a
  warm worker (slot lock, run-key hash, connect, request, reply);
- ``thin job``: a fresh ``python -c`` that imports the client and submits one request to that warm
  worker — the whole cost of a network job's process when its worker is warm;
- ``client import``: ``python -c 'import oldphoto.worker.client'`` (interpreter start + import),
  next to ``python -c pass``;
- ``cold in-process``: ``python -c`` that imports torch and runs the request in-process
  (``run_in_process``) — the floor of a network job without workers, before any checkpoint load;
- ``cold spawn``: the first submit of a new run (spawns the worker, waits for its ping).

    .venv/bin/python bench/worker_overhead.py [--round-trips 200] [--repeat 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PYTHON, REPO, loadavg, machine_info, machine_markdown, median  # noqa: E402

from oldphoto.worker.client import runtime_dir, shutdown_all, submit  # noqa: E402

HANDLER = "oldphoto.worker.handler:noop"


def timed_process(code: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([PYTHON, "-c", code], check=True, env=env)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--round-trips", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    info = machine_info()
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    env.pop("OLDPHOTO_WORKERS", None)
    os.environ.pop("OLDPHOTO_WORKERS", None)
    scratch = tempfile.mkdtemp(prefix="oldphoto-bench-worker-")
    # Children submit with this process as the watched run owner.
    watch = f"({os.getpid()}, __import__('oldphoto.worker.procs').worker.procs" \
            f".process_start_time({os.getpid()}))"
    key = f"{scratch}/warm"
    request = {"task": "noop"}
    from oldphoto.worker.procs import process_start_time

    owner = (os.getpid(), process_start_time(os.getpid()) or 0)
    spawns = []
    try:
        for index in range(3):
            start = time.perf_counter()
            submit(request, pool="bench", handler=HANDLER, key=f"{scratch}/cold{index}",
                   watch=owner, spawn_env=env)
            spawns.append(time.perf_counter() - start)
            shutdown_all(f"{scratch}/cold{index}")
            shutil.rmtree(runtime_dir(f"{scratch}/cold{index}"), ignore_errors=True)
        submit(request, pool="bench", handler=HANDLER, key=key, watch=owner, spawn_env=env)
        trips = []
        for _ in range(args.round_trips):
            start = time.perf_counter()
            submit(request, pool="bench", handler=HANDLER, key=key, watch=owner, spawn_env=env)
            trips.append(time.perf_counter() - start)
        thin_code = (f"from oldphoto.worker.client import submit; "
                     f"r = submit({request!r}, pool='bench', handler={HANDLER!r}, key={key!r}, "
                     f"watch={watch}); assert r['ok'] and r['worker']['served'] > 1, r")
        import_code = "import oldphoto.worker.client"
        cold_code = (f"import torch; from oldphoto.worker.client import run_in_process; "
                     f"assert run_in_process({request!r}, {HANDLER!r})['ok']")
        thin, imports, cold, bare = [], [], [], []
        for _ in range(args.repeat):  # interleaved: a load spike hits every variant alike
            bare.append(timed_process("pass", env))
            thin.append(timed_process(thin_code, env))
            imports.append(timed_process(import_code, env))
            cold.append(timed_process(cold_code, env))
    finally:
        shutdown_all(key)
        shutil.rmtree(runtime_dir(key), ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)
    rows = [
        ("warm round trip (in-process loop)", trips),
        ("thin job: python -c submit() to a warm worker", thin),
        ("python -c 'import oldphoto.worker.client'", imports),
        ("python -c pass (interpreter start)", bare),
        ("cold in-process: python -c 'import torch; run_in_process()'", cold),
        ("cold spawn: first submit of a run (noop handler)", spawns),
    ]
    print("# Worker overhead (no-op request)\n")
    print(machine_markdown(info, load_after=loadavg()))
    print("\n| variant | n | median ms | min ms | max ms |\n|---|---|---|---|---|")
    for name, values in rows:
        print(f"| {name} | {len(values)} | {median(values) * 1e3:.1f} | "
              f"{min(values) * 1e3:.1f} | {max(values) * 1e3:.1f} |")


if __name__ == "__main__":
    main()
