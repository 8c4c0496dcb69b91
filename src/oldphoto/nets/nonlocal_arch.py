"""Scratch mapping ``Mapping_Model_with_mask`` (``mapping_scratch``) and its masked non-local block.

The non-local block fills scratched positions of the latent with an attention-weighted mix of clean
positions. Its N x N attention matrix (N = latent pixels, 1/16 of the image pixels) is quadratic in
the image size, so it is computed exactly in chunks of query rows whose working memory stays within
a budget: ``set_attention_budget(nbytes)`` (module default) or the ``attention_budget`` argument.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .arch_util import ResnetBlock
from .mapping_arch import expansion_layers, reduction_layers

DEFAULT_ATTENTION_BUDGET = 1 << 30  # bytes
_attention_budget = DEFAULT_ATTENTION_BUDGET

# Score rows alive at once per chunk: the scores and their softmax (masking and renormalisation
# then work in place).
_ROW_BUFFERS = 2


def set_attention_budget(nbytes: int) -> None:
    """Set the default working-memory budget (bytes) of the non-local attention (initially 1 GiB)."""
    global _attention_budget
    if int(nbytes) <= 0:
        raise ValueError(f"attention budget must be positive, got {nbytes}")
    _attention_budget = int(nbytes)


def get_attention_budget() -> int:
    """The current default working-memory budget (bytes) of the non-local attention."""
    return _attention_budget


def score_row_bytes(batch: int, n_keys: int, itemsize: int) -> int:
    """Bytes of the score buffers that one query row of the chunked attention keeps alive."""
    return _ROW_BUFFERS * batch * n_keys * itemsize


def attention_chunk_rows(batch: int, n_keys: int, itemsize: int, budget: int) -> int:
    """Query rows per chunk so that the chunk's score buffers fit in ``budget`` bytes (at least 1)."""
    return max(1, budget // score_row_bytes(batch, n_keys, itemsize))


def scratch_keep_mask(mask: Tensor, size: tuple[int, int]) -> Tensor:
    """Keep mask K (1 = clean, usable) at feature size ``size`` from the image-size scratch mask.

    Args:
        mask (Tensor): N x 1 x H x W, values {0, 1}, 1 = scratch.
        size (tuple[int, int]): Feature size (h, w).
    """
    # A position is kept only if BOTH resizes see no scratch: bilinear (for a 4x reduction it
    # reads image rows/cols 4i+1 and 4i+2) must be exactly 0, and nearest (row/col 4i) must be
    # clean. Dropping either term changes the official output by ~2.
    touched = F.interpolate(mask, size=size, mode="bilinear", align_corners=False) > 0
    clean_nearest = F.interpolate(1 - mask, size=size, mode="nearest")
    return (1 - touched.to(mask.dtype)) * clean_nearest


def masked_attention(theta_x: Tensor, phi_x: Tensor, g_x: Tensor, keep: Tensor,
                     budget: int) -> Tensor:
    """softmax(theta_x phi_x) with masked keys, L1-renormalised rows, times g_x, in query chunks.

    Rows are independent (softmax and renormalisation act per query row), so the chunked result
    equals the full computation.

    Args:
        theta_x (Tensor): Queries, B x N x C.
        phi_x (Tensor): Keys, B x C x N.
        g_x (Tensor): Values, B x N x C.
        keep (Tensor): Usable keys, B x 1 x N, values {0, 1}.
        budget (int): Bytes allowed for the score buffers of one chunk.

    Returns:
        Tensor: B x N x C.
    """
    batch, n_queries, channels = theta_x.shape
    n_keys = phi_x.shape[2]
    rows = attention_chunk_rows(batch, n_keys, theta_x.element_size(), budget)
    out = theta_x.new_empty(batch, n_queries, g_x.shape[2])
    for start in range(0, n_queries, rows):
        scores = torch.matmul(theta_x[:, start:start + rows], phi_x)  # no 1/sqrt(C) scaling
        scores = F.softmax(scores, dim=-1)
        scores.mul_(keep)  # zero the columns of scratched keys...
        F.normalize(scores, p=1, dim=2, out=scores)  # ...and renormalise each row to sum 1
        out[:, start:start + rows] = torch.matmul(scores, g_x)
        del scores
    return out


class NonLocalBlock2D_with_mask_Res(nn.Module):
    """Mask-aware non-local block (official ``non_local="Setting_42"``, fusion "combine").

    Attention over all latent positions with the scratched keys removed (``masked_attention``),
    then W (1x1 conv) and ``n_res_blocks`` ResnetBlocks; clean positions pass the input through
    unchanged and scratched ones take the attention result.

    Args:
        in_channels (int): Channels of the features. Default: 512.
        inter_channels (int): Channels of theta, phi and g. Default: 512.
        n_res_blocks (int): ResnetBlocks after W. Default: 3.
        attention_budget (int | None): Bytes for the score buffers of one query chunk; None reads
            the module default (``set_attention_budget``, initially 1 GiB) at every call.
    """

    def __init__(self, in_channels: int = 512, inter_channels: int = 512, n_res_blocks: int = 3,
                 attention_budget: int | None = None) -> None:
        super().__init__()
        self.attention_budget = attention_budget
        self.g = nn.Conv2d(in_channels, inter_channels, 1)
        self.W = nn.Conv2d(inter_channels, in_channels, 1)
        self.theta = nn.Conv2d(in_channels, inter_channels, 1)
        self.phi = nn.Conv2d(in_channels, inter_channels, 1)
        self.res_block = nn.Sequential(*(ResnetBlock(in_channels) for _ in range(n_res_blocks)))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """x: B x C x h x w features; mask: B x 1 x H x W image-size scratch mask (1 = scratch)."""
        batch, _, height, width = x.shape
        keep = scratch_keep_mask(mask, (height, width))
        theta_x = self.theta(x).flatten(2).transpose(1, 2)
        phi_x = self.phi(x).flatten(2)
        g_x = self.g(x).flatten(2).transpose(1, 2)
        budget = self.attention_budget or _attention_budget
        y = masked_attention(theta_x, phi_x, g_x, keep.flatten(2), budget)
        y = y.transpose(1, 2).reshape(batch, -1, height, width)
        y = self.res_block(self.W(y))
        return keep * x + (1 - keep) * y


class Mapping_Model_with_mask(nn.Module):
    """Latent mapping of the scratch restoration (``restoration/mapping_scratch``).

    ``before_NL`` (expansion convs ``.0, 3, 6, 9``), the masked non-local block ``NL``, then
    ``after_NL`` (``n_blocks`` ResnetBlocks ``.0-5`` and reduction convs ``.6, 9, 12, 15``).

    Args:
        nc (int): Latent channels in and out. Default: 64.
        mc (int): Width of the trunk. Default: 512.
        n_blocks (int): ResnetBlocks after the non-local block. Default: 6.
        n_up (int): Conv layers widening (and narrowing) the channels. Default: 4.
        nl_res_blocks (int): ResnetBlocks inside the non-local block. Default: 3.
        attention_budget (int | None): See ``NonLocalBlock2D_with_mask_Res``. Default: None.
    """

    def __init__(self, nc: int = 64, mc: int = 512, n_blocks: int = 6, n_up: int = 4,
                 nl_res_blocks: int = 3, attention_budget: int | None = None) -> None:
        super().__init__()
        self.before_NL = nn.Sequential(*expansion_layers(nc, mc, n_up))
        self.NL = NonLocalBlock2D_with_mask_Res(mc, mc, nl_res_blocks, attention_budget)
        self.after_NL = nn.Sequential(*(ResnetBlock(mc) for _ in range(n_blocks)),
                                      *reduction_layers(nc, mc, n_up))

    def forward(self, z: Tensor, mask: Tensor) -> Tensor:
        """z: B x nc x h x w latent; mask: B x 1 x H x W image-size scratch mask (1 = scratch)."""
        return self.after_NL(self.NL(self.before_NL(z), mask))
