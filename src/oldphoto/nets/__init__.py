"""The networks of "Bringing Old Photos Back to Life", one constructor per official checkpoint.

``build(name)`` returns the network of an official checkpoint (random weights, eval mode); load a
checkpoint into it with a strict ``load_state_dict``. The state-dict keys, order, shapes and
dtypes are exactly those of the official files (``MANIFEST_NAMES`` names the bundled manifest).

Forward signatures (tensors are float32 NCHW):

* ``detection``: ``net(gray)`` -> logits, 1x1xHxW (H, W multiples of 16);
* ``VAE_*``: ``net.encode(image)`` -> latent at 1/4 size, ``net.decode(latent)`` -> image;
* ``mapping_quality``: ``net(latent)``;
* ``mapping_scratch``, ``mapping_Patch_Attention``: ``net(latent, mask)`` with the image-size
  1x1xHxW scratch mask (1 = scratch);
* ``Setting_9_epoch_100`` (256 px), ``FaceSR_512`` (512 px): ``net(face)``.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .mapping_arch import Mapping_Model
from .nonlocal_arch import (Mapping_Model_with_mask, get_attention_budget,
                            set_attention_budget)
from .patch_attention_arch import Mapping_Model_with_mask_2
from .spade_arch import SPADEGenerator
from .unet_arch import UNet
from .vae_arch import GlobalGenerator_DCDCv2

__all__ = ["REGISTRY", "MANIFEST_NAMES", "build", "configure_torch", "set_attention_budget",
           "get_attention_budget"]

# One entry per official checkpoint file, with that checkpoint's inference options.
REGISTRY: dict[str, Callable[[], nn.Module]] = {
    "detection": lambda: UNet(in_channels=1, out_channels=1, depth=4, wf=6, conv_num=2),
    "VAE_A_quality": lambda: GlobalGenerator_DCDCv2(input_nc=3, output_nc=3, ngf=64, k_size=4,
                                                    n_downsampling=3),
    "VAE_B_quality": lambda: GlobalGenerator_DCDCv2(input_nc=3, output_nc=3, ngf=64, k_size=4,
                                                    n_downsampling=3),
    "VAE_B_scratch": lambda: GlobalGenerator_DCDCv2(input_nc=3, output_nc=3, ngf=64, k_size=4,
                                                    n_downsampling=3),
    "mapping_quality": lambda: Mapping_Model(nc=64, mc=512, n_blocks=6),
    "mapping_scratch": lambda: Mapping_Model_with_mask(nc=64, mc=512, n_blocks=6),
    "mapping_Patch_Attention": lambda: Mapping_Model_with_mask_2(nc=64, mc=512,
                                                                 patch_sizes=(8, 4, 2)),
    "Setting_9_epoch_100": lambda: SPADEGenerator(load_size=256, ngf=64),
    "FaceSR_512": lambda: SPADEGenerator(load_size=512, ngf=64),
}

# Registry name -> stem of the bundled manifest ``oldphoto/data/manifests/<stem>.json``.
MANIFEST_NAMES: dict[str, str] = {
    "detection": "detection_FT_Epoch_latest",
    "VAE_A_quality": "VAE_A_quality_latest_net_G",
    "VAE_B_quality": "VAE_B_quality_latest_net_G",
    "VAE_B_scratch": "VAE_B_scratch_latest_net_G",
    "mapping_quality": "mapping_quality_latest_net_mapping_net",
    "mapping_scratch": "mapping_scratch_latest_net_mapping_net",
    "mapping_Patch_Attention": "mapping_Patch_Attention_latest_net_mapping_net",
    "Setting_9_epoch_100": "Setting_9_epoch_100_latest_net_G",
    "FaceSR_512": "FaceSR_512_latest_net_G",
}


def configure_torch() -> None:
    """Full float32 precision on CUDA: no TF32 in matmuls or cuDNN convolutions.

    The HR patch attention takes hard argmax decisions with margins down to ~1e-4; TF32 could
    flip one and change the output by O(1). ``build`` calls this.
    """
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def build(name: str) -> nn.Module:
    """The network of official checkpoint ``name`` (see ``REGISTRY``), in eval mode, no gradients."""
    if name not in REGISTRY:
        raise KeyError(f"unknown network {name!r}; known: {sorted(REGISTRY)}")
    configure_torch()
    net = REGISTRY[name]()
    net.eval()
    net.requires_grad_(False)
    return net
