"""Throughput of the whole workflow on the official sample photos, stage by stage.

Each run is the real workflow (``snakemake --cores 2``, CPU, the rules' ``threads: 2``) on a
fresh output folder, with recipe-weight checkpoints in the official layout (same files, sizes and
compute as the official ones) and their caches prepared beforehand (not timed; a one-off per
installation).  Reported per run: wall time of the ``snakemake`` process (DAG build included),
photos restored, photos per minute, faces enhanced, the **memory of the whole run** (every
process of it sampled from ``/proc`` every 0.2 s, the warm workers included, which leave
Snakemake's process tree: :class:`_common.RunMemory`; the largest process's peak and the largest
sum at one moment), and where the time goes: Snakemake's benchmark files
``{output_dir}/benchmarks/<rule>/*.tsv`` aggregated per rule (jobs, summed job seconds, median
and largest job, and the largest peak RSS of the job's own process: with warm workers that is
the thin client, not the worker doing the work).

Runs (``--runs``):

* ``old`` / ``old-hr``: the 8 photos of ``resources/samples/old`` (quality path; HR changes only
  the face model), all networks;
* ``scratch`` / ``scratch-hr``: the 4 photos of ``old_w_scratch`` with ``with_scratch``;
* ``old-scratch``: the 8 ``old`` photos with ``with_scratch`` (the official code drops 4 of them);
* ``faces`` / ``faces-hr``: backend ``auto`` with only the face checkpoints: classical stage 1 and
  the face network on the faces dlib finds (recipe weights turn stage 1 into noise, so the
  ``old*`` runs find no faces and never reach stage 3); ``faces-per-image``: the same with
  ``face_jobs: per_image`` (one stage-3 job per photo);
* ``classical`` / ``classical-scratch``: the classical backend on the 8 / the 4 photos;
* ``empty``: an empty input folder (the workflow's fixed cost).

    .venv/bin/python bench/throughput.py [--repeat 3] [--runs old scratch ...] [--workdir DIR]
        [--output bench/results/throughput.md]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (REPO, SAMPLES, fmt, gib, loadavg, machine_info,  # noqa: E402
                     machine_markdown, median, read_benchmarks, run_snakemake,
                     run_snakemake_sampled, workflow_config, write_recipe, write_results)

FACE_NETWORKS = ["Setting_9_epoch_100", "FaceSR_512"]

# name -> (input folder, config overrides, checkpoint set)
RUNS = {
    "old": ("old", {"with_scratch": False, "hr": False, "backend": "pretrained"}, "all"),
    "old-hr": ("old", {"with_scratch": False, "hr": True, "backend": "pretrained"}, "all"),
    "scratch": ("old_w_scratch", {"with_scratch": True, "hr": False, "backend": "pretrained"},
                "all"),
    "scratch-hr": ("old_w_scratch", {"with_scratch": True, "hr": True, "backend": "pretrained"},
                   "all"),
    "old-scratch": ("old", {"with_scratch": True, "hr": False, "backend": "pretrained"}, "all"),
    "faces": ("old", {"with_scratch": False, "hr": False, "backend": "auto"}, "face"),
    "faces-hr": ("old", {"with_scratch": False, "hr": True, "backend": "auto"}, "face"),
    "faces-per-image": ("old", {"with_scratch": False, "hr": False, "backend": "auto",
                                "face_jobs": "per_image"}, "face"),
    "classical": ("old", {"with_scratch": False, "hr": False, "backend": "classical"}, "none"),
    "classical-scratch": ("old_w_scratch", {"with_scratch": True, "hr": False,
                                            "backend": "classical"}, "none"),
    "empty": (None, {"with_scratch": False, "hr": False, "backend": "pretrained"}, "all"),
}
DEFAULT_RUNS = ["empty", "old", "old-hr", "scratch", "scratch-hr", "faces", "faces-hr",
                "faces-per-image", "classical", "classical-scratch"]
RULE_ORDER = ["detect_scratches", "triage_scratches", "restore_global", "detect_faces",
              "enhance_face", "detect_and_enhance_faces", "blend_faces"]


def prepare_caches(workdir: Path, checkpoints: Path, cache: Path, names: list[str],
                   threads: int) -> None:
    """Verify and convert the checkpoints once (the ``prepare_checkpoint`` jobs, not timed)."""
    targets = [str(cache / f"{n}.safetensors") for n in names
               if not (cache / f"{n}.safetensors").exists()]
    if targets:
        empty = workdir / "prepare" / "in"
        empty.mkdir(parents=True, exist_ok=True)
        config = workflow_config(workdir / "prepare", backend="auto", threads=threads,
                                 checkpoints_dir=str(checkpoints), cache_dir=str(cache),
                                 input_dir=str(empty))
        run_snakemake(workdir / "prepare", config, *targets)


def one_run(workdir: Path, name: str, checkpoints: dict[str, Path], threads: int) -> dict:
    folder, overrides, ckpts = RUNS[name]
    run_dir = workdir / "runs" / name
    if run_dir.exists():
        shutil.rmtree(run_dir)
    inputs = run_dir / "in"
    if folder is None:
        inputs.mkdir(parents=True)
    else:
        shutil.copytree(SAMPLES / folder, inputs)
    config = workflow_config(run_dir, threads=threads, **overrides,
                             checkpoints_dir=str(checkpoints.get(ckpts, workdir / "none")),
                             cache_dir=str(workdir / f"cache_{ckpts}"))
    proc, wall, memory = run_snakemake_sampled(run_dir / "work", config)
    out = Path(config["output_dir"])
    summary = {}
    if (out / "run_summary.json").is_file():
        summary = json.loads((out / "run_summary.json").read_text())
    counts = summary.get("counts", {})
    faces = sum((p.get("faces") or 0) for p in summary.get("photos", {}).values()
                if p.get("status") == "restored")
    warnings = []
    for log in sorted((out / "logs").glob("*/*.log")):
        warnings += [line for line in log.read_text(errors="replace").splitlines()
                     if "warning:" in line]
    rules = read_benchmarks(out)
    return {"name": name, "wall": wall, "returncode": proc.returncode,
            "photos": len(list(inputs.iterdir())), "restored": counts.get("restored", 0),
            "failed": counts.get("failed", 0), "faces": faces, "backend": summary.get("backend"),
            "warnings": len(warnings), "warning_example": warnings[0] if warnings else "",
            "memory": memory.summary(),
            "rules": {rule: [row["s"] for row in rows] for rule, rows in rules.items()},
            "rss": {rule: max(row.get("max_rss", 0.0) for row in rows)
                    for rule, rows in rules.items()}}


def report(name: str, runs: list[dict]) -> tuple[str, list[str]]:
    walls = [r["wall"] for r in runs]
    wall = median(walls)
    r0 = runs[0]
    per_minute = r0["restored"] / wall * 60 if r0["restored"] else 0.0
    largest = max(runs, key=lambda r: r["memory"]["largest_hwm"])["memory"]
    row = (f"| {name} | {r0['photos']} | {r0['restored']}/{r0['photos']} | {r0['faces']} | "
           f"{fmt(wall, 1)} ({', '.join(fmt(w, 0) for w in walls)}) | "
           f"{fmt(per_minute, 2)} | {r0['backend']} | "
           f"{gib(largest['largest_hwm'])} ({largest['largest']}) | "
           f"{gib(max(r['memory']['peak_pss_sum'] for r in runs))} / "
           f"{gib(max(r['memory']['peak_rss_sum'] for r in runs))} | "
           f"{max(r['memory']['snakemake_hwm'] for r in runs) / 2**20:.0f} MiB |")
    detail = [f"**{name}** — stage by stage (medians over {len(runs)} run(s) of each rule's "
              "summed job time):", "",
              "| rule | jobs | Σ job s | median job s | largest job s | job process max RSS "
              "MB (not its worker) |",
              "|---|---|---|---|---|---|"]
    rules = sorted(r0["rules"], key=lambda r: (RULE_ORDER.index(r) if r in RULE_ORDER else 99, r))
    for rule in rules:
        totals = [sum(r["rules"].get(rule, [])) for r in runs]
        jobs = r0["rules"][rule]
        detail.append(f"| {rule} | {len(jobs)} | {fmt(median(totals), 1)} | "
                      f"{fmt(median(jobs), 2)} | {fmt(max(jobs), 2)} | "
                      f"{fmt(max(r['rss'].get(rule, 0) for r in runs), 0)} |")
    if r0["warnings"]:
        detail.append(f"\n{r0['warnings']} warning line(s) in the job logs, e.g. "
                      f"`{r0['warning_example'].strip()[:240]}`")
    if r0["failed"] or r0["returncode"]:
        detail.append(f"\nsnakemake exit {r0['returncode']}, {r0['failed']} photo(s) failed")
    return row, detail


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--runs", nargs="+", default=DEFAULT_RUNS, choices=sorted(RUNS))
    parser.add_argument("--threads", type=int, default=2, help="config threads of network rules")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)

    info = machine_info()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="oldphoto-throughput-"))
    workdir.mkdir(parents=True, exist_ok=True)
    checkpoints = {"all": write_recipe(workdir / "checkpoints_all"),
                   "face": write_recipe(workdir / "checkpoints_face", FACE_NETWORKS)}
    sys.path.insert(0, str(REPO / "src"))
    from oldphoto.checkpoints import OFFICIAL_FILES

    prepare_caches(workdir, checkpoints["all"], workdir / "cache_all", list(OFFICIAL_FILES),
                   args.threads)
    prepare_caches(workdir, checkpoints["face"], workdir / "cache_face", FACE_NETWORKS,
                   args.threads)

    results: dict[str, list[dict]] = {}
    for repeat in range(args.repeat):  # interleaved, so load drifts hit every run alike
        for name in args.runs:
            run = one_run(workdir, name, checkpoints, args.threads)
            results.setdefault(name, []).append(run)
            print(f"  {name} #{repeat + 1}: {run['wall']:.1f} s, {run['restored']}/"
                  f"{run['photos']} restored, {run['faces']} faces (load {loadavg()})",
                  file=sys.stderr, flush=True)

    rows = ["| run | photos | restored | faces enhanced | wall s, median (runs) | photos/min | "
            "backend | peak memory, largest process | whole run at its peak: Σ PSS / Σ RSS | "
            "Snakemake process alone |", "|---|---|---|---|---|---|---|---|---|---|"]
    details: list[str] = []
    for name, runs in results.items():
        row, detail = report(name, runs)
        rows.append(row)
        details += [""] + detail
    text = "\n".join([
        "## Workflow throughput on the official samples", "",
        machine_markdown(info, load_after=loadavg()),
        f"- `snakemake --cores 2`, network rules `threads: {args.threads}`, device cpu, recipe-"
        f"weight checkpoints, caches prepared beforehand; {args.repeat} run(s) each, interleaved",
        "- memory: every process of the run (Snakemake, its jobs, the warm workers outside its "
        "process tree, their children), sampled from /proc every 0.2 s (bench/_common.py "
        "RunMemory); largest process = the largest VmHWM, whole run = the largest sum over one "
        "sample (PSS shares libraries among processes; RSS counts them in each); the largest "
        "over the runs",
        "", *rows, *details, ""])
    write_results(text, args.output, append=True)


if __name__ == "__main__":
    main()
