"""Blocks shared by the Global-stage networks (VAE, quality mapping, scratch and HR mappings)."""

from __future__ import annotations

from torch import Tensor, nn


class ResnetBlock(nn.Module):
    """Residual block of the Global stage: x + (RPad-Conv3x3-IN-ReLU-RPad-Conv3x3-IN)(x).

    Reflection padding, parameter-free instance norm, and no activation after the sum. Used by the
    VAE encoder/decoder and by every mapping network (``conv_block.1`` / ``conv_block.5`` keys).

    Args:
        num_feat (int): Channel number. Default: 64.
    """

    def __init__(self, num_feat: int = 64) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(num_feat, num_feat, 3),
            nn.InstanceNorm2d(num_feat),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(num_feat, num_feat, 3),
            nn.InstanceNorm2d(num_feat),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv_block(x)
