"""Large collections on a SLURM cluster: one job-array task per shard of photos.

Snakemake's SLURM executor submits (and, for group jobs, starts) one Snakemake process per job;
at 5-6 jobs per photo that start-up (a Snakemake process, its parse of the workflow, an ``srun``
step) costs more than restoring a small photo.  For a collection of thousands of photos the
``oldphoto`` command submits instead **one** ``sbatch --array`` whose every task restores one
shard of the folder (``shard: i/n``, a hash of each file name, at most ``photos_per_job`` photos
on average) with a local Snakemake inside its allocation, so the warm workers serve every job of
the shard.  Each task has its own Snakemake working folder (``<output>/.oldphoto/shards/``) and
writes its own ``run_summary.shard-<i>of<n>.json``; the command waits for the array and merges
them into ``run_summary.json``.  A broken photo fails alone inside its task (``--keep-going``);
that task ends FAILED in ``sacct``, every other photo is restored.
"""

from __future__ import annotations

import json
import math
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

from oldphoto.layout import SUMMARY_NAME


def shard_count(n_photos: int, photos_per_job: int) -> int:
    """Array tasks for ``n_photos``: one per ``photos_per_job`` (at least one)."""
    if photos_per_job < 1:
        raise ValueError(f"photos per job must be >= 1, not {photos_per_job}")
    return max(1, math.ceil(n_photos / photos_per_job))


def summary_name(shard: str | None) -> str:
    """``run_summary.json``, or ``run_summary.shard-3of10.json`` for one shard."""
    from oldphoto.inputs import parse_shard

    parsed = parse_shard(shard)
    return SUMMARY_NAME if parsed is None else f"run_summary.shard-{parsed[0]}of{parsed[1]}.json"


def task_script(*, snakefile: str | Path, output_dir: str | Path, config_file: str | Path,
                shards: int, gpus: int, extra: Sequence[str] = ()) -> str:
    """The bash script every array task runs: its shard through a local Snakemake."""
    out = Path(output_dir)
    resources = f" --resources gpu={gpus}" if gpus else ""
    return "\n".join([
        "#!/usr/bin/env bash",
        "set -u",
        'i="$SLURM_ARRAY_TASK_ID"',
        f'work={shlex.quote(str(out / ".oldphoto" / "shards"))}/"$i"of{shards}',
        'mkdir -p "$work"',
        # The folder is this task's alone (SLURM runs one task per shard): no lock to respect.
        f"exec {shlex.quote(sys.executable)} -m snakemake --snakefile {shlex.quote(str(snakefile))}"
        f' --directory "$work" --configfile {shlex.quote(str(config_file))}'
        f' --config shard="$i/{shards}" --cores "${{SLURM_CPUS_PER_TASK:-1}}"{resources}'
        " --keep-going --rerun-incomplete --nolock --latency-wait 30"
        + "".join(f" {shlex.quote(a)}" for a in extra),
        "",
    ])


def sbatch_command(script: str | Path, *, shards: int, cpus: int, mem_mb: int, gpus: int,
                   time_minutes: int, log_dir: str | Path, sbatch_args: Sequence[str] = (),
                   wait: bool = True) -> list[str]:
    """One ``sbatch --array=1-N`` for the whole run (``--wait``: return when every task ended)."""
    command = ["sbatch", "--parsable", f"--array=1-{shards}", "--job-name=oldphoto",
               f"--cpus-per-task={cpus}", f"--mem={mem_mb}", f"--time={time_minutes}",
               f"--output={Path(log_dir) / 'shard-%a.log'}"]
    if gpus:
        command.append(f"--gpus={gpus}")
    if wait:
        command.append("--wait")
    return command + list(sbatch_args) + [str(script)]


def merge_summaries(output_dir: str | Path, shards: int) -> dict[str, Any]:
    """The shards' run summaries as one (``photos`` joined, ``counts`` added, missing shards
    listed), written to ``run_summary.json``."""
    from oldphoto.atomic import write_json

    out = Path(output_dir)
    merged: dict[str, Any] = {"photos": {}, "skipped": [], "counts": {}, "shards": {}}
    for index in range(1, shards + 1):
        path = out / summary_name(f"{index}/{shards}")
        try:
            part = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            merged["shards"][str(index)] = "no summary (the task did not finish)"
            continue
        merged["shards"][str(index)] = "ok" if part.get("snakemake_ok") else "failed"
        merged["photos"].update(part.get("photos", {}))
        merged["skipped"] = part.get("skipped", merged["skipped"])  # the same in every shard
        for key in ("version", "backend", "backends", "finished"):
            merged.setdefault(key, part.get(key))
        for key, value in part.get("counts", {}).items():
            if key != "skipped":
                merged["counts"][key] = merged["counts"].get(key, 0) + value
    merged["counts"]["skipped"] = len(merged["skipped"])
    merged["snakemake_ok"] = all(v == "ok" for v in merged["shards"].values())
    write_json(out / SUMMARY_NAME, merged)
    return merged


def submit(command: list[str]) -> tuple[int, str]:
    """Run the ``sbatch`` command; ``(exit status, job id)``."""
    proc = subprocess.run(command, capture_output=True, text=True)
    job_id = proc.stdout.strip().split(";")[0] if proc.stdout.strip() else ""
    if proc.returncode != 0 and proc.stderr:
        print(proc.stderr.strip(), file=sys.stderr)
    return proc.returncode, job_id
