"""Scratch-detection U-Net of "Bringing Old Photos Back to Life" (``detection/FT_Epoch_latest.pt``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class BlurDownsample(nn.Module):
    """Anti-aliased stride-2 down-sampling (Zhang 2019): reflect pad 1, fixed 3x3 binomial blur.

    The filter ``[1,2,1]^T [1,2,1] / 16`` is a persistent buffer ``filt`` of shape (C, 1, 3, 3),
    because the official checkpoint stores it and its strict load requires it.

    Args:
        channels (int): Channel number (the blur is depthwise).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        taps = torch.tensor([1.0, 2.0, 1.0])
        kernel = torch.outer(taps, taps) / 16.0
        self.register_buffer("filt", kernel.expand(channels, 1, 3, 3).clone())

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), self.filt, stride=2,
                        groups=x.shape[1])


def _conv_bn_lrelu(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [
        nn.ReflectionPad2d(1),
        nn.Conv2d(in_channels, out_channels, 3),
        nn.BatchNorm2d(out_channels),
        nn.LeakyReLU(0.2, inplace=True),
    ]


class UNetConvBlock(nn.Module):
    """``conv_num`` times {reflect pad 1, Conv3x3, BatchNorm, LeakyReLU(0.2)} (keys ``block.1, .2, .5, .6``).

    Args:
        in_channels (int): Input channel number.
        out_channels (int): Output channel number (all convs after the first keep it).
        conv_num (int): Number of conv layers. Default: 2.
    """

    def __init__(self, in_channels: int, out_channels: int, conv_num: int = 2) -> None:
        super().__init__()
        layers = _conv_bn_lrelu(in_channels, out_channels)
        for _ in range(conv_num - 1):
            layers += _conv_bn_lrelu(out_channels, out_channels)
        self.block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x)


class UNetUpBlock(nn.Module):
    """Bilinear x2 up-sampling and conv, concatenation with the skip, then a UNetConvBlock.

    Args:
        in_channels (int): Input channel number (twice ``out_channels``).
        out_channels (int): Output channel number; the skip has this many channels too.
        conv_num (int): Conv layers of the conv block. Default: 2.
    """

    def __init__(self, in_channels: int, out_channels: int, conv_num: int = 2) -> None:
        super().__init__()
        self.up = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.ReflectionPad2d(1),
            nn.Conv2d(in_channels, out_channels, 3),
        )
        self.conv_block = UNetConvBlock(in_channels, out_channels, conv_num)

    @staticmethod
    def center_crop(skip: Tensor, size: torch.Size) -> Tensor:
        top = (skip.shape[2] - size[0]) // 2
        left = (skip.shape[3] - size[1]) // 2
        return skip[:, :, top:top + size[0], left:left + size[1]]

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        up = self.up(x)
        return self.conv_block(torch.cat([up, self.center_crop(skip, up.shape[2:])], 1))


class UNet(nn.Module):
    """Scratch-detection U-Net with anti-aliased down-sampling and batch norm.

    Matches ``Global/checkpoints/detection/FT_Epoch_latest.pt`` (official options: depth 4,
    wf 6, conv_num 2, padding, batch_norm, up_mode "upsample", antialiasing, no tanh). Input is a
    1x1xHxW grayscale image in [-1, 1] with H, W multiples of 2**depth; the output is a 1-channel
    logit map of the same size (apply a sigmoid for scratch probabilities). Batch norms use their
    running statistics, so the network must be in eval mode.

    Args:
        in_channels (int): Input channel number. Default: 1.
        out_channels (int): Output channel number. Default: 1.
        depth (int): Number of down-sampling levels. Default: 4.
        wf (int): log2 of the channel number of the first level (64). Default: 6.
        conv_num (int): Conv layers per UNetConvBlock. Default: 2.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, depth: int = 4, wf: int = 6,
                 conv_num: int = 2) -> None:
        super().__init__()
        widths = [2 ** (wf + level) for level in range(depth + 1)]  # 64, 128, ..., 1024
        self.first = nn.Sequential(
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, widths[0], 7),
            nn.LeakyReLU(0.2, inplace=True),
        )
        self.down_path = nn.ModuleList(
            UNetConvBlock(widths[level], widths[level + 1], conv_num) for level in range(depth))
        self.down_sample = nn.ModuleList(
            nn.Sequential(*_conv_bn_lrelu(widths[level], widths[level]), BlurDownsample(widths[level]))
            for level in range(depth))
        self.up_path = nn.ModuleList(
            UNetUpBlock(widths[level + 1], widths[level], conv_num) for level in reversed(range(depth)))
        self.last = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(widths[0], out_channels, 3))

    def forward(self, x: Tensor) -> Tensor:
        x = self.first(x)
        skips = []
        for down_sample, down_path in zip(self.down_sample, self.down_path):
            skips.append(x)
            x = down_path(down_sample(x))
        for up, skip in zip(self.up_path, reversed(skips)):
            x = up(x, skip)
        return self.last(x)
