"""Stage 1 within a memory budget: peak-memory estimates and tiled inference with feathered seams.

Stage 1 runs its networks at the photo's own resolution (network grid: multiples of 4 on the
quality path, of 16 on the scratch paths), so its memory grows with the photo:

* every path keeps 64-channel full-resolution feature maps in the VAE encoder and decoder and
  512-channel maps at 1/4 resolution (1/16 of the pixels) in the mapping: several hundred bytes
  per pixel (:data:`PER_PIXEL`, measured by ``bench/memory_scale.py --calibrate``);
* the scratch path's non-local attention is computed exactly in query chunks
  (``oldphoto.nets.set_attention_budget``): its score buffers never exceed the attention budget;
* the HR path's patch attention builds one (masked patches × clean patches) similarity matrix
  per scale without chunking: at 2×2 latent patches it is quadratic in the photo's pixels.

:func:`estimate_stage1_memory` turns this into a peak-RSS estimate for the whole job process and
:func:`plan_stage1` decides: the **whole image** when the estimate fits the budget, otherwise
**tiles** — the largest square tile (sides multiples of :data:`ALIGN`) whose estimate, together
with the whole-image buffers, fits.  :func:`run_tiled` runs the generator tile by tile with
:data:`DEFAULT_OVERLAP` pixels of overlap and blends the tiles with linear (feathered) weights
across every overlap, so no seam shows a step.

Exactness:

* **Whole image** (every photo whose estimate fits the budget, i.e. all ordinary photos): the
  official computation; the chunked attention is exact (row-wise softmax), so the outputs equal
  the unchunked ones.
* **Tiled** (only above the budget): an approximation on every path.  The VAE and the mappings
  normalise with instance norm, whose statistics are then per tile instead of per photo; the
  non-local attention of the scratch path sees only the keys inside its tile, and the HR patch
  attention copies patches only from inside its tile.  Overlap and feathering hide the seams; the
  stage-1 min/max stretch (``tensors.official_stretch``) is applied once to the blended photo.
  A single tile covering the image is exactly the whole-image computation.

Scratch tiles are capped at :data:`MAX_TILE` ``["scratch"]`` px a side: the non-local attention
costs time quadratic in the tile's pixels (about a minute and a half per 1 MP tile on 2 CPU
cores), and 1 MP of context is already more than the official code can attend over on a 24 GB
machine (its unchunked matrix fails above ~0.57 MP).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from oldphoto.checkpoints.files import OFFICIAL_CHECKPOINTS

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

PATHS = ("quality", "scratch", "hr")

ALIGN = 32
"""Tile sides and offsets are multiples of this (latent offsets stay multiples of the 8×8 patches
of the HR path; the VAE needs multiples of 4)."""

DEFAULT_OVERLAP = 128
"""Pixels (network grid) shared by neighbouring tiles; the blend ramps linearly across them."""

MIN_TILE = 256
"""The smallest tile :func:`plan_stage1` proposes."""

MAX_TILE = {"quality": None, "scratch": 1024, "hr": None}
"""Largest tile side per path (None: as large as the budget allows).  See the module docstring."""

# Peak-RSS model of one stage-1 job process (bytes), from ``bench/memory_scale.py --calibrate``
# (whole images of 0.1-2 MP, CPU, torch 2.13, 2 threads; bench/results/memory_scale.md), rounded
# up: BASE is the interpreter, torch and the three networks' weights (measured 378 / 438 / 524 MiB
# after loading), PER_PIXEL every image buffer and activation per network-grid pixel (fitted 926 /
# 1388 / 956 bytes); the attention buffers are added separately.
BASE = {"quality": 400 << 20, "scratch": 460 << 20, "hr": 660 << 20}
PER_PIXEL = {"quality": 960, "scratch": 1420, "hr": 1000}

IMAGE_BYTES_PER_PIXEL = 112
"""Whole-photo buffers kept while tiles run: the uint8 photo and holes, the float32 input, mask,
blended output and weights, and the transient float32 copies of the final min/max stretch."""

ATTENTION_BUDGET_CAP = 1 << 30
"""Most bytes ``stages.restore_global`` gives the non-local attention's score chunks (half the job
budget below 2 GiB); larger chunks are no faster (512 MB chunks of a 16k-position attention run
as fast as 2 GB ones on 2 cores, 64 MB ones 1.7× slower)."""

WORKSPACE = 64 << 20
"""Working memory that does not grow with the pixels (allocator arenas, oneDNN scratch): the
linear fit above underestimates 0.1-0.5 MP images by 45-70 MiB, which matters for small tiles."""

SAFETY = 1.10
"""Estimates are multiplied by this (allocator slack, variation between machines)."""


def process_rss() -> int | None:
    """This process's resident set now (bytes; Linux ``/proc/self/status``), None elsewhere.

    :func:`oldphoto.restore.plan_stage1` uses it as the estimate's base when it exceeds
    :data:`BASE` -- after the networks are loaded it is exactly the memory the model's ``BASE``
    stands for, on this machine, with this torch build and device (a CUDA context adds hundreds of
    MiB that no constant can know).
    """
    import re

    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            match = re.search(r"VmRSS:\s+(\d+) kB", handle.read())
    except OSError:
        return None
    return int(match.group(1)) << 10 if match else None


# ---------------------------------------------------------------------------------------------
# Estimates


def _latent_size(height: int, width: int) -> tuple[int, int]:
    return math.ceil(height / 4), math.ceil(width / 4)


def attention_bytes(height: int, width: int, path: str, attention_budget: int | None = None,
                    mask: np.ndarray | None = None) -> int:
    """Working memory of the mapping's attention for an ``height×width`` network input.

    ``scratch``: the score buffers of one query chunk, at most ``attention_budget`` (the exact
    chunked non-local attention); ``hr``: the largest (masked × clean patches) similarity matrix
    and its softmax, from ``mask`` (uint8 ``H×W``, already dilated as with --HR) or, without one,
    the worst case (half the 2×2 patches masked); ``quality``: 0.
    """
    lh, lw = _latent_size(height, width)
    positions = lh * lw
    if path == "scratch":
        from oldphoto.nets.nonlocal_arch import attention_chunk_rows, score_row_bytes

        row_bytes = score_row_bytes(1, positions, 4)  # float32 scores, one image
        full = positions * row_bytes
        if attention_budget is None:
            return full
        rows = attention_chunk_rows(1, positions, 4, attention_budget)
        return min(full, rows * row_bytes)
    if path == "hr":
        patch_sizes = OFFICIAL_CHECKPOINTS["mapping_Patch_Attention"].options["patch_sizes"]
        masked_counts = None if mask is None else _masked_patch_counts(mask, (lh, lw), patch_sizes)
        worst = 0
        for i, p in enumerate(patch_sizes):
            patches = (lh // p) * (lw // p)
            masked = patches // 2 if masked_counts is None else masked_counts[i]
            worst = max(worst, 2 * masked * (patches - masked) * 4)
        return worst
    if path == "quality":
        return 0
    raise ValueError(f"unknown stage-1 path {path!r}; expected one of {PATHS}")


def _masked_patch_counts(mask: np.ndarray, latent_size: tuple[int, int],
                         patch_sizes: Sequence[int]) -> list[int]:
    """Masked patches per scale of the HR patch attention for the (dilated) uint8 ``mask``: the
    network's own computation (``patch_attention_arch.masked_patch_counts``)."""
    import torch

    from oldphoto.nets.patch_attention_arch import masked_patch_counts

    image_mask = torch.from_numpy(np.ascontiguousarray(mask > 0)).to(torch.float32)[None, None]
    counts = masked_patch_counts(image_mask, latent_size, tuple(patch_sizes))
    return [int(count[0]) for count in counts]


def estimate_stage1_memory(h: int, w: int, path: str, *, attention_budget: int | None = None,
                           mask: np.ndarray | None = None, base: int | None = None) -> int:
    """Estimated peak RSS (bytes) of a stage-1 job running the whole ``h×w`` network input at once.

    Args:
        h, w: the network grid (quality path: after ``restore.prepare_quality_input``; scratch
            paths: the detection-sized photo).
        path: ``"quality"``, ``"scratch"`` or ``"hr"``.
        attention_budget: bytes of the scratch path's attention chunks
            (``oldphoto.nets.get_attention_budget()`` when None).
        mask: the HR path's (dilated) scratch mask, for its patch-similarity matrices; the worst
            case is assumed without it.
        base: bytes of the process before the photo (interpreter, torch, networks): the measured
            :func:`process_rss` when known, :data:`BASE` of the path when None.
    """
    if path not in PATHS:
        raise ValueError(f"unknown stage-1 path {path!r}; expected one of {PATHS}")
    if path == "scratch" and attention_budget is None:
        from oldphoto.nets import get_attention_budget

        attention_budget = get_attention_budget()
    pixels = h * w
    base = BASE[path] if base is None else base
    total = (base + WORKSPACE + PER_PIXEL[path] * pixels
             + attention_bytes(h, w, path, attention_budget, mask))
    return int(total * SAFETY)


def estimate_tiled_memory(h: int, w: int, path: str, tile: int, *,
                          attention_budget: int | None = None, base: int | None = None) -> int:
    """Estimated peak RSS (bytes) of the ``h×w`` input run in ``tile×tile`` tiles.

    The whole-photo buffers (:data:`IMAGE_BYTES_PER_PIXEL`) plus one tile run as a whole image
    (HR tiles assume the worst-case mask).
    """
    tile_h, tile_w = min(tile, h), min(tile, w)
    one_tile = estimate_stage1_memory(tile_h, tile_w, path, attention_budget=attention_budget,
                                      base=base)
    return int(one_tile + IMAGE_BYTES_PER_PIXEL * h * w * SAFETY)


@dataclass(frozen=True)
class Stage1Plan:
    """How stage 1 runs one photo: whole (``tile is None``) or in ``tile×tile`` tiles."""

    path: str
    height: int
    width: int
    budget: int
    whole_estimate: int
    tile: int | None = None
    tiled_estimate: int | None = None
    overlap: int = DEFAULT_OVERLAP
    base: int | None = None

    @property
    def fits(self) -> bool:
        estimate = self.whole_estimate if self.tile is None else self.tiled_estimate
        return estimate is not None and estimate <= self.budget

    def describe(self) -> str:
        mib = 2**20
        whole = (f"whole-image estimate {self.whole_estimate / mib:.0f} MiB, budget "
                 f"{self.budget / mib:.0f} MiB")
        if self.base is not None:
            whole += f", process before the photo {self.base / mib:.0f} MiB"
        if self.tile is None:
            return f"whole image {self.width}×{self.height} ({whole}; exact)"
        tiles = (len(tile_starts(self.height, min(self.tile, self.height), self.overlap))
                 * len(tile_starts(self.width, min(self.tile, self.width), self.overlap)))
        note = "" if self.fits else "; DOES NOT FIT the budget even at the smallest tile"
        return (f"{tiles} tiles of {self.tile}×{self.tile}, overlap {self.overlap} px, for "
                f"{self.width}×{self.height} (tiled estimate {self.tiled_estimate / mib:.0f} MiB; "
                f"{whole}; approximate: instance norm and attention per tile{note})")


def plan_stage1(h: int, w: int, path: str, budget: int, *, attention_budget: int | None = None,
                mask: np.ndarray | None = None, overlap: int | None = None,
                max_tile: int | None = None, force: str = "auto",
                base: int | None = None) -> Stage1Plan:
    """Whole image when its estimate fits ``budget`` (bytes), else the largest tile that fits.

    ``force``: ``"auto"`` (the rule above), ``"whole"`` or ``"tiled"`` (benchmarks, tests; at
    least two tiles).  ``overlap`` defaults to :data:`DEFAULT_OVERLAP`, ``max_tile`` to
    :data:`MAX_TILE` for the path.  When not even :data:`MIN_TILE` fits, the plan uses
    :data:`MIN_TILE` and ``plan.fits`` is False.  ``base``: see :func:`estimate_stage1_memory`.
    """
    if force not in ("auto", "whole", "tiled"):
        raise ValueError(f"force must be 'auto', 'whole' or 'tiled', not {force!r}")
    overlap = DEFAULT_OVERLAP if overlap is None else overlap
    whole = estimate_stage1_memory(h, w, path, attention_budget=attention_budget, mask=mask,
                                   base=base)
    plan = Stage1Plan(path, h, w, int(budget), whole, overlap=overlap, base=base)
    if force == "whole" or (force == "auto" and whole <= budget):
        return plan
    cap = max_tile if max_tile is not None else MAX_TILE[path]
    largest = max(h, w) if cap is None else min(cap, max(h, w))
    largest = max(MIN_TILE, largest // ALIGN * ALIGN)
    tile = MIN_TILE
    for candidate in range(largest, MIN_TILE - 1, -ALIGN):
        if estimate_tiled_memory(h, w, path, candidate, attention_budget=attention_budget,
                                 base=base) <= budget:
            tile = candidate
            break
    if force == "tiled" and tile >= max(h, w) and max(h, w) > MIN_TILE:
        tile = max(MIN_TILE, (max(h, w) // 2 + overlap) // ALIGN * ALIGN)  # at least two tiles
    estimate = estimate_tiled_memory(h, w, path, tile, attention_budget=attention_budget,
                                     base=base)
    return Stage1Plan(path, h, w, int(budget), whole, tile, estimate, overlap, base)


# ---------------------------------------------------------------------------------------------
# Tiled inference


def tile_starts(length: int, tile: int, overlap: int, align: int | None = None) -> list[int]:
    """Offsets of evenly spread tiles of ``tile`` px covering ``[0, length)``.

    Neighbouring tiles share at least ``overlap`` px; offsets are multiples of ``align``
    (:data:`ALIGN` if None) except the last, which ends exactly at ``length``.
    """
    align = ALIGN if align is None else align
    if tile >= length:
        return [0]
    if overlap >= tile:
        raise ValueError(f"overlap {overlap} must be smaller than the tile {tile}")
    step = tile - overlap - align  # room for rounding every offset down to ``align``
    if step <= 0:
        raise ValueError(f"tile {tile} leaves no room to step past an overlap of {overlap}")
    gaps = math.ceil((length - tile) / step)
    spacing = (length - tile) / gaps
    starts = [int(i * spacing) // align * align for i in range(gaps)]
    starts.append(length - tile)
    return starts


def feather_weights(starts: Sequence[int], index: int, tile: int, length: int,
                    overlap: int) -> np.ndarray:
    """1-D blend weights of tile ``index``: 1 inside, a linear ramp ``(k + 0.5) / overlap`` over
    the first/last ``overlap`` px of every edge that lies inside the image (image borders keep 1).

    Each interior edge lies at least ``overlap`` px inside a neighbouring tile, so the weights
    covering any point sum to at least 1 (exactly 1 where two tiles share exactly ``overlap`` px);
    :func:`run_tiled` divides by the sum.  The blend then changes by at most (difference between
    the tiles) / ``overlap`` per pixel: no step at a seam.
    """
    size = min(tile, length)
    weights = np.ones(size, dtype=np.float32)
    ramp = ((np.arange(min(overlap, size)) + 0.5) / overlap).astype(np.float32)
    if index > 0:
        weights[: ramp.size] = np.minimum(weights[: ramp.size], ramp)
    if index < len(starts) - 1:
        weights[size - ramp.size:] = np.minimum(weights[size - ramp.size:], ramp[::-1])
    return weights


def run_tiled(generator: Callable[..., Any], x: "torch.Tensor", tile: int | tuple[int, int],
              overlap: int | None = None, mask: "torch.Tensor | None" = None,
              device: Any = "cpu", log: Callable[[str], None] | None = None) -> "torch.Tensor":
    """``generator`` over ``x`` (``1×C×H×W``) tile by tile, blended with feathered seams.

    Args:
        generator: ``generator(x_tile)`` or, with ``mask``, ``generator(x_tile, mask_tile)``;
            returns a tensor of the tile's size (``restore.GlobalGenerator``).
        x: the network input on the CPU.
        tile: tile side (or ``(height, width)``), clipped to the image; multiples of 4.
        overlap: pixels shared by neighbouring tiles (:data:`DEFAULT_OVERLAP` if None).
        mask: ``1×1×H×W`` scratch mask cut into the same tiles.
        device: where the generator runs; tiles move there one at a time.
        log: called once per tile.

    Returns:
        float32 CPU ``1×C'×H×W``: ``Σ wᵢ·yᵢ / Σ wᵢ`` with the weights of :func:`feather_weights`.
        With one tile covering the image this is exactly ``generator(x[, mask])``.
    """
    import torch

    overlap = DEFAULT_OVERLAP if overlap is None else overlap
    _, _, height, width = x.shape
    tile_h, tile_w = (tile, tile) if isinstance(tile, int) else tile
    tile_h, tile_w = min(tile_h, height), min(tile_w, width)
    if tile_h % 4 or tile_w % 4:
        raise ValueError(f"tile sides must be multiples of 4, got {tile_h}×{tile_w}")
    rows = tile_starts(height, tile_h, overlap)
    cols = tile_starts(width, tile_w, overlap)
    if len(rows) == 1 and len(cols) == 1:
        with torch.inference_mode():
            args = (x.to(device),) if mask is None else (x.to(device), mask.to(device))
            return generator(*args).detach().to("cpu", torch.float32)
    blended: torch.Tensor | None = None
    weight_sum = torch.zeros(height, width, dtype=torch.float32)
    count = 0
    with torch.inference_mode():
        for i, top in enumerate(rows):
            row_weights = torch.from_numpy(feather_weights(rows, i, tile_h, height, overlap))
            for j, left in enumerate(cols):
                col_weights = torch.from_numpy(feather_weights(cols, j, tile_w, width, overlap))
                window = (slice(None), slice(None), slice(top, top + tile_h),
                          slice(left, left + tile_w))
                x_tile = x[window].contiguous().to(device)
                if mask is None:
                    y_tile = generator(x_tile)
                else:
                    y_tile = generator(x_tile, mask[window].contiguous().to(device))
                y_tile = y_tile.detach().to("cpu", torch.float32)
                del x_tile
                if blended is None:
                    blended = torch.zeros(1, y_tile.shape[1], height, width, dtype=torch.float32)
                weights = row_weights[:, None] * col_weights[None, :]
                blended[window].add_(y_tile.mul_(weights))
                weight_sum[window[2:]].add_(weights)
                del y_tile
                count += 1
                if log is not None:
                    log(f"tile {count}/{len(rows) * len(cols)} at ({left}, {top}) done")
        assert blended is not None
        return blended.div_(weight_sum)
