"""Stage 1, scratch detection: the glue of the official ``Global/detection.py`` around the U-Net.

Steps (docs/reference_facts.md#scratch-detection, run.py's ``--input_size full_size``):

1. :func:`detection_input` — the RGB photo is resized with PIL ``BICUBIC`` to sides rounded to
   multiples of 16 (:func:`detection_size`, only if that changes the size).  This ``rgb16`` image
   is what the scratch restoration uses afterwards.  It is converted to PIL ``"L"`` and normalised
   to a ``1×1×H×W`` [-1,1] tensor.
2. :func:`unet_input` — the grey tensor is bilinearly resized (``align_corners=False``, no
   antialias; applied even when the size is unchanged, where it is an identity) to
   :func:`network_size`: short side 256, long side rounded to a multiple of 16.  The U-Net always
   sees short side 256.
3. :func:`detect_scratches` — ``P = sigmoid(unet(x))``, resized back to ``H×W`` with torch's
   legacy ``nearest`` (source index ``floor(dst·in/out)``), thresholded at ``P ≥ 0.4``.

Deliberate difference (bug B1,
docs/reference_facts.md#b1-an-all-scratch-mask-is-saved-as-all-zeros): the official script saves
the mask through ``save_image(normalize=True)``, whose min/max stretch turns an *all-scratch* mask
into an all-zero one.  Here the mask is ``255·(P ≥ 0.4)`` directly; every other mask is identical
to the official file.  Files are still written the official way, as 3-channel RGB PNGs
(:func:`mask_to_rgb`) and read back through channel 0 (:func:`mask_from_file_array`).

Minimum size: both sides ≥ 9 px (a side of 8 px or less rounds to 0 on the /16 grid); smaller
photos raise :class:`oldphoto.errors.BadImageError` with ``path=None`` for the caller to fill in.

Memory, for a photo of ``N`` pixels at detection size: the uint8 ``rgb16`` (3N bytes), the grey
image (N) and its float32 tensor (4N), the full-size probability map after the nearest resize (4N)
and the boolean/uint8 mask (2N).  The U-Net itself runs at short side 256, so its activations grow
only with the aspect ratio, not with the photo's resolution.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from oldphoto.errors import BadImageError
from oldphoto.tensors import to_network

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

NETWORK_SHORT_SIDE = 256
"""Short side of the U-Net input, whatever the photo's size."""

SCRATCH_THRESHOLD = 0.4
"""A pixel is a scratch where the U-Net's sigmoid probability is ≥ this value."""

ScratchNet = Callable[["torch.Tensor"], "torch.Tensor"]
"""The detection U-Net: ``1×1×h×w`` [-1,1] grey in, ``1×1×h×w`` logits out."""


def detection_size(w: int, h: int) -> tuple[int, int]:
    """``(w, h)`` rounded to multiples of 16, halves to even: 372×524 → 368×528; 40×24 → 32×32.

    Raises:
        BadImageError: a side of 8 px or less (it would round to 0).
    """
    size = (int(round(w / 16) * 16), int(round(h / 16) * 16))
    if min(size) <= 0:
        raise BadImageError(None, f"image too small: {w}×{h} px; scratch detection needs both "
                                  "sides ≥ 9 px")
    return size


def network_size(h: int, w: int) -> tuple[int, int]:
    """``(height, width)`` of the U-Net input for an ``h×w`` (rows×columns) detection image.

    The short side becomes 256 and the other ``int(round((long/short·256)/16)·16)``; when
    ``h == w`` or ``h > w`` the width is the one set to 256.  528×368 (h×w) → 368×256.
    """
    if h < w:
        return NETWORK_SHORT_SIDE, int(round((w / h * NETWORK_SHORT_SIDE) / 16) * 16)
    return int(round((h / w * NETWORK_SHORT_SIDE) / 16) * 16), NETWORK_SHORT_SIDE


def detection_input(rgb: np.ndarray) -> tuple[np.ndarray, "torch.Tensor"]:
    """The detection-sized photo and its grey network tensor.

    Args:
        rgb: uint8 ``H×W×3`` photo.

    Returns:
        ``(rgb16, grey)``: ``rgb16`` uint8 ``h×w×3`` (the input array itself when already on the /16
        grid, otherwise PIL ``BICUBIC``-resized); ``grey`` float32 ``1×1×h×w`` in [-1,1], from PIL
        ``convert("L")`` (ITU-R 601 integer luma).

    Raises:
        BadImageError: the photo is too small (see :func:`detection_size`).
    """
    from PIL import Image

    height, width = rgb.shape[:2]
    target = detection_size(width, height)
    image = Image.fromarray(rgb, "RGB")
    if target != (width, height):
        image = image.resize(target, Image.BICUBIC)
        rgb = np.asarray(image)
    grey = np.asarray(image.convert("L"))
    return rgb, to_network(grey)


def unet_input(grey: "torch.Tensor") -> "torch.Tensor":
    """The grey tensor bilinearly resized to :func:`network_size` (``align_corners=False``)."""
    import torch.nn.functional as F

    size = network_size(grey.shape[2], grey.shape[3])
    return F.interpolate(grey, size=list(size), mode="bilinear", align_corners=False)


def scratch_probability(rgb: np.ndarray, unet: ScratchNet,
                        device: Any = "cpu") -> tuple[np.ndarray, "torch.Tensor"]:
    """``(rgb16, P)``, ``P = sigmoid(unet(x))`` at network resolution (float32 CPU ``1×1×h×w``)."""
    import torch

    rgb16, grey = detection_input(rgb)
    x = unet_input(grey)
    with torch.inference_mode():
        probability = torch.sigmoid(unet(x.to(device))).detach().to("cpu", torch.float32)
    return rgb16, probability


def probability_to_mask(probability: "torch.Tensor", height: int, width: int,
                        threshold: float = SCRATCH_THRESHOLD) -> np.ndarray:
    """Legacy-nearest resize of ``P`` to ``height×width``, then ``255·(P ≥ threshold)`` as uint8."""
    import torch.nn.functional as F

    full = F.interpolate(probability, size=[height, width], mode="nearest")
    return (full[0, 0] >= threshold).numpy().astype(np.uint8) * np.uint8(255)


def detect_scratches(rgb: np.ndarray, unet: ScratchNet, device: Any = "cpu",
                     threshold: float = SCRATCH_THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """Scratch mask of a photo, as the official detection computes it (with the B1 fix).

    Args:
        rgb: uint8 ``H×W×3`` photo.
        unet: the detection U-Net (logits out, no final activation), on ``device``.
        device: where the U-Net runs; the resizes run on the CPU as in the official script.
        threshold: probability threshold (official 0.4).

    Returns:
        ``(rgb16, mask)``: the photo on the /16 grid (input of the scratch restoration; written to
        the official ``masks/input/``) and the uint8 ``h×w`` mask, 255 = scratch.

    Raises:
        BadImageError: the photo is too small (see :func:`detection_size`).
    """
    rgb16, probability = scratch_probability(rgb, unet, device)
    return rgb16, probability_to_mask(probability, rgb16.shape[0], rgb16.shape[1], threshold)


def mask_to_rgb(mask: np.ndarray) -> np.ndarray:
    """The mask as the official mask file stores it: 0/255 copied into RGB (``H×W×3``).

    Any non-zero value counts as scratch (our fix: an all-scratch mask stays all 255).
    """
    binary = np.where(mask > 0, np.uint8(255), np.uint8(0))
    return np.repeat(binary[:, :, None], 3, axis=2)


def mask_from_file_array(array: np.ndarray) -> np.ndarray:
    """A mask read from a file (``H×W`` or ``H×W×C``): channel 0 > 0 → 255, else 0.

    Channel 0 is the one the official restoration feeds to the network.
    """
    channel = array if array.ndim == 2 else array[:, :, 0]
    return np.where(channel > 0, np.uint8(255), np.uint8(0))


def read_mask(path: str) -> np.ndarray:
    """A mask file (1 or 3 channels) -> uint8 ``H×W`` {0, 255} (:func:`mask_from_file_array`)."""
    from PIL import Image

    with Image.open(path) as im:
        return mask_from_file_array(np.asarray(im.convert("RGB")))
