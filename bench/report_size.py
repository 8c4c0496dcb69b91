"""Bytes per photo of the report (``snakemake --report report.html gallery``).

Restores N photos with the classical backend (``--cores 2``, ``with_scratch: auto`` so that the
scratch masks are in the report for the photos the triage sends down the scratch path), builds the
self-contained HTML report and weighs it: the whole file, bytes per photo, and what each category
of embedded files takes (the base64 ``data:`` URIs of Snakemake's ``results`` table, summed per
category), the landing page (with its thumbnails) and what is left (Snakemake's page itself).

The photos are the 12 official samples (``resources/samples/old``, ``old_w_scratch``; 256 to
1016 px), at their size times ``--scale``; beyond 12 each sample comes again mirrored and
cropped to 90 %, 80 %, ... so that every photo is a different file.

``--repo DIR`` weighs the report of another checkout (e.g. an export of an earlier commit,
``git archive <commit> | tar -x -C DIR``).

    .venv/bin/python bench/report_size.py --photos 12 50 --markdown bench/results/report_size.md
    .venv/bin/python bench/report_size.py --photos 4 --scale 3.5
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PYTHON, REPO, SAMPLES, loadavg, machine_info, machine_markdown, stub_path  # noqa: E402


def make_photos(folder: Path, count: int, scale: float) -> None:
    from PIL import Image, ImageOps

    folder.mkdir(parents=True, exist_ok=True)
    sources = sorted((SAMPLES / "old").glob("*.png")) + sorted(
        (SAMPLES / "old_w_scratch").glob("*.png"))
    for k in range(count):
        source = sources[k % len(sources)]
        round_ = k // len(sources)
        with Image.open(source) as im:
            rgb = im.convert("RGB")
        if round_:
            rgb = ImageOps.mirror(rgb) if round_ % 2 else rgb
            keep = 1 - 0.1 * min(round_, 5)
            rgb = rgb.crop((0, 0, round(rgb.width * keep), round(rgb.height * keep)))
        if scale != 1:
            rgb = rgb.resize((round(rgb.width * scale), round(rgb.height * scale)),
                             Image.BICUBIC)
        rgb.save(folder / f"{k:03d} {source.parent.name} {source.stem}.png")


def embedded(page: str, name: str):
    match = re.search(rf'<script id="{name}">\s*var {name} = (.*?);\s*</script>', page, re.S)
    return json.loads(match.group(1)) if match else {}


def weigh(page_path: Path) -> dict:
    page = page_path.read_text(encoding="utf-8")
    categories = embedded(page, "categories")
    results = embedded(page, "results")
    per_category = {}
    for name, subcats in categories.items():
        paths = [p for sub in subcats.values() for p in sub]
        per_category[name] = (len(paths), sum(len(results[p].get("data_uri", ""))
                                               for p in paths))
    thumbnails = sum(len(uri) for uri in re.findall(
        r'src=\\*"(data:image/jpeg;base64,[A-Za-z0-9+/=]+)', page))
    return {"bytes": page_path.stat().st_size, "categories": per_category,
            "thumbnails": thumbnails}


def run(repo: Path, photos: int, scale: float, tmp: Path) -> dict:
    folder = tmp / f"in-{photos}"
    make_photos(folder, photos, scale)
    out = tmp / f"out-{photos}"
    env = dict(os.environ, PYTHONPATH=str(repo / "src"), PATH=stub_path())
    base = [PYTHON, "-m", "snakemake", "--snakefile", str(repo / "Snakefile"), "--directory",
            str(out), "--cores", "2", "--config", f"input_dir={folder}", f"output_dir={out}",
            "backend=classical", "device=cpu", "gpu_per_job=0", "with_scratch=auto"]
    subprocess.run(base, check=True, capture_output=True, env=env, timeout=7200)
    page = out / "report.html"
    subprocess.run(base + ["--report", str(page), "gallery"], check=True, capture_output=True,
                   env=env, timeout=3600)
    weights = weigh(page)
    weights["finals"] = sum(p.stat().st_size for p in (out / "final_output").iterdir())
    weights["pixels"] = 0
    from PIL import Image

    for path in folder.iterdir():
        with Image.open(path) as im:
            weights["pixels"] += im.width * im.height
    return weights


def kib(value: float) -> str:
    return f"{value / 1024:,.0f} KiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=REPO, help="oldphoto checkout to measure")
    parser.add_argument("--label", default=None, help="name of the measured version")
    parser.add_argument("--photos", type=int, nargs="+", default=[12, 50])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="the samples' size is multiplied by this (default 1)")
    parser.add_argument("--markdown", type=Path, default=None, help="append the table here")
    args = parser.parse_args()
    repo = args.repo.resolve()
    label = args.label or ("this checkout" if repo == REPO else str(repo))
    info = machine_info()
    tmp = Path(tempfile.mkdtemp(prefix="oldphoto-report-size-"))
    rows = [f"### {label}: the samples at {args.scale:g}× their size", "",
            "| photos | mean photo | report | report / photos | added per photo | views "
            "embedded per photo, by category (files) | landing-page thumbnails | the rest "
            "(Snakemake's page, summary) | final outputs per photo (the files) |",
            "| ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |"]
    previous = None
    try:
        for photos in args.photos:
            w = run(repo, photos, args.scale, tmp)
            parts = ", ".join(f"{name} {kib(size / photos)} ({count})"
                              for name, (count, size) in sorted(w["categories"].items()))
            rest = w["bytes"] - sum(size for _, size in w["categories"].values()) \
                - w["thumbnails"]
            added = ("—" if previous is None else
                     kib((w["bytes"] - previous[1]) / (photos - previous[0])))
            rows.append(f"| {photos} | {w['pixels'] / photos / 1e6:.2f} MP | "
                        f"{w['bytes'] / 2**20:.1f} MiB | {kib(w['bytes'] / photos)} | "
                        f"**{added}** | {parts} | {kib(w['thumbnails'])} | {kib(rest)} | "
                        f"{kib(w['finals'] / photos)} |")
            previous = (photos, w["bytes"])
            print(rows[-1], flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    text = "\n".join(rows + ["", machine_markdown(info, loadavg()), ""])
    print(text)
    if args.markdown:
        with open(args.markdown, "a", encoding="utf-8") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
