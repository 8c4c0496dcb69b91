"""A stage-1 run under a small memory budget stays under it (peak RSS of a fresh process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parents[2]

HEIGHT, WIDTH = 384, 640

# The job's work in a fresh interpreter: networks (seeded random weights: memory does not depend on
# the values), a photo, stages.restore_global with the given budget; prints the peak RSS (VmHWM).
CHILD = r"""
import json, re, sys
import numpy as np
import torch
from oldphoto import stages, tiling
from oldphoto.checkpoints.registry import build_network
torch.set_num_threads(1)
torch.manual_seed(0)
tiling.DEFAULT_OVERLAP = 32  # fewer tiles: this test is about the memory of one tile
height, width, budget_mb, force = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
networks = {"encoder": build_network("VAE_A_quality"),
            "mapping": build_network("mapping_quality"),
            "decoder": build_network("VAE_B_quality")}
base = max(tiling.BASE["quality"], tiling.process_rss())  # what restore.plan_stage1 will use
if budget_mb.startswith("tile"):  # the smallest budget in which tiles of this side fit
    tile = int(budget_mb[4:])
    budget_mb = tiling.estimate_tiled_memory(height, width, "quality", tile, base=base) // 2**20 + 1
    assert tiling.estimate_stage1_memory(height, width, "quality", base=base) > budget_mb * 2**20
budget_mb = int(budget_mb)
y, x = np.mgrid[0:height, 0:width]
rgb = np.stack([(x * 7 + y * 3 + 40 * c) % 256 for c in range(3)], -1).astype(np.uint8)
lines = []
result = stages.restore_global(rgb, None, "pretrained", networks=networks,
                               memory_budget_mb=budget_mb, log=lines.append, tiling=force)
assert result.restored.shape == (height, width, 3)
status = open("/proc/self/status").read()
peak = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) * 1024
print(json.dumps({"peak": peak, "log": lines, "budget_mb": budget_mb, "base": base}))
"""


def run_child(budget_mb: int | str, force: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    proc = subprocess.run([sys.executable, "-c", CHILD, str(HEIGHT), str(WIDTH), str(budget_mb),
                           force], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_small_budget_is_kept_by_tiling():
    tiled = run_child("tile256", "auto")
    budget_mb = tiled["budget_mb"]
    assert "tiles of 256×256" in tiled["log"][0], tiled["log"][0]
    # The plan's base is the process measured after loading the networks; the whole run, the
    # photo's buffers and every tile included, stays within the budget.
    assert tiled["peak"] <= budget_mb * 2**20, (tiled["peak"] / 2**20, budget_mb, tiled["base"])

    whole = run_child(budget_mb, "whole")
    assert whole["log"][0].startswith("stage 1: whole image")
    assert whole["peak"] > tiled["peak"] + 50 * 2**20  # the tiles did bound the memory
