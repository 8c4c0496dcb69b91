"""Benchmark: how long loading each of the 9 checkpoints takes, official file vs verified cache.

Recipe weights (``oldphoto.testing.recipe.write_recipe_checkpoints``) are written in the official
layout to a temporary folder; for each network this measures (median of ``--repeat`` runs):

* ``torch.load`` of the official file (``weights_only=True``);
* ``convert_to_cache`` (strict check + safetensors + sha256 record);
* the naive per-job load: ``build_network`` (random init) + ``read_official`` + ``load_state_dict``;
* ``load_network`` from the cache in this process;
* ``load_network`` in a fresh interpreter, with its imports (torch, oldphoto) timed separately,
  and the wall time of the whole subprocess.

Files are read from a warm page cache (they were just written). Prints a markdown table.

    .venv/bin/python bench/checkpoint_load.py [--repeat 3] [--threads 1] [--names VAE_A_quality ...]

On a machine whose cores are busy, use ``--threads 1``: with more torch threads than free cores
every parallel copy waits for a descheduled OpenMP thread and small copies take milliseconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import median_time

_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
if int(sys.argv[3]) > 0:
    torch.set_num_threads(int(sys.argv[3]))
from oldphoto.checkpoints import load_network
import oldphoto.checkpoints.registry
t2 = time.perf_counter()
net = load_network(sys.argv[1], sys.argv[2])
t3 = time.perf_counter()
print(json.dumps({"import_torch": t1 - t0, "import_oldphoto": t2 - t1, "load": t3 - t2}))
"""


def fresh_process(name: str, cache: Path, repeat: int, threads: int) -> dict[str, float]:
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, name, str(cache), str(threads)],
            check=True, capture_output=True, text=True,
        )
        wall = time.perf_counter() - start
        runs.append({**json.loads(out.stdout.strip().splitlines()[-1]), "wall": wall})
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def import_torch_time(repeat: int) -> float:
    def run():
        subprocess.run([sys.executable, "-c", "import torch"], check=True)

    return median_time(run, repeat)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--names", nargs="*", help="networks (default: all 9)")
    parser.add_argument("--workdir", type=Path, help="folder for the files (default: a temp dir)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads, here and in the fresh processes (default: torch's)")
    args = parser.parse_args(argv)

    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)

    from oldphoto import checkpoints as ck
    from oldphoto.checkpoints.registry import build_network
    from oldphoto.testing.recipe import write_recipe_checkpoints

    names = args.names or list(ck.OFFICIAL_FILES)
    with tempfile.TemporaryDirectory(prefix="oldphoto-bench-", dir=args.workdir) as tmp:
        root = Path(tmp)
        rows = []
        for name in names:
            (official,) = write_recipe_checkpoints(root / "checkpoints", [name])
            cache = root / "cache" / f"{name}.safetensors"

            t_torch_load = median_time(
                lambda: torch.load(official, map_location="cpu", weights_only=True), args.repeat
            )
            t_convert = median_time(lambda: ck.convert_to_cache(official, name, cache), args.repeat)

            def naive():
                net = build_network(name)
                net.load_state_dict(ck.read_official(official, name))

            t_naive = median_time(naive, args.repeat)
            t_load = median_time(lambda: ck.load_network(name, cache), args.repeat)
            t_full = median_time(lambda: ck.load_network(name, cache, verify="full"), args.repeat)
            child = fresh_process(name, cache, args.repeat, args.threads)
            rows.append((
                name, official.stat().st_size / 2**20, t_torch_load, t_convert, t_naive, t_load,
                t_full, child["import_torch"] + child["import_oldphoto"], child["load"],
                child["wall"],
            ))
            official.unlink()
            cache.unlink()
            print(f"done {name}", file=sys.stderr, flush=True)

        t_import_torch = import_torch_time(args.repeat)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"median of {args.repeat} runs, warm page cache; times in seconds\n")
    print("| network | file MiB | torch.load | convert_to_cache | build + read_official + "
          "load_state_dict | load_network | load_network verify=full | fresh process: imports "
          "| fresh process: load_network | fresh process: wall |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, size, *times in rows:
        print(f"| {name} | {size:.1f} | " + " | ".join(f"{t:.3f}" for t in times) + " |")
    print(f"\n`python -c \"import torch\"`: {t_import_torch:.3f} s (wall, median of {args.repeat})")


if __name__ == "__main__":
    main()
