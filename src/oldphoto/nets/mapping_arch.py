"""Quality mapping ``Mapping_Model`` (``mapping_quality``): old-photo latent -> clean latent.

Also home of the channel expansion/reduction stacks that the scratch and HR mappings share.
"""

from __future__ import annotations

from torch import Tensor, nn

from .arch_util import ResnetBlock


def _widths(nc: int, mc: int, n_up: int) -> list[int]:
    return [min(nc * 2 ** level, mc) for level in range(n_up + 1)]  # 64, 128, 256, 512, 512


def expansion_layers(nc: int = 64, mc: int = 512, n_up: int = 4) -> list[nn.Module]:
    """``n_up`` times {Conv3x3 zero pad 1, IN, ReLU}, widening ``nc`` -> ``mc`` (12 layers)."""
    widths = _widths(nc, mc, n_up)
    layers: list[nn.Module] = []
    for c_in, c_out in zip(widths[:-1], widths[1:]):
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.InstanceNorm2d(c_out), nn.ReLU(inplace=True)]
    return layers


def reduction_layers(nc: int = 64, mc: int = 512, n_up: int = 4) -> list[nn.Module]:
    """The mirror of ``expansion_layers`` (``mc`` -> ``nc``); the last conv is linear (10 layers)."""
    widths = _widths(nc, mc, n_up)[::-1]
    layers: list[nn.Module] = []
    for c_in, c_out in zip(widths[:-2], widths[1:-1]):
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.InstanceNorm2d(c_out), nn.ReLU(inplace=True)]
    layers.append(nn.Conv2d(widths[-2], widths[-1], 3, padding=1))
    return layers


class Mapping_Model(nn.Module):
    """Latent mapping of the quality restoration (``restoration/mapping_quality``).

    ``model`` = expansion convs (``model.0, 3, 6, 9``), ``n_blocks`` ResnetBlocks(``mc``)
    (``model.12``...), reduction convs (``model.18, 21, 24, 27``). Size-preserving.

    Args:
        nc (int): Latent channels in and out. Default: 64.
        mc (int): Width of the residual trunk. Default: 512.
        n_blocks (int): ResnetBlocks in the trunk. Default: 6.
        n_up (int): Conv layers widening (and narrowing) the channels. Default: 4.
    """

    def __init__(self, nc: int = 64, mc: int = 512, n_blocks: int = 6, n_up: int = 4) -> None:
        super().__init__()
        self.model = nn.Sequential(
            *expansion_layers(nc, mc, n_up),
            *(ResnetBlock(mc) for _ in range(n_blocks)),
            *reduction_layers(nc, mc, n_up),
        )

    def forward(self, z: Tensor) -> Tensor:
        return self.model(z)
