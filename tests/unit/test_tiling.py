"""Tiled stage-1 inference (oldphoto.tiling): exactness with one tile, feathered seams, the plan."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oldphoto import restore, stages, tiling
from oldphoto.checkpoints.registry import build_network


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the shared cores
    yield
    torch.set_num_threads(threads)


def pointwise(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    return 0.85 * torch.tanh(1.7 * x) - 0.1 + (0 if mask is None else 0.3 * mask)


def photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth photo-like image (gradients plus a little noise)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([128 + 80 * np.sin(x / 23.0 + c) * np.cos(y / 31.0) for c in range(3)], -1)
    return np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def quality_generator():
    torch.manual_seed(0)
    encoder = build_network("VAE_A_quality")
    mapping = build_network("mapping_quality")
    decoder = build_network("VAE_B_quality")
    return restore.global_generator(encoder, mapping, decoder)


@pytest.fixture(scope="module")
def scratch_generator():
    torch.manual_seed(1)
    encoder = build_network("VAE_A_quality")
    mapping = build_network("mapping_scratch")
    decoder = build_network("VAE_B_scratch")
    return restore.global_generator(encoder, mapping, decoder)


# ---------------------------------------------------------------------------------------------
# Tile geometry


@pytest.mark.parametrize("length,tile,overlap", [(1000, 256, 64), (4000, 1024, 128),
                                                 (300, 256, 64), (256, 256, 64), (100, 256, 64),
                                                 (772, 320, 128), (6000, 2880, 128)])
def test_tile_starts_cover_with_overlap(length, tile, overlap):
    starts = tiling.tile_starts(length, tile, overlap)
    size = min(tile, length)
    assert starts[0] == 0 and starts[-1] + size == length
    for a, b in zip(starts, starts[1:]):
        assert b > a and a + size - b >= overlap  # consecutive tiles share >= overlap px
        assert a % tiling.ALIGN == 0
    covered = np.zeros(length, bool)
    for s in starts:
        covered[s:s + size] = True
    assert covered.all()


@pytest.mark.parametrize("length,tile,overlap", [(1000, 256, 64), (772, 320, 128),
                                                 (4000, 1024, 128)])
def test_feather_weights_cover_every_pixel_and_vanish_at_inner_edges(length, tile, overlap):
    starts = tiling.tile_starts(length, tile, overlap)
    total = np.zeros(length)
    for i, s in enumerate(starts):
        w = tiling.feather_weights(starts, i, tile, length, overlap)
        assert w.min() > 0 and w.max() <= 1
        if i > 0:
            assert w[0] == pytest.approx(0.5 / overlap)
        if i < len(starts) - 1:
            assert w[-1] == pytest.approx(0.5 / overlap)
        total[s:s + tile] += w
    assert total.min() >= 1 - 1e-6
    assert total[0] == 1 and total[-1] == 1


# ---------------------------------------------------------------------------------------------
# run_tiled


def test_single_tile_is_exactly_the_whole_image(quality_generator, scratch_generator):
    x = restore.to_network(photo(96, 128))
    with torch.inference_mode():
        whole = quality_generator(x)
    tiled = tiling.run_tiled(quality_generator, x, tile=256, overlap=64)
    assert torch.equal(tiled, whole)

    mask = torch.zeros(1, 1, 96, 128)
    mask[..., 40:44, :] = 1
    with torch.inference_mode():
        whole = scratch_generator(x, mask)
    assert torch.equal(tiling.run_tiled(scratch_generator, x, 128, 64, mask=mask), whole)


def test_tiles_of_a_local_generator_equal_the_whole_image():
    x = restore.to_network(photo(200, 328))
    mask = (torch.rand(1, 1, 200, 328, generator=torch.Generator().manual_seed(0)) > 0.9).float()
    tiled = tiling.run_tiled(pointwise, x, tile=96, overlap=32, mask=mask)
    torch.testing.assert_close(tiled, pointwise(x, mask), rtol=0, atol=1e-6)


class TileOffset:
    """Every call returns a constant that differs per tile: the worst case for a seam."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, x, mask=None):
        self.calls += 1
        return torch.full_like(x, 0.4 * (self.calls % 2) - 0.2 * (self.calls % 3))


def test_seams_are_feathered_without_a_step():
    height, width, overlap = 256, 384, 64
    x = torch.zeros(1, 3, height, width)
    out = tiling.run_tiled(TileOffset(), x, tile=160, overlap=overlap)[0, 0]
    values = [0.4 * (k % 2) - 0.2 * (k % 3) for k in range(1, 50)]
    jump = max(values) - min(values)
    # Between two constant tiles the blend ramps over the whole overlap: no step larger than
    # jump / overlap (plus rounding) anywhere, in either direction.
    step_x = (out[:, 1:] - out[:, :-1]).abs().max().item()
    step_y = (out[1:, :] - out[:-1, :]).abs().max().item()
    assert max(step_x, step_y) <= jump / overlap * 1.5 + 1e-6
    # ...whereas pasting the same tiles without feathering leaves a full step.
    hard = torch.zeros(height, width)
    offsets = TileOffset()
    rows = tiling.tile_starts(height, 160, overlap)
    cols = tiling.tile_starts(width, 160, overlap)
    for top in rows:
        for left in cols:
            hard[top:top + 160, left:left + 160] = offsets(torch.zeros(1, 1, 1, 1)).item()
    assert (hard[:, 1:] - hard[:, :-1]).abs().max().item() > 0.1


# ---------------------------------------------------------------------------------------------
# Estimates and the plan


def test_estimate_grows_with_size_and_attention():
    small = tiling.estimate_stage1_memory(512, 512, "quality")
    large = tiling.estimate_stage1_memory(4096, 4096, "quality")
    assert small < large
    assert large > 16 * 2**30 > small  # 16 MP quality path: over 16 GiB, a small photo far below
    chunked = tiling.estimate_stage1_memory(2048, 2048, "scratch", attention_budget=2**28)
    unbounded = tiling.estimate_stage1_memory(2048, 2048, "scratch", attention_budget=2**40)
    assert chunked < unbounded


def test_hr_estimate_reads_the_mask():
    clean = np.zeros((512, 512), np.uint8)
    half = clean.copy()
    half[:, :256] = 255
    assert tiling.attention_bytes(512, 512, "hr", mask=clean) == 0
    assert tiling.attention_bytes(512, 512, "hr", mask=half) > 0
    # 128×128 latent, 2×2 patches: 4096 patches, half masked -> 2 · 2048 · 2048 · 4 bytes
    assert tiling.attention_bytes(512, 512, "hr", mask=half) == 2 * 2048 * 2048 * 4
    assert tiling.attention_bytes(512, 512, "hr") == 2 * 2048 * 2048 * 4  # worst case


def test_hr_estimate_counts_the_patches_the_network_masks(monkeypatch):
    """The planner's masked-patch counts are those the patch attention finds in its forward."""
    from oldphoto.nets import patch_attention_arch as pa

    height, width = 96, 136  # latent 24 x 34: partial patches at every scale
    rng = np.random.default_rng(3)
    mask = np.zeros((height, width), np.uint8)
    mask[10:60, 20:70] = 255
    mask[rng.random((height, width)) < 0.05] = 255
    image_mask = torch.from_numpy(mask > 0).float()[None, None]

    seen = []
    compose = pa.compose_patches

    def recording(x, m, patch_size):
        seen.append((patch_size, int(pa.masked_patch_grid(m, patch_size).sum())))
        return compose(x, m, patch_size)

    monkeypatch.setattr(pa, "compose_patches", recording)
    torch.manual_seed(0)
    mapping = pa.Mapping_Model_with_mask_2(nc=4, mc=8).eval()
    with torch.inference_mode():
        mapping(torch.randn(1, 4, height // 4, width // 4), image_mask)
    assert [p for p, _ in seen] == [8, 4, 2]
    assert all(count > 0 for _, count in seen)

    counts = pa.masked_patch_counts(image_mask, (height // 4, width // 4), (8, 4, 2))
    assert [int(c[0]) for c in counts] == [count for _, count in seen]
    expected = max(2 * m * ((height // 4 // p) * (width // 4 // p) - m) * 4 for p, m in seen)
    assert tiling.attention_bytes(height, width, "hr", mask=mask) == expected


def test_plan_tiles_only_above_the_budget():
    budget = 8000 * 2**20
    assert tiling.plan_stage1(1024, 1536, "quality", budget).tile is None
    plan = tiling.plan_stage1(4000, 6000, "quality", budget)
    assert plan.whole_estimate > budget
    assert plan.tile is not None and plan.tile % tiling.ALIGN == 0
    assert plan.tiled_estimate <= budget and plan.fits
    # the largest tile that fits: one more alignment step would not
    bigger = tiling.estimate_tiled_memory(4000, 6000, "quality", plan.tile + tiling.ALIGN)
    assert bigger > budget
    scratch = tiling.plan_stage1(4000, 6000, "scratch", budget, attention_budget=2**30)
    assert scratch.tile is not None and scratch.tile <= tiling.MAX_TILE["scratch"]
    assert "approximate" in plan.describe() and "exact" in tiling.plan_stage1(
        64, 64, "quality", budget).describe()


@pytest.fixture
def small_tiles(monkeypatch):
    """Tiles small enough for test-sized photos."""
    monkeypatch.setattr(tiling, "MIN_TILE", 64)
    monkeypatch.setattr(tiling, "ALIGN", 16)
    monkeypatch.setattr(tiling, "DEFAULT_OVERLAP", 16)


def test_restore_global_routes_through_tiles_only_above_the_budget(quality_generator,
                                                                   small_tiles):
    networks = {"encoder": quality_generator.encoder, "mapping": quality_generator.mapping,
                "decoder": quality_generator.decoder}
    rgb = photo(96, 128)
    lines: list[str] = []
    exact = stages.restore_global(rgb, None, "pretrained", networks=networks, log=lines.append)
    assert lines[0].startswith("stage 1: whole image")
    expected = restore.restore_image(rgb, quality_generator)
    assert np.array_equal(exact.restored, expected.restored)

    lines.clear()
    whole_mib = tiling.estimate_stage1_memory(96, 128, "quality") / 2**20
    tiled = stages.restore_global(rgb, None, "pretrained", networks=networks, log=lines.append,
                                  tiling="tiled", memory_budget_mb=int(whole_mib) + 100)
    assert "tiles of" in lines[0] and any(line.startswith("tile 2/") for line in lines)
    assert tiled.restored.shape == exact.restored.shape
    assert np.array_equal(tiled.origin, exact.origin)


def test_restore_image_with_a_budget_below_the_estimate_tiles(quality_generator, small_tiles):
    rgb = photo(96, 128)
    lines: list[str] = []
    budget = tiling.estimate_tiled_memory(96, 128, "quality", 64) + 2**20
    result = restore.restore_image(rgb, quality_generator, memory_budget=budget, log=lines.append)
    assert "6 tiles of 64×64" in lines[0]
    assert result.restored.shape == (96, 128, 3)
