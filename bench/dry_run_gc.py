"""The garbage collector in Snakemake's process during a large dry run: with the workflow's relaxed
thresholds (``oldphoto.scheduling.relax_garbage_collection``) and with Python's defaults.

Runs ``snakemake -n --quiet rules`` on N empty placeholder photos (``bench/scale.py``'s
placeholders and config) under a launcher that counts the collector's runs and their time
(``gc.callbacks``); for the "defaults" variant it makes ``relax_garbage_collection`` a no-op
before the Snakefile calls it.  Wall time and peak RSS of the Snakemake process come with it.

    .venv/bin/python bench/dry_run_gc.py [--photos 10000] [--out bench/results/scale.md]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PYTHON, REPO, loadavg, machine_info, machine_markdown, stub_path, write_results  # noqa: E402
from scale import make_placeholders  # noqa: E402

LAUNCHER = r"""
import atexit, gc, json, os, resource, runpy, sys, time
out, variant = os.environ.pop("OLDPHOTO_GC_OUT"), os.environ.pop("OLDPHOTO_GC_VARIANT")
if variant == "defaults":
    import oldphoto.scheduling
    oldphoto.scheduling.relax_garbage_collection = lambda *a, **k: None
stats, started = {"collections": 0, "seconds": 0.0}, [0.0]
def on_gc(phase, info):
    if phase == "start":
        started[0] = time.perf_counter()
    else:
        stats["collections"] += 1
        stats["seconds"] += time.perf_counter() - started[0]
gc.callbacks.append(on_gc)
def report():
    with open("/proc/self/status") as status:
        hwm = next(int(l.split()[1]) * 1024 for l in status if l.startswith("VmHWM:"))
    with open(out, "w") as handle:
        json.dump({**stats, "thresholds": gc.get_threshold(), "vmhwm": hwm}, handle)
atexit.register(report)
sys.argv = ["snakemake", *sys.argv[1:]]
runpy.run_module("snakemake", run_name="__main__", alter_sys=True)
"""


def dry_run(workdir: Path, placeholders: Path, variant: str) -> dict:
    import yaml

    from _common import workflow_config

    run = workdir / f"gc_{variant}"
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    config = workflow_config(workdir, input_dir=str(placeholders), output_dir=str(run / "out"))
    (run / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), PATH=stub_path(),
               OLDPHOTO_GC_OUT=str(run / "gc.json"), OLDPHOTO_GC_VARIANT=variant)
    start = time.perf_counter()
    subprocess.run([PYTHON, "-c", LAUNCHER, "--snakefile", str(REPO / "Snakefile"),
                    "--directory", str(run), "--configfile", str(run / "config.yaml"),
                    "--cores", "2", "-n", "--quiet", "rules"],
                   check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return {"wall": time.perf_counter() - start, **json.loads((run / "gc.json").read_text())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=10000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/oldphoto-dry-run-gc"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    info = machine_info()
    placeholders = args.workdir / f"placeholders_{args.photos}"
    make_placeholders(placeholders, args.photos)
    rows = [(variant, dry_run(args.workdir, placeholders, variant))
            for variant in ("relaxed", "defaults")]
    lines = [f"## Garbage collection in a dry run of {args.photos:,} photos (bench/dry_run_gc.py)",
             "", machine_markdown(info, loadavg()),
             f"- command: `python bench/dry_run_gc.py --photos {args.photos}`", "",
             "| thresholds | wall s | collections | their time s | peak RSS MiB |",
             "|---|---|---|---|---|"]
    for variant, r in rows:
        lines.append(f"| {variant} {tuple(r['thresholds'])} | {r['wall']:.1f} | "
                     f"{r['collections']:,} | {r['seconds']:.1f} | {r['vmhwm'] / 2**20:.0f} |")
    write_results("\n".join(lines) + "\n", args.out, append=True)


if __name__ == "__main__":
    main()
