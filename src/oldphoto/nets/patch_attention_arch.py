"""HR scratch mapping ``Mapping_Model_with_mask_2`` (``mapping_Patch_Attention``).

Multi-scale patch attention for large photos: at patch sizes 8, 4 and 2 (latent pixels), every
scratched patch is replaced by a copy of its most similar clean patch, and a 3x3 conv fuses the
result with the input. This is the official inference variant (``inference_forward``), not the
training-time soft attention.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .arch_util import ResnetBlock
from .mapping_arch import expansion_layers, reduction_layers

MASKED_FRACTION = 0.6  # a patch is "masked" when more than this fraction of it is scratched


def binary_feature_mask(mask: Tensor, size: tuple[int, int]) -> Tensor:
    """1 where the bilinear resize of the image-size scratch mask to ``size`` is > 0, else 0.

    For a 4x reduction, feature pixel (i, j) is 1 exactly when an image pixel in rows 4i+1..4i+2
    and columns 4j+1..4j+2 is scratched (no nearest term here, unlike the non-local block).
    """
    resized = F.interpolate(mask, size=size, mode="bilinear", align_corners=False)
    return (resized > 0).to(mask.dtype)


def masked_patch_grid(m: Tensor, patch_size: int) -> Tensor:
    """B x L booleans: which patches of the row-major floor(h/p) x floor(w/p) grid are masked.

    Args:
        m (Tensor): B x 1 x h x w binary scratch mask at feature size.
        patch_size (int): p.
    """
    if m.shape[2] < patch_size or m.shape[3] < patch_size:
        return m.new_zeros(m.shape[0], 0, dtype=torch.bool)
    return F.unfold(m, patch_size, stride=patch_size).mean(1) > MASKED_FRACTION


def masked_patch_counts(mask: Tensor, latent_size: tuple[int, int],
                        patch_sizes: tuple[int, ...]) -> list[Tensor]:
    """Per patch size, B counts: how many patches each scale of the mapping will find masked.

    The computation :class:`Patch_Attention_4` makes in ``forward`` before composing patches
    (``binary_feature_mask`` of the image-size mask at the latent size, then
    ``masked_patch_grid``), without running the network; the memory planner uses it to size the
    (masked x clean) similarity matrices.

    Args:
        mask (Tensor): B x 1 x H x W image-size scratch mask (1 = scratch).
        latent_size (tuple[int, int]): (h, w) of the latent the mapping runs on.
        patch_sizes (tuple[int, ...]): the scales' patch sizes, in order.
    """
    m = binary_feature_mask(mask, latent_size)
    return [masked_patch_grid(m, p).sum(1) for p in patch_sizes]


def compose_patches(x: Tensor, m: Tensor, patch_size: int) -> Tensor:
    """Replace each masked p x p patch of ``x`` by the clean patch with the highest cosine similarity.

    Args:
        x (Tensor): B x C x h x w features.
        m (Tensor): B x 1 x h x w binary scratch mask at feature size.
        patch_size (int): p; patches are non-overlapping, on a floor(h/p) x floor(w/p) grid.

    Returns:
        Tensor: B x C x h x w. ``x`` itself where no patch is masked.

    Where every patch of an image is masked there is nothing to copy from: the official code
    crashes there (``max(): Expected reduction dim 2 to have non-zero size``) and drops the photo.
    We keep ``x`` for that image at this scale instead (the attention becomes a no-op; the other
    scales and F_Combine still run) and warn.
    """
    height, width = x.shape[2:]
    masked = masked_patch_grid(m, patch_size)
    if not masked.any():
        return x
    patches = F.unfold(x, patch_size, stride=patch_size)  # B x C*p*p x L, channel-major vectors
    composed = []
    for image, image_patches, image_masked in zip(x, patches, masked):
        if not image_masked.any():
            composed.append(image)
            continue
        if image_masked.all():
            warnings.warn(
                f"patch attention: all {image_masked.numel()} patches of {patch_size}x{patch_size} "
                f"latent pixels of the {height}x{width} latent are scratched; nothing to copy "
                "from, features kept at this scale", RuntimeWarning, stacklevel=2)
            composed.append(image)
            continue
        masked_idx = image_masked.nonzero()[:, 0]
        clean_idx = (~image_masked).nonzero()[:, 0]
        unit = F.normalize(image_patches, dim=0)
        similarity = unit[:, masked_idx].t() @ unit[:, clean_idx]
        best = F.softmax(similarity, dim=1).argmax(dim=1)  # a hard copy of the best match
        image_patches = image_patches.clone()
        image_patches[:, masked_idx] = image_patches[:, clean_idx[best]]
        # Folding back leaves the rows/columns outside the grid (h mod p, w mod p) at ZERO, not
        # at x: the official inference does this whenever a patch is masked (~1.8 on the output).
        composed.append(F.fold(image_patches, (height, width), patch_size, stride=patch_size))
    return torch.stack(composed)


class Patch_Attention_4(nn.Module):
    """One scale of patch attention (inference variant).

    x = ResnetBlock(z); m = binarised bilinear resize of the image-size mask; composed =
    ``compose_patches(x, m, patch_size)``; out = F_Combine(concat[z, composed, m]) with a 3x3 conv
    (no norm, no activation, no residual).

    Args:
        in_channels (int): Feature channels. Default: 512.
        patch_size (int): Patch side in feature pixels. Default: 4.
    """

    def __init__(self, in_channels: int = 512, patch_size: int = 4) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.F_Combine = nn.Conv2d(2 * in_channels + 1, in_channels, 3, padding=1)
        self.res_block = nn.Sequential(ResnetBlock(in_channels))

    def forward(self, z: Tensor, mask: Tensor) -> Tensor:
        """z: B x C x h x w; mask: B x 1 x H x W image-size scratch mask (1 = scratch)."""
        x = self.res_block(z)
        m = binary_feature_mask(mask, z.shape[2:])
        composed = compose_patches(x, m, self.patch_size)
        return self.F_Combine(torch.cat([z, composed, m], 1))


class Mapping_Model_with_mask_2(nn.Module):
    """Latent mapping of the HR scratch restoration (``restoration/mapping_Patch_Attention``).

    ``before_NL`` (expansion convs ``.0, 3, 6, 9`` and two ResnetBlocks ``.12, .13``), then
    ``NL_scale_1`` (p = 8), ``res_block_1``, ``NL_scale_2`` (p = 4), ``res_block_2``,
    ``NL_scale_3`` (p = 2), and ``after_NL`` (two ResnetBlocks, reduction convs ``.2, 5, 8, 11``).

    Args:
        nc (int): Latent channels in and out. Default: 64.
        mc (int): Width of the trunk. Default: 512.
        n_up (int): Conv layers widening (and narrowing) the channels. Default: 4.
        n_res_blocks (int): ResnetBlocks in each residual stage. Default: 2.
        patch_sizes (tuple[int, int, int]): Patch sizes of the three scales. Default: (8, 4, 2).
    """

    def __init__(self, nc: int = 64, mc: int = 512, n_up: int = 4, n_res_blocks: int = 2,
                 patch_sizes: tuple[int, int, int] = (8, 4, 2)) -> None:
        super().__init__()

        def res_stage() -> list[nn.Module]:
            return [ResnetBlock(mc) for _ in range(n_res_blocks)]

        self.before_NL = nn.Sequential(*expansion_layers(nc, mc, n_up), *res_stage())
        self.NL_scale_1 = Patch_Attention_4(mc, patch_sizes[0])
        self.res_block_1 = nn.Sequential(*res_stage())
        self.NL_scale_2 = Patch_Attention_4(mc, patch_sizes[1])
        self.res_block_2 = nn.Sequential(*res_stage())
        self.NL_scale_3 = Patch_Attention_4(mc, patch_sizes[2])
        self.after_NL = nn.Sequential(*res_stage(), *reduction_layers(nc, mc, n_up))

    def forward(self, z: Tensor, mask: Tensor) -> Tensor:
        """z: B x nc x h x w latent; mask: B x 1 x H x W image-size (dilated) scratch mask."""
        x = self.before_NL(z)
        x = self.res_block_1(self.NL_scale_1(x, mask))
        x = self.res_block_2(self.NL_scale_2(x, mask))
        return self.after_NL(self.NL_scale_3(x, mask))
