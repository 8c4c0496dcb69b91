"""The networks of "Bringing Old Photos Back to Life", one BasicSR-style ``*_arch.py`` per family.

The architecture code knows no checkpoint and no loader: which class and options each official
checkpoint uses is the table ``oldphoto.checkpoints.files.OFFICIAL_CHECKPOINTS``, and
``oldphoto.checkpoints.build_network(name)`` builds the network of one (random weights, eval
mode) for a strict ``load_state_dict``. The state-dict keys, order, shapes and dtypes are exactly
those of the official files.

Forward signatures (tensors are float32 NCHW):

* :class:`UNet` (``detection``): ``net(gray)`` -> logits, 1x1xHxW (H, W multiples of 16);
* :class:`GlobalGenerator_DCDCv2` (``VAE_*``): ``net.encode(image)`` -> latent at 1/4 size,
  ``net.decode(latent)`` -> image;
* :class:`Mapping_Model` (``mapping_quality``): ``net(latent)``;
* :class:`Mapping_Model_with_mask` (``mapping_scratch``), :class:`Mapping_Model_with_mask_2`
  (``mapping_Patch_Attention``): ``net(latent, mask)`` with the image-size 1x1xHxW scratch mask
  (1 = scratch);
* :class:`SPADEGenerator` (``Setting_9_epoch_100``, 256 px; ``FaceSR_512``, 512 px): ``net(face)``.
"""

from __future__ import annotations

import torch

from .mapping_arch import Mapping_Model
from .nonlocal_arch import (Mapping_Model_with_mask, get_attention_budget,
                            set_attention_budget)
from .patch_attention_arch import Mapping_Model_with_mask_2
from .spade_arch import SPADEGenerator
from .unet_arch import UNet
from .vae_arch import GlobalGenerator_DCDCv2

__all__ = ["UNet", "GlobalGenerator_DCDCv2", "Mapping_Model", "Mapping_Model_with_mask",
           "Mapping_Model_with_mask_2", "SPADEGenerator", "configure_torch",
           "set_attention_budget", "get_attention_budget"]


def configure_torch() -> None:
    """Full float32 precision on CUDA: no TF32 in matmuls or cuDNN convolutions.

    The HR patch attention takes hard argmax decisions with margins down to ~1e-4; TF32 could
    flip one and change the output by O(1). ``oldphoto.checkpoints.build_network`` calls this.
    """
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
