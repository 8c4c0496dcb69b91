"""The networks of "Bringing Old Photos Back to Life", one constructor per official checkpoint.

``build(name)`` returns the network of an official checkpoint (random weights, eval mode); load a
checkpoint into it with a strict ``load_state_dict``. Which class and options each checkpoint
uses is the table ``oldphoto.checkpoints.files.OFFICIAL_CHECKPOINTS``. The state-dict keys, order,
shapes and dtypes are exactly those of the official files (``MANIFEST_NAMES`` names the bundled
manifest).

Forward signatures (tensors are float32 NCHW):

* ``detection``: ``net(gray)`` -> logits, 1x1xHxW (H, W multiples of 16);
* ``VAE_*``: ``net.encode(image)`` -> latent at 1/4 size, ``net.decode(latent)`` -> image;
* ``mapping_quality``: ``net(latent)``;
* ``mapping_scratch``, ``mapping_Patch_Attention``: ``net(latent, mask)`` with the image-size
  1x1xHxW scratch mask (1 = scratch);
* ``Setting_9_epoch_100`` (256 px), ``FaceSR_512`` (512 px): ``net(face)``.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import torch
from torch import nn

from oldphoto.checkpoints.files import OFFICIAL_CHECKPOINTS

from .mapping_arch import Mapping_Model
from .nonlocal_arch import (Mapping_Model_with_mask, get_attention_budget,
                            set_attention_budget)
from .patch_attention_arch import Mapping_Model_with_mask_2
from .spade_arch import SPADEGenerator
from .unet_arch import UNet
from .vae_arch import GlobalGenerator_DCDCv2

__all__ = ["REGISTRY", "MANIFEST_NAMES", "build", "configure_torch", "set_attention_budget",
           "get_attention_budget"]

_ARCHITECTURES: dict[str, type[nn.Module]] = {
    cls.__name__: cls
    for cls in (UNet, GlobalGenerator_DCDCv2, Mapping_Model, Mapping_Model_with_mask,
                Mapping_Model_with_mask_2, SPADEGenerator)
}

# One entry per official checkpoint file, with that checkpoint's inference options: the table
# ``oldphoto.checkpoints.files.OFFICIAL_CHECKPOINTS`` (class name and keyword arguments).
REGISTRY: dict[str, Callable[[], nn.Module]] = {
    name: partial(_ARCHITECTURES[checkpoint.arch], **checkpoint.options)
    for name, checkpoint in OFFICIAL_CHECKPOINTS.items()
}

# Registry name -> stem of the bundled manifest ``oldphoto/data/manifests/<stem>.json``.
MANIFEST_NAMES: dict[str, str] = {
    name: checkpoint.manifest for name, checkpoint in OFFICIAL_CHECKPOINTS.items()
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
