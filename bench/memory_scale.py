"""Peak memory (and time) of stage 1 on large photos, within the job's memory budget.

For each size (megapixels, 3:2 photo, sides multiples of 16) and path, a fresh interpreter does
what the ``restore_global`` job does: loads the three networks (recipe weights, from verified
caches), reads the photo (a sample photo resized up), and calls ``oldphoto.stages.restore_global``
with ``memory_budget_mb``, which runs the whole image when ``oldphoto.tiling`` estimates that it
fits the budget and tiles it otherwise.  Reported: the decision (whole / tiled and the tile), the
estimate, the process's peak resident set (``VmHWM`` from ``/proc/self/status``, the whole
process: interpreter, torch, weights, images), the wall time, and whether the peak stayed within the
budget.

Paths: ``quality`` (no scratches), ``scratch`` (non-local mapping; a synthetic ~4 % scratch mask of
thin lines and a blotch), ``hr`` (patch-attention mapping on the same mask, dilated as with --HR).

    .venv/bin/python bench/memory_scale.py --megapixels 1 4 12 24 --paths quality scratch
    .venv/bin/python bench/memory_scale.py --calibrate        # fit oldphoto.tiling's memory model
    .venv/bin/python bench/memory_scale.py --scan 24          # detection + scratch restoration of a
                                                              # 24 MP scan with recipe weights

``--calibrate`` runs small sizes as whole images (tiling off) with a small attention budget and
fits ``peak = base + per_pixel · N`` per path (the attention chunk is added by the model); the
constants in ``oldphoto/tiling.py`` come from it.  ``--scan`` runs scratch detection (the recipe
U-Net marks nearly every pixel) and then the scratch restoration on its output, as the workflow
does.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (PYTHON, REPO, SAMPLES, fmt, loadavg, machine_info,  # noqa: E402
                     machine_markdown, write_recipe, write_results)

NETWORKS = {
    "quality": ("VAE_A_quality", "mapping_quality", "VAE_B_quality"),
    "scratch": ("VAE_A_quality", "mapping_scratch", "VAE_B_scratch"),
    "hr": ("VAE_A_quality", "mapping_Patch_Attention", "VAE_B_scratch"),
}


def photo_size(megapixels: float) -> tuple[int, int]:
    """(width, height) of a 3:2 photo of about ``megapixels`` million pixels, sides /16."""
    height = math.sqrt(megapixels * 1e6 / 1.5)
    return int(round(1.5 * height / 16) * 16), int(round(height / 16) * 16)


def synthetic_mask(height: int, width: int):
    """About 4 % scratched: two diagonal lines, a vertical line (5 px wide) and a blotch."""
    import numpy as np

    y = np.arange(height, dtype=np.float32)[:, None]
    x = np.arange(width, dtype=np.float32)[None, :]
    s = min(height, width)
    mask = np.abs(y - (0.35 * x + s * 0.05)) < 2.5
    mask |= np.abs(y - (0.9 * s - 0.5 * x)) < 2.5
    mask |= np.abs(x - width * 0.8) < 2.5
    mask |= (y > height * 0.4) & (y < height * 0.5) & (x > width * 0.3) & (x < width * 0.4)
    return np.where(mask, np.uint8(255), np.uint8(0))


def peak_rss() -> int:
    return int(re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) << 10


def current_rss() -> int:
    return int(re.search(r"VmRSS:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) << 10


def prepare_caches(workdir: Path) -> Path:
    """Recipe checkpoints and their verified caches (once per work folder)."""
    sys.path.insert(0, str(REPO / "src"))
    from oldphoto.checkpoints import convert_to_cache, official_path

    checkpoints = write_recipe(workdir / "checkpoints")
    cache = workdir / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    names = {n for trio in NETWORKS.values() for n in trio} | {"detection"}
    for name in sorted(names):
        target = cache / f"{name}.safetensors"
        if not target.exists():
            convert_to_cache(official_path(checkpoints, name), name, target)
    return cache


def child(args: argparse.Namespace) -> dict:
    """One measurement in this (fresh) process."""
    import numpy as np
    import torch
    from PIL import Image

    from oldphoto import stages
    from oldphoto.checkpoints import load_network

    torch.set_num_threads(args.threads)
    path = args.paths[0]
    width, height = photo_size(args.megapixels[0])
    with Image.open(SAMPLES / "old" / "b.png") as im:
        rgb = np.asarray(im.convert("RGB").resize((width, height), Image.BILINEAR))
    mask = None if path == "quality" else synthetic_mask(height, width)
    encoder, mapping, decoder = NETWORKS[path]
    networks = {role: load_network(name, args.cache / f"{name}.safetensors")
                for role, name in zip(("encoder", "mapping", "decoder"), (encoder, mapping, decoder))}
    lines: list[str] = []

    def log(message: str) -> None:
        lines.append(message)
        print(message, file=sys.stderr, flush=True)

    baseline = current_rss()
    start = time.perf_counter()
    result = stages.restore_global(rgb, mask, "pretrained", networks=networks, device="cpu",
                                   hr=path == "hr", memory_budget_mb=args.budget_mb, log=log,
                                   tiling=args.force)
    seconds = time.perf_counter() - start
    assert result.restored.shape[:2] == (height, width)
    scratched = 0.0 if mask is None else float((mask > 0).mean())
    return {"path": path, "megapixels": height * width / 1e6, "width": width, "height": height,
            "budget_mb": args.budget_mb, "peak": peak_rss(), "baseline": baseline,
            "seconds": seconds, "log": lines, "scratched": scratched, "force": args.force,
            "threads": args.threads}


def run_child(path: str, megapixels: float, args: argparse.Namespace, force: str = "auto",
              budget_mb: int | None = None) -> dict:
    cmd = [PYTHON, __file__, "--child", "--paths", path, "--megapixels", str(megapixels),
           "--budget-mb", str(budget_mb or args.budget_mb), "--cache", str(args.cache),
           "--threads", str(args.threads), "--force", force]
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        return {"path": path, "megapixels": megapixels, "error": proc.stderr[-1500:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def decision(result: dict) -> str:
    for line in result.get("log", []):
        if line.startswith("stage 1:"):
            return line[len("stage 1:"):].strip()
    return "whole image"


def scale_table(args: argparse.Namespace) -> str:
    gib = 2**30
    rows = ["| path | MP | image | decision (oldphoto.tiling) | peak RSS | budget | within | "
            "time |", "|---|---|---|---|---|---|---|---|"]
    for path in args.paths:
        for megapixels in args.megapixels:
            r = run_child(path, megapixels, args)
            if "error" in r:
                rows.append(f"| {path} | {megapixels:g} | – | FAILED: "
                            f"{r['error'].strip().splitlines()[-1][:150]} | – | – | – | – |")
            else:
                within = "yes" if r["peak"] <= r["budget_mb"] * 2**20 else "**NO**"
                rows.append(
                    f"| {path} | {r['megapixels']:.1f} | {r['width']}×{r['height']} | "
                    f"{decision(r)} | {r['peak'] / gib:.2f} GiB | {r['budget_mb']} MB | {within} | "
                    f"{r['seconds']:.0f} s |")
            print(rows[-1], file=sys.stderr, flush=True)
    return "\n".join(rows)


def calibrate(args: argparse.Namespace) -> str:
    """Whole-image peaks at small sizes: ``peak − attention chunk = base + per_pixel · N``."""
    import numpy as np

    sys.path.insert(0, str(REPO / "src"))
    from oldphoto import tiling

    rows = ["| path | MP | peak RSS | baseline after load | attention buffers (model) | "
            "model estimate |", "|---|---|---|---|---|---|"]
    fits = {}
    budget_mb = 1024  # attention chunks of 512 MB at most
    for path in args.paths:
        xs, ys = [], []
        for megapixels in args.megapixels:
            r = run_child(path, megapixels, args, force="whole", budget_mb=budget_mb)
            if "error" in r:
                print(r["error"], file=sys.stderr)
                continue
            h, w = r["height"], r["width"]
            hr_mask = None
            if path == "hr":
                from oldphoto.restore import dilate_mask

                hr_mask = dilate_mask(synthetic_mask(h, w))
            attention = tiling.attention_bytes(h, w, path, budget_mb * 2**20 // 2, hr_mask)
            xs.append(h * w)
            ys.append(r["peak"] - attention)
            estimate = tiling.estimate_stage1_memory(h, w, path, mask=hr_mask,
                                                     attention_budget=budget_mb * 2**20 // 2)
            rows.append(f"| {path} | {h * w / 1e6:.2f} | {r['peak'] / 2**20:.0f} MiB | "
                        f"{r['baseline'] / 2**20:.0f} MiB | {attention / 2**20:.0f} MiB | "
                        f"{estimate / 2**20:.0f} MiB |")
            print(rows[-1], file=sys.stderr, flush=True)
        if len(xs) >= 2:
            slope, intercept = np.polyfit(np.array(xs, float), np.array(ys, float), 1)
            fits[path] = (intercept, slope)
    lines = ["", "Least-squares fit of peak − attention buffers = base + per_pixel · N:", ""]
    for path, (intercept, slope) in fits.items():
        lines.append(f"- {path}: base {intercept / 2**20:.0f} MiB, {slope:.0f} bytes per pixel")
    return "\n".join(rows + lines)


def scan(args: argparse.Namespace, megapixels: float) -> str:
    """Scratch detection + scratch restoration of one large scan, as two workflow jobs would."""
    cmd = [PYTHON, __file__, "--scan-child", "--megapixels", str(megapixels), "--cache",
           str(args.cache), "--budget-mb", str(args.budget_mb), "--threads", str(args.threads)]
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        return f"scan of {megapixels} MP FAILED:\n```\n{proc.stderr[-3000:]}\n```"
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    return (f"| {r['megapixels']:.1f} MP scan {r['width']}×{r['height']} | detection "
            f"{r['detect_seconds']:.0f} s, mask covers {100 * r['scratched']:.1f} % | "
            f"{decision(r)} | {r['peak'] / 2**30:.2f} GiB (budget {r['budget_mb']} MB: "
            f"{'within' if r['peak'] <= r['budget_mb'] * 2**20 else 'EXCEEDED'}) | "
            f"{r['seconds']:.0f} s |")


def scan_child(args: argparse.Namespace) -> dict:
    import numpy as np
    import torch
    from PIL import Image

    from oldphoto import stages
    from oldphoto.checkpoints import load_network

    torch.set_num_threads(args.threads)
    width, height = photo_size(args.megapixels[0])
    with Image.open(SAMPLES / "old_w_scratch" / "c.png") as im:
        rgb = np.asarray(im.convert("RGB").resize((width, height), Image.BILINEAR))
    start = time.perf_counter()
    unet = load_network("detection", args.cache / "detection.safetensors")
    image, mask = stages.detect_scratches(rgb, "pretrained", unet, "cpu")
    detect_seconds = time.perf_counter() - start
    del unet, rgb
    networks = {role: load_network(name, args.cache / f"{name}.safetensors")
                for role, name in zip(("encoder", "mapping", "decoder"), NETWORKS["scratch"])}
    lines: list[str] = []

    def log(message: str) -> None:
        lines.append(message)
        print(message, file=sys.stderr, flush=True)

    start = time.perf_counter()
    result = stages.restore_global(image, mask, "pretrained", networks=networks, device="cpu",
                                   memory_budget_mb=args.budget_mb, log=log)
    seconds = time.perf_counter() - start
    assert result.restored.shape == image.shape
    return {"megapixels": image.shape[0] * image.shape[1] / 1e6, "width": image.shape[1],
            "height": image.shape[0], "detect_seconds": detect_seconds,
            "scratched": float((mask > 0).mean()), "seconds": seconds, "peak": peak_rss(),
            "budget_mb": args.budget_mb, "log": lines}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, nargs="+", default=[1, 4, 12, 24])
    parser.add_argument("--paths", nargs="+", default=["quality", "scratch"],
                        choices=sorted(NETWORKS))
    parser.add_argument("--budget-mb", type=int, default=8000, help="memory_budget_mb")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--cache", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--force", default="auto", choices=["auto", "whole", "tiled"])
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument("--scan", type=float, default=None, metavar="MP")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--scan-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return
    if args.scan_child:
        print(json.dumps(scan_child(args)))
        return

    info = machine_info()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="oldphoto-memory-"))
    args.cache = prepare_caches(workdir)
    if args.calibrate:
        title = "## Memory model calibration (whole images, attention budget 512 MB)"
        body = calibrate(args)
    elif args.scan:
        title = f"## A {args.scan:g} MP scratched scan, memory_budget_mb={args.budget_mb}"
        body = ("| input | scratch detection | restore_global decision | peak RSS | time |\n"
                "|---|---|---|---|---|\n" + scan(args, args.scan))
    else:
        title = f"## Stage 1 peak memory at scale, memory_budget_mb={args.budget_mb}"
        body = scale_table(args)
    text = "\n".join([title, "", machine_markdown(info, load_after=loadavg()),
                      f"- torch threads {args.threads}; one fresh process per row", "", body, ""])
    write_results(text, args.output, append=True)


if __name__ == "__main__":
    main()
