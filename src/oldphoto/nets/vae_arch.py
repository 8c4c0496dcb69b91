"""VAE generator ``GlobalGenerator_DCDCv2`` of "Bringing Old Photos Back to Life".

One class serves the three checkpoints ``VAE_A_quality``, ``VAE_B_quality`` and ``VAE_B_scratch``:
each file holds a whole generator, but inference uses VAE_A's encoder (old photo -> latent) and
a VAE_B decoder (latent -> clean photo).
"""

from __future__ import annotations

from torch import Tensor, nn

from .arch_util import ResnetBlock


class GlobalGenerator_DCDCv2(nn.Module):
    """Convolutional VAE generator with a 1/4-resolution latent (the "DCDC v2" of the paper's code).

    Encoder (``encoder.*``): reflect pad 3, Conv7x7, IN, ReLU; ``n_downsampling - 1`` times
    {Conv4x4 stride 2 zero pad 1, IN, ReLU}; ``n_res_blocks`` ResnetBlocks. Decoder (``decoder.*``):
    ``n_res_blocks`` ResnetBlocks; ``n_downsampling - 1`` times {ConvTranspose4x4 stride 2 pad 1,
    IN, ReLU}; reflect pad 3, Conv7x7, tanh. Every feature map has ``ngf`` channels (the official
    ``mc`` = ``ngf`` = 64). Inputs must have H, W multiples of 4 (odd latent sizes are fine).

    Args:
        input_nc (int): Image channels in. Default: 3.
        output_nc (int): Image channels out. Default: 3.
        ngf (int): Feature channels (official ``ngf`` = ``mc`` = 64). Default: 64.
        k_size (int): Kernel size of the strided (transposed) convs. Default: 4.
        n_downsampling (int): Official option; the encoder applies ``n_downsampling - 1`` stride-2
            convs (the latent is at 1/4 resolution with the default 3). Default: 3.
        n_res_blocks (int): ResnetBlocks at the end of the encoder and start of the decoder
            (official ``spatio_size`` 64 with ``start_r`` 1). Default: 4.
    """

    def __init__(self, input_nc: int = 3, output_nc: int = 3, ngf: int = 64, k_size: int = 4,
                 n_downsampling: int = 3, n_res_blocks: int = 4) -> None:
        super().__init__()
        encoder: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(input_nc, ngf, 7),
            nn.InstanceNorm2d(ngf),
            nn.ReLU(inplace=True),
        ]
        for _ in range(n_downsampling - 1):
            encoder += [nn.Conv2d(ngf, ngf, k_size, stride=2, padding=1), nn.InstanceNorm2d(ngf),
                        nn.ReLU(inplace=True)]
        encoder += [ResnetBlock(ngf) for _ in range(n_res_blocks)]
        self.encoder = nn.Sequential(*encoder)

        decoder: list[nn.Module] = [ResnetBlock(ngf) for _ in range(n_res_blocks)]
        for _ in range(n_downsampling - 1):
            decoder += [nn.ConvTranspose2d(ngf, ngf, k_size, stride=2, padding=1),
                        nn.InstanceNorm2d(ngf), nn.ReLU(inplace=True)]
        decoder += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
        self.decoder = nn.Sequential(*decoder)

    def encode(self, x: Tensor) -> Tensor:
        """Image (N x input_nc x H x W, [-1, 1]) -> latent (N x ngf x H/4 x W/4)."""
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        """Latent (N x ngf x h x w) -> image (N x output_nc x 4h x 4w, [-1, 1])."""
        return self.decoder(z)

    def forward(self, x: Tensor) -> Tensor:
        """Auto-encode: ``decode(encode(x))`` (the restoration uses the halves of two networks)."""
        return self.decode(self.encode(x))
