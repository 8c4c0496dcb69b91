"""Fixed cost of one workflow job: process start, imports, device setup, checkpoint load.

Every Snakemake ``script:`` job is a fresh Python process: Snakemake writes the rule's script with
its preamble (``pickle.loads`` of the ``snakemake`` object, which imports the ``snakemake``
package) and runs ``python <script>``.  Before a network job computes anything it pays for the
interpreter, that preamble, ``import torch``, the device choice and the checkpoint load; this
benchmark measures that fixed cost separately from the compute.

How:

1. The real workflow runs once per scenario on a tiny input (a 16×16 photo for stage 1, a small
   crop with one face for stage 3) with recipe-weight checkpoints (official layout), caches
   prepared, ``--skip-script-cleanup``: the exact scripts Snakemake generated are kept.
2. Each kept network-rule script is run again ``--repeat`` times, one at a time, as Snakemake runs
   it (``python <script>`` in the work folder).  ``wall`` is spawn to exit; the job log
   (``[  t s] ...`` since the job harness started) gives the compute: from the last
   ``loaded <net>`` line to ``done`` (compute + writing the tiny outputs).
   **fixed = wall − compute.**
3. A breakdown in fresh interpreters, in the job's import order: interpreter start, the
   Snakemake preamble imports, ``oldphoto.stages``/``jobs`` (numpy, PIL), ``import torch`` (+
   device), ``oldphoto.checkpoints``/``nets``, the checkpoint load.
4. An import audit: each script once under ``python -X importtime``: number of modules and
   whether heavy modules a network job does not need (scipy, skimage, dlib, torch._dynamo, ...)
   are imported.

    .venv/bin/python bench/job_overhead.py [--repeat 5] [--threads 2] [--workdir DIR]
        [--output bench/results/job_overhead.md]

``--workdir`` keeps the checkpoints, caches and kept scripts between runs (the recipe checkpoints
take ~30 s to write).

Snakemake touches a job's outputs when it ends, so a prepared cache no longer carries the mtime
its record holds: the first load re-hashes it once and writes a ``.verified`` stamp that later loads
trust (``oldphoto.checkpoints.stamp_path``); before that stamp, every job re-hashed every
checkpoint it loaded (sha256 of 150-370 MB, 0.1-1.5 s).  Timings on a shared machine move with its load: the load average is printed.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (PYTHON, REPO, SAMPLES, fmt, loadavg, machine_info,  # noqa: E402
                     machine_markdown, median, run_snakemake, workflow_config, write_recipe,
                     write_results)

NETWORK_RULES = ("detect_scratches", "restore_global", "enhance_face")
HEAVY = ("scipy", "skimage", "dlib", "cv2", "torch._dynamo", "torch._inductor", "sympy",
         "matplotlib", "pandas", "torchvision", "yaml")

# name -> (config overrides, checkpoint set, input kind, rules to time)
SCENARIOS = {
    "quality": ({"with_scratch": False, "hr": False}, "all", "tiny", ["restore_global"]),
    "scratch": ({"with_scratch": True, "hr": False}, "all", "tiny",
                ["detect_scratches", "restore_global"]),
    "scratch_hr": ({"with_scratch": True, "hr": True}, "all", "tiny", ["restore_global"]),
    "face": ({"with_scratch": False, "hr": False, "backend": "auto"}, "face", "face",
             ["enhance_face"]),
    "face_hr": ({"with_scratch": False, "hr": True, "backend": "auto"}, "face", "face",
                ["enhance_face"]),
}

LOG_LINE = re.compile(r"^\[\s*([\d.]+)s\] (.*)$")


def make_inputs(folder: Path, kind: str) -> None:
    from PIL import Image
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    if kind == "tiny":
        rng = np.random.default_rng(0)
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / "tiny.png")
    else:  # the face of samples/old/a.png (as tests/conftest.make_tiny_photos)
        with Image.open(SAMPLES / "old" / "a.png") as im:
            im.convert("RGB").crop((24, 64, 298, 344)).save(folder / "face.png")


def prepare(workdir: Path, threads: int) -> dict[tuple[str, str], Path]:
    """Run every scenario once; ``{(scenario, rule): kept script}``."""
    ckpt_all = write_recipe(workdir / "checkpoints_all")
    ckpt_face = write_recipe(workdir / "checkpoints_face", ["Setting_9_epoch_100", "FaceSR_512"])
    scripts = {}
    for name, (overrides, ckpts, kind, rules) in SCENARIOS.items():
        run_dir = workdir / name
        make_inputs(run_dir / "in", kind)
        settings = {"backend": "pretrained", **overrides}
        config = workflow_config(run_dir, threads=threads,
                                 checkpoints_dir=str(ckpt_all if ckpts == "all" else ckpt_face),
                                 cache_dir=str(workdir / f"cache_{ckpts}"), **settings)
        kept = list((run_dir / ".snakemake" / "scripts").glob("tmp*.py"))
        if not all(any(p.name.endswith(f".{rule}.py") for p in kept) for rule in rules):
            run_snakemake(run_dir, config, "--skip-script-cleanup", "--forceall")
            kept = list((run_dir / ".snakemake" / "scripts").glob("tmp*.py"))
        for rule in rules:
            found = sorted(p for p in kept if p.name.endswith(f".{rule}.py"))
            if not found:
                raise RuntimeError(f"{name}: no {rule} job ran (faces found?)")
            scripts[(name, rule)] = found[-1]
    return scripts


def parse_log(path: Path) -> list[tuple[float, str]]:
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        match = LOG_LINE.match(line)
        if match:
            entries.append((float(match.group(1)), match.group(2)))
    return entries


def time_script(run_dir: Path, script: Path, rule: str, env: dict[str, str]) -> dict[str, float]:
    start = time.perf_counter()
    proc = subprocess.run([PYTHON, str(script)], cwd=run_dir, env=env, capture_output=True,
                          text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"{script} failed:\n{proc.stderr[-3000:]}")
    log = next((run_dir / "out" / "logs" / rule).glob("*.log"))
    entries = parse_log(log)
    done = next(t for t, msg in entries if msg == "done")
    device = next((t for t, msg in entries if msg.startswith("device:")), float("nan"))
    loaded = [(t, msg) for t, msg in entries if msg.startswith("loaded ")]
    ready = loaded[-1][0] if loaded else device
    load_sum = sum(float(re.search(r" in ([\d.]+)s", msg).group(1)) for _, msg in loaded)
    compute = done - ready
    return {"wall": wall, "compute": compute, "fixed": wall - compute,
            "before_job": wall - done, "device": device, "load": load_sum}


BREAKDOWN = r"""
import json, sys, time
t0 = time.perf_counter()
import pickle
from snakemake.logging import logger
from snakemake.iocontainers import Snakemake
t1 = time.perf_counter()
from oldphoto import stages
from oldphoto.jobs.runtime import run_request
t2 = time.perf_counter()
from oldphoto.devices import select_device_for_job
with select_device_for_job(sys.argv[3], int(sys.argv[4])) as (device, description):
    t3 = time.perf_counter()
    from oldphoto.checkpoints import load_network
    import oldphoto.checkpoints.registry
    t4 = time.perf_counter()
    net = load_network(sys.argv[1], sys.argv[2], device=device)
    t5 = time.perf_counter()
print(json.dumps({"preamble": t1 - t0, "oldphoto_stages_jobs": t2 - t1, "torch_device": t3 - t2,
                  "checkpoints_nets": t4 - t3, "load": t5 - t4}))
"""


def breakdown(cache: Path, name: str, repeat: int, threads: int, env: dict[str, str]) -> dict:
    import json

    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.run([PYTHON, "-c", "pass"], env=env, capture_output=True)
        interpreter = time.perf_counter() - start
        start = time.perf_counter()
        proc = subprocess.run([PYTHON, "-c", BREAKDOWN, name, str(cache), "cpu", str(threads)],
                              env=env, capture_output=True, text=True)
        total = time.perf_counter() - start
        if proc.returncode:
            raise RuntimeError(proc.stderr[-3000:])
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        row["interpreter"] = interpreter
        row["total"] = total
        runs.append(row)
    return {key: median(r[key] for r in runs) for key in runs[0]}


def import_audit(run_dir: Path, script: Path, env: dict[str, str]) -> tuple[int, list[str]]:
    proc = subprocess.run([PYTHON, "-X", "importtime", str(script)], cwd=run_dir, env=env,
                          capture_output=True, text=True)
    modules = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            modules.add(line.rsplit("|", 1)[1].strip())
    heavy = sorted(m for m in modules if m in HEAVY or any(m.startswith(h + ".") for h in HEAVY))
    return len(modules), sorted({m.split(".")[0] if not m.startswith("torch.") else
                                 ".".join(m.split(".")[:2]) for m in heavy})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="the rules' threads (config)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--label", default="", help="a note printed with the results")
    args = parser.parse_args(argv)

    import os

    info = machine_info()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="oldphoto-job-overhead-"))
    workdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    print(f"preparing in {workdir} ...", file=sys.stderr)
    scripts = prepare(workdir, args.threads)

    results = {}
    for repeat in range(args.repeat):  # interleaved: a load spike hits every job alike
        for (scenario, rule), script in scripts.items():
            run = time_script(workdir / scenario, script, rule, env)
            results.setdefault((scenario, rule), []).append(run)
            print(f"  {scenario}/{rule} #{repeat + 1}: wall {run['wall']:.2f}s, "
                  f"fixed {run['fixed']:.2f}s", file=sys.stderr)

    out = [f"## Fixed cost per job {args.label}".rstrip(), "",
           machine_markdown(info, load_after=loadavg()),
           f"- {args.repeat} runs of each kept job script, interleaved; medians; rules' threads: "
           f"{args.threads}; device cpu", "",
           "| scenario | rule | wall | compute (16×16 / one face) | **fixed = wall − compute** | "
           "of which: before job harness + exit | import torch + device | checkpoint load | "
           "fixed min–max |",
           "|---|---|---|---|---|---|---|---|---|"]
    for (scenario, rule), runs in results.items():
        fixed = [r["fixed"] for r in runs]
        out.append(
            f"| {scenario} | {rule} | {fmt(median(r['wall'] for r in runs))} | "
            f"{fmt(median(r['compute'] for r in runs))} | **{fmt(median(fixed))}** | "
            f"{fmt(median(r['before_job'] for r in runs))} | "
            f"{fmt(median(r['device'] for r in runs))} | {fmt(median(r['load'] for r in runs))} | "
            f"{fmt(min(fixed))}–{fmt(max(fixed))} |")

    out += ["", "Breakdown in fresh interpreters (job import order, medians, seconds):", "",
            "| network | interpreter start | Snakemake preamble imports | oldphoto.stages + jobs "
            "(numpy, PIL) | import torch + device | oldphoto.checkpoints + nets | checkpoint load "
            "| total process |", "|---|---|---|---|---|---|---|---|"]
    for name, cache_set in (("detection", "all"), ("mapping_scratch", "all"),
                            ("Setting_9_epoch_100", "face")):
        b = breakdown(workdir / f"cache_{cache_set}" / f"{name}.safetensors", name, args.repeat,
                      args.threads, env)
        out.append(f"| {name} | {fmt(b['interpreter'])} | {fmt(b['preamble'])} | "
                   f"{fmt(b['oldphoto_stages_jobs'])} | {fmt(b['torch_device'])} | "
                   f"{fmt(b['checkpoints_nets'])} | {fmt(b['load'])} | {fmt(b['total'])} |")

    out += ["", "Import audit (`python -X importtime <kept script>`):", "",
            "| scenario | rule | modules imported | heavy modules imported |", "|---|---|---|---|"]
    for (scenario, rule), script in scripts.items():
        count, heavy = import_audit(workdir / scenario, script, env)
        out.append(f"| {scenario} | {rule} | {count} | {', '.join(heavy) or 'none'} |")
    out.append(f"\n(heavy list: {', '.join(HEAVY)}; load average at end: {loadavg()})")
    text = "\n".join(out) + "\n"
    write_results(text, args.output, append=True)


if __name__ == "__main__":
    main()
