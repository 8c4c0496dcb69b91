"""Chunked non-local attention (exactness, memory bound) and the patch-attention edge cases."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

from oldphoto import nets
from oldphoto.checkpoints.registry import build_network
from oldphoto.nets import nonlocal_arch
from oldphoto.nets.nonlocal_arch import (NonLocalBlock2D_with_mask_Res, attention_chunk_rows,
                                         masked_attention, scratch_keep_mask)
from oldphoto.nets.patch_attention_arch import Patch_Attention_4, compose_patches


def full_attention(theta_x, phi_x, g_x, keep):
    """The unchunked computation, written out: N x N scores, softmax, masked keys, L1 rows."""
    weights = torch.softmax(theta_x @ phi_x, dim=-1) * keep
    weights = weights / weights.abs().sum(-1, keepdim=True).clamp_min(1e-12)
    return weights @ g_x


def random_attention_inputs(n: int = 480, channels: int = 16, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    theta_x = torch.randn(2, n, channels, generator=gen) * 2
    phi_x = torch.randn(2, channels, n, generator=gen) * 2
    g_x = torch.randn(2, n, channels, generator=gen)
    keep = (torch.rand(2, 1, n, generator=gen) > 0.3).float()
    return theta_x, phi_x, g_x, keep


@pytest.mark.parametrize("rows", [1, 7, 100, 480])
def test_chunked_attention_equals_full(rows):
    theta_x, phi_x, g_x, keep = random_attention_inputs()
    budget = rows * 2 * 2 * 480 * 4  # exactly `rows` query rows per chunk
    assert attention_chunk_rows(2, 480, 4, budget) == rows
    expected = full_attention(theta_x, phi_x, g_x, keep)
    assert (masked_attention(theta_x, phi_x, g_x, keep, budget) - expected).abs().max() <= 1e-5


def test_block_with_small_budget_equals_unbounded():
    torch.manual_seed(0)
    block = NonLocalBlock2D_with_mask_Res(32, 32, n_res_blocks=1).eval()
    x = torch.randn(1, 32, 18, 22)
    mask = torch.zeros(1, 1, 72, 88)
    mask[..., 10:40, 20:30] = 1
    with torch.inference_mode():
        block.attention_budget = 1 << 40
        unbounded = block(x, mask)
        block.attention_budget = 5 * 2 * 396 * 4  # 5 query rows per chunk
        chunked = block(x, mask)
    assert (chunked - unbounded).abs().max() <= 1e-5
    keep = scratch_keep_mask(mask, (18, 22)).bool().expand_as(x)
    assert torch.equal(chunked[keep], x[keep]) and not keep.all()


def test_attention_budget_default_and_setter(monkeypatch):
    assert nonlocal_arch.DEFAULT_ATTENTION_BUDGET == 1 << 30
    monkeypatch.setattr(nonlocal_arch, "_attention_budget", nonlocal_arch._attention_budget)
    nets.set_attention_budget(64 << 20)
    assert nets.get_attention_budget() == 64 << 20
    with pytest.raises(ValueError):
        nets.set_attention_budget(0)
    assert attention_chunk_rows(1, 8192, 4, 64 << 20) == 1024
    assert attention_chunk_rows(1, 10**9, 4, 64 << 20) == 1  # never zero rows


# The memory test runs in a fresh interpreter so that the peak RSS (VmHWM, which starts afresh at
# exec; getrusage's ru_maxrss does not: it inherits the forking parent's peak) measures only this
# computation. Features 64 x 128 (N = 8192): the full N x N float32 matrix is 256 MiB; the budget
# is 64 MiB. Two independent measurements: the largest tensor any aten op creates during the
# forward (a TorchDispatchMode), and the growth of the peak RSS. A control run with an unbounded
# budget shows that the RSS measurement does see a full matrix.
MEMORY_PROBE = textwrap.dedent("""
    import json, re, torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves
    from oldphoto import nets
    from oldphoto.nets.nonlocal_arch import NonLocalBlock2D_with_mask_Res

    class LargestTensor(TorchDispatchMode):
        largest = 0
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for leaf in tree_leaves(out):
                if isinstance(leaf, torch.Tensor):
                    self.largest = max(self.largest, leaf.untyped_storage().nbytes())
            return out

    def peak_rss():
        status = open("/proc/self/status").read()
        return int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) * 1024

    torch.manual_seed(0)
    nets.set_attention_budget(64 << 20)
    block = NonLocalBlock2D_with_mask_Res(32, 32, n_res_blocks=1).eval()
    x = torch.randn(1, 32, 64, 128)
    mask = (torch.rand(1, 1, 256, 512) > 0.95).float()
    result = {}
    with torch.inference_mode():
        block(x[..., :8, :8], mask[..., :32, :32])  # warm up kernels and allocator
        before = peak_rss()
        chunked = block(x, mask)
        result["rss_growth"] = peak_rss() - before
        with LargestTensor() as probe:
            block(x, mask)
        result["largest_tensor"] = probe.largest
        block.attention_budget = 1 << 40
        before = peak_rss()
        full = block(x, mask)
        result["rss_growth_unbounded"] = peak_rss() - before
        result["max_diff"] = (full - chunked).abs().max().item()
    print(json.dumps(result))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_attention_memory_stays_within_budget():
    run = subprocess.run([sys.executable, "-c", MEMORY_PROBE], capture_output=True, text=True,
                         timeout=300, check=True)
    result = json.loads(run.stdout.strip().splitlines()[-1])
    budget, full_matrix = 64 << 20, 8192 * 8192 * 4
    assert result["largest_tensor"] <= budget // 2, result  # one chunk of scores: 1024 x 8192
    assert 0 < result["rss_growth"] < budget + (32 << 20), result  # far below one full matrix
    assert result["rss_growth_unbounded"] >= full_matrix, result  # the control sees the matrix
    assert result["max_diff"] <= 1e-5


# ---------------------------------------------------------------------- patch attention


def _features(seed=0, shape=(1, 4, 10, 10)):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_compose_patches_copies_best_clean_patch_and_zeroes_border():
    x = _features()
    m = torch.zeros(1, 1, 10, 10)
    m[..., 4:8, 0:4] = 1  # patch 2 of the 2 x 2 grid of 4 x 4 patches
    composed = compose_patches(x, m, 4)
    patches = F.unfold(x, 4, stride=4)[0]  # 64 x 4
    unit = F.normalize(patches, dim=0)
    best = max((0, 1, 3), key=lambda j: float(unit[:, 2] @ unit[:, j]))
    assert torch.equal(F.unfold(composed, 4, stride=4)[0][:, 2], patches[:, best])
    for j in (0, 1, 3):
        assert torch.equal(F.unfold(composed, 4, stride=4)[0][:, j], patches[:, j])
    # rows/columns 8-9 are outside the grid: zero, not x
    assert composed[..., 8:, :].abs().max() == 0 and composed[..., :, 8:].abs().max() == 0


def test_compose_patches_without_masked_patch_is_identity():
    x = _features()
    m = torch.zeros(1, 1, 10, 10)
    m[..., 0:2, 0:2] = 1  # 4 of 16 pixels: not > 0.6 of the patch
    assert compose_patches(x, m, 4) is x
    assert compose_patches(x, torch.ones(1, 1, 10, 10), 16) is x  # empty grid


def test_patch_attention_all_masked_keeps_features_and_warns():
    # The official code crashes here and drops the photo; we keep x at this scale (deliberate).
    x = _features()
    with pytest.warns(RuntimeWarning, match="nothing to copy"):
        composed = compose_patches(x, torch.ones(1, 1, 10, 10), 4)
    assert torch.equal(composed, x)
    block = Patch_Attention_4(4, patch_size=4).eval()
    with torch.inference_mode(), pytest.warns(RuntimeWarning, match="nothing to copy"):
        out = block(_features(), torch.ones(1, 1, 40, 40))
    assert out.shape == (1, 4, 10, 10) and torch.isfinite(out).all()


def test_hr_mapping_all_masked_runs_with_a_warning():
    mapping = build_network("mapping_Patch_Attention")
    with torch.inference_mode(), pytest.warns(RuntimeWarning, match="all 1 patches"):
        out = mapping(torch.randn(1, 64, 8, 8), torch.ones(1, 1, 32, 32))
    assert out.shape == (1, 64, 8, 8) and torch.isfinite(out).all()