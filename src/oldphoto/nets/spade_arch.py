"""SPADE face-enhancement generator (``Setting_9_epoch_100`` at 256 px, ``FaceSR_512`` at 512 px).

The generator of the paper's face-refinement network: a SPADE decoder whose modulation maps come
from the degraded face itself (no parsing map), injected at every normalisation layer. Options
are the official inference ones: ``norm_G = "spectralspadesyncbatch3x3"`` (spectral norm on the
residual convs, parameter-free batch norm with running statistics, 3x3 SPADE convs),
``num_upsampling_layers = "normal"``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class SpectralNormConv2d(nn.Module):
    """Conv2d whose weight is ``weight_orig / sigma``, sigma = u . (W v) from the stored u and v.

    Inference semantics of torch's ``spectral_norm`` in eval mode: no power iteration (one
    iteration changes the official face output by ~0.03). The state dict is exactly ``bias``,
    ``weight_orig``, ``weight_u``, ``weight_v`` in that order (``bias`` absent when disabled).

    Args:
        in_channels (int): Input channel number.
        out_channels (int): Output channel number.
        kernel_size (int): Square kernel size.
        padding (int): Zero padding. Default: 0.
        bias (bool): Whether to add a bias. Default: True.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0,
                 bias: bool = True) -> None:
        super().__init__()
        self.padding = padding
        fan_in = in_channels * kernel_size * kernel_size
        bound = 1 / math.sqrt(fan_in)
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels).uniform_(-bound, bound))
        else:
            self.register_parameter("bias", None)
        self.weight_orig = nn.Parameter(
            torch.empty(out_channels, in_channels, kernel_size, kernel_size).uniform_(-bound, bound))
        self.register_buffer("weight_u", F.normalize(torch.randn(out_channels), dim=0))
        self.register_buffer("weight_v", F.normalize(torch.randn(fan_in), dim=0))

    def weight(self) -> Tensor:
        """The spectrally normalised weight."""
        weight_mat = self.weight_orig.reshape(self.weight_orig.shape[0], -1)
        sigma = torch.dot(self.weight_u, torch.mv(weight_mat, self.weight_v))
        return self.weight_orig / sigma

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight(), self.bias, padding=self.padding)


class SPADE(nn.Module):
    """Spatially-adaptive normalisation driven by the degraded image.

    out = BN(x) * (1 + gamma(d)) + beta(d), where BN is parameter-free batch norm with running
    statistics and d is the degraded image bilinearly resized to x's size.

    Args:
        norm_nc (int): Channels of the normalised features.
        label_nc (int): Channels of the modulating image. Default: 3.
        nhidden (int): Hidden channels of the modulation convs. Default: 128.
        kernel_size (int): Kernel size of the modulation convs. Default: 3.
    """

    def __init__(self, norm_nc: int, label_nc: int = 3, nhidden: int = 128,
                 kernel_size: int = 3) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.param_free_norm = nn.BatchNorm2d(norm_nc, affine=False)
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, nhidden, kernel_size, padding=pad),
                                        nn.ReLU())
        self.mlp_gamma = nn.Conv2d(nhidden, norm_nc, kernel_size, padding=pad)
        self.mlp_beta = nn.Conv2d(nhidden, norm_nc, kernel_size, padding=pad)

    def forward(self, x: Tensor, degraded: Tensor) -> Tensor:
        # Running statistics always (batch statistics change the official output by ~2).
        norm = self.param_free_norm
        normalized = F.batch_norm(x, norm.running_mean, norm.running_var, training=False,
                                  eps=norm.eps)
        # Plain bilinear, no antialiasing: an antialiased resize changes the output by ~0.8.
        d = F.interpolate(degraded, size=x.shape[2:], mode="bilinear", align_corners=False)
        actv = self.mlp_shared(d)
        return normalized * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


class SPADEResnetBlock(nn.Module):
    """SPADE residual block with spectral-normed convs; learned 1x1 shortcut when fin != fout.

    Args:
        fin (int): Input channel number.
        fout (int): Output channel number.
        label_nc (int): Channels of the modulating image. Default: 3.
    """

    def __init__(self, fin: int, fout: int, label_nc: int = 3) -> None:
        super().__init__()
        self.learned_shortcut = fin != fout
        fmiddle = min(fin, fout)
        self.conv_0 = SpectralNormConv2d(fin, fmiddle, 3, padding=1)
        self.conv_1 = SpectralNormConv2d(fmiddle, fout, 3, padding=1)
        if self.learned_shortcut:
            self.conv_s = SpectralNormConv2d(fin, fout, 1, bias=False)
        self.norm_0 = SPADE(fin, label_nc)
        self.norm_1 = SPADE(fmiddle, label_nc)
        if self.learned_shortcut:
            self.norm_s = SPADE(fin, label_nc)

    def forward(self, x: Tensor, degraded: Tensor) -> Tensor:
        x_s = self.conv_s(self.norm_s(x, degraded)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, degraded), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, degraded), 0.2))
        return x_s + dx


class SPADEGenerator(nn.Module):
    """SPADE face generator with degraded-face injection (no parsing map, no VAE).

    x = fc(bilinear(D -> s x s)), s = load_size / 32; head_0; x2; G_middle_0, G_middle_1; then
    {x2, up_k} for k = 0..3; LeakyReLU(0.2), conv_img, tanh. Every SPADE layer is modulated by
    the degraded face D resized to its resolution. Input and output: 1x3xSxS in [-1, 1],
    S = ``load_size``.

    Args:
        load_size (int): Face size S the generator was trained for (256 or 512); sets the start
            grid s = S / 32. Default: 256.
        ngf (int): Channels of the last block (the first blocks have 16 * ngf). Default: 64.
        input_nc (int): Channels of the degraded face. Default: 3.
        output_nc (int): Channels of the output face. Default: 3.
    """

    num_upsampling = 5  # "normal": head_0, then five x2 steps

    def __init__(self, load_size: int = 256, ngf: int = 64, input_nc: int = 3,
                 output_nc: int = 3) -> None:
        super().__init__()
        nf = ngf
        self.start_size = load_size // 2 ** self.num_upsampling
        self.fc = nn.Conv2d(input_nc, 16 * nf, 3, padding=1)
        self.head_0 = SPADEResnetBlock(16 * nf, 16 * nf, input_nc)
        self.G_middle_0 = SPADEResnetBlock(16 * nf, 16 * nf, input_nc)
        self.G_middle_1 = SPADEResnetBlock(16 * nf, 16 * nf, input_nc)
        self.up_0 = SPADEResnetBlock(16 * nf, 8 * nf, input_nc)
        self.up_1 = SPADEResnetBlock(8 * nf, 4 * nf, input_nc)
        self.up_2 = SPADEResnetBlock(4 * nf, 2 * nf, input_nc)
        self.up_3 = SPADEResnetBlock(2 * nf, 1 * nf, input_nc)
        self.conv_img = nn.Conv2d(nf, output_nc, 3, padding=1)

    @staticmethod
    def up(x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=2, mode="nearest")

    def forward(self, x: Tensor) -> Tensor:
        """x: degraded face, N x 3 x S x S in [-1, 1] -> enhanced face, same shape."""
        degraded = x
        size = (self.start_size, self.start_size)
        x = self.fc(F.interpolate(degraded, size=size, mode="bilinear", align_corners=False))
        x = self.head_0(x, degraded)
        x = self.up(x)
        x = self.G_middle_0(x, degraded)
        x = self.G_middle_1(x, degraded)
        for block in (self.up_0, self.up_1, self.up_2, self.up_3):
            x = block(self.up(x), degraded)
        x = self.conv_img(F.leaky_relu(x, 0.2))
        return torch.tanh(x)
