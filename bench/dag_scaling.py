"""How the workflow scales with the number of photos: run time for N photos, DAG build for 1,000.

Part 1 — **run time for N = 1, 4, 16 photos** (classical backend, small photos: crops of the
official samples, 96–160 px): the whole workflow with ``--cores 2``, ``--repeat`` times each.  A
least-squares line ``wall = fixed + per_photo · N`` is fitted; the residuals and the per-photo
cost of each N show whether anything but the photos' own jobs grows with N.

Part 2 — **DAG build for many photos**: ``snakemake -n`` (dry run: input discovery, config
validation, the wildcard constraint, the DAG up to the stage-2 checkpoint) on N tiny 16×16 photos,
N = 10, 100, 1,000 (``--dag-sizes``) with numbered names (``scan 00000``...), and the largest N
again with random 12-character names.  The target is < 30 s for 1,000 photos.

(A part 3 timed the regex of every photo stem that was once the ``image`` wildcard constraint;
the workflow uses ``[^/]+`` since (bench/results/scale.md), and the part went with the function.)

    .venv/bin/python bench/dag_scaling.py [--repeat 3] [--counts 1 4 16] [--dag-sizes 10 100 1000]
        [--output bench/results/dag_scaling.md]
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (SAMPLES, fmt, loadavg, machine_info, machine_markdown,  # noqa: E402
                     median, run_snakemake, workflow_config, write_results)


def small_photos(folder: Path, count: int) -> None:
    """``count`` small distinct photos cut from the 12 official samples (96–160 px sides)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    sources = sorted((SAMPLES / "old").glob("*.png")) + sorted(
        (SAMPLES / "old_w_scratch").glob("*.png"))
    for k in range(count):
        with Image.open(sources[k % len(sources)]) as im:
            rgb = im.convert("RGB")
            side = 96 + 16 * (k % 5)
            left = (17 * k) % max(1, rgb.width - side)
            top = (29 * k) % max(1, rgb.height - side)
            rgb.crop((left, top, left + side, top + side)).save(folder / f"photo_{k:04d}.png")


def stem_names(count: int, kind: str) -> list[str]:
    """``numbered``: ``scan 00000``...; ``random``: 12 random letters and digits (no shared
    structure: the worst case for the trie-shaped constraint)."""
    if kind == "numbered":
        return [f"scan {k:05d}" for k in range(count)]
    import random

    rng = random.Random(0)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    names: set[str] = set()
    while len(names) < count:
        names.add("".join(rng.choice(alphabet) for _ in range(12)))
    return sorted(names)


def tiny_photos(folder: Path, count: int, kind: str = "numbered") -> None:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in stem_names(count, kind):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(
            folder / f"{name}.png")


def run_times(workdir: Path, counts: list[int], repeat: int) -> tuple[list[str], dict]:
    import numpy as np

    walls: dict[int, list[float]] = {n: [] for n in counts}
    for _ in range(repeat):
        for n in counts:
            run_dir = workdir / f"run_{n}"
            if run_dir.exists():
                shutil.rmtree(run_dir)
            small_photos(run_dir / "in", n)
            config = workflow_config(run_dir, backend="classical", threads=1)
            _, wall = run_snakemake(run_dir / "work", config)
            walls[n].append(wall)
            print(f"  N={n}: {wall:.1f} s (load {loadavg()})", file=sys.stderr, flush=True)
    xs = np.array([n for n in counts for _ in walls[n]], float)
    ys = np.array([w for n in counts for w in walls[n]], float)
    per_photo, fixed = np.polyfit(xs, ys, 1)
    rows = ["| photos N | wall s, median (runs) | per photo s | line fixed + per_photo·N | "
            "residual |", "|---|---|---|---|---|"]
    for n in counts:
        wall = median(walls[n])
        line = fixed + per_photo * n
        rows.append(f"| {n} | {fmt(wall, 1)} ({', '.join(fmt(w, 1) for w in walls[n])}) | "
                    f"{fmt(wall / n, 2)} | {fmt(line, 1)} | {fmt(wall - line, 1)} |")
    rows.append("")
    rows.append(f"Fit: wall ≈ {fixed:.1f} s + {per_photo:.2f} s × N "
                f"(classical backend, `--cores 2`, 4–5 jobs per photo).")
    return rows, {"fixed": fixed, "per_photo": per_photo}


def dag_times(workdir: Path, sizes: list[int], repeat: int) -> list[str]:
    rows = ["| photos N | file names | `snakemake -n` wall s, median (runs) | jobs in the dry-run "
            "DAG |", "|---|---|---|---|"]
    cases = [(n, "numbered") for n in sizes] + [(max(sizes), "random")]
    for n, kind in cases:
        run_dir = workdir / f"dag_{kind}_{n}"
        if not (run_dir / "in").is_dir() or len(list((run_dir / "in").iterdir())) != n:
            shutil.rmtree(run_dir, ignore_errors=True)
            tiny_photos(run_dir / "in", n, kind)
        config = workflow_config(run_dir, backend="classical", threads=1)
        walls = []
        jobs = "?"
        for _ in range(repeat):
            proc, wall = run_snakemake(run_dir / "work", config, "-n")
            walls.append(wall)
            match = re.search(r"^total\s+(\d+)", proc.stdout + proc.stderr, re.M)
            jobs = match.group(1) if match else "?"
        rows.append(f"| {n} | {kind} | {fmt(median(walls), 1)} "
                    f"({', '.join(fmt(w, 1) for w in walls)}) | {jobs} |")
        print(f"  dry run N={n} ({kind}): {median(walls):.1f} s", file=sys.stderr, flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--dag-sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--skip-runs", action="store_true", help="only part 2")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--label", default="")
    args = parser.parse_args(argv)

    info = machine_info()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="oldphoto-dag-"))
    workdir.mkdir(parents=True, exist_ok=True)
    parts = [f"## Scaling with the number of photos {args.label}".rstrip(), "",
             machine_markdown(info), ""]
    if not args.skip_runs:
        rows, _ = run_times(workdir, args.counts, args.repeat)
        parts += ["### Run time for N photos (classical backend, small photos)", "", *rows, ""]
    parts += ["### DAG build: `snakemake -n` on N tiny photos", "",
              *dag_times(workdir, args.dag_sizes, args.repeat), "",
              f"(load average at end: {loadavg()})", ""]
    text = "\n".join(parts)
    write_results(text, args.output, append=True)


if __name__ == "__main__":
    main()
