"""Image ⇄ tensor conversions of the official code, without torchvision.

The official scripts convert images with torchvision's ``ToTensor`` + ``Normalize(0.5, 0.5)`` and
write tensors with ``torchvision.utils.save_image``.  torchvision cannot be imported next to the CPU
build of torch, so the few operations used are re-implemented here, op for op in float32 torch, so
that results are bit-exact with the official outputs
(docs/reference_facts.md#torchvision-conversions):

* :func:`to_tensor` — ``ToTensor``: ``uint8 / 255`` in float32, laid out ``1×C×H×W``;
* :func:`normalise` — ``Normalize([0.5], [0.5])``: ``(x − 0.5) / 0.5``, range [-1, 1];
* :func:`save_image_array` — ``save_image(t, padding=0, normalize=…)`` to a uint8 ``H×W×3`` array;
* :func:`official_stretch` — how stage 1 writes ``input_image/`` and ``restored_image/``:
  ``save_image((t + 1) / 2, normalize=True)``, a min/max stretch over the whole tensor (bug B2,
  docs/reference_facts.md#b2-stage-1-outputs-are-min-max-stretched, reproduced on purpose because
  the face stages consume it);
* :func:`clamp_to_uint8` — ``save_image((t + 1) / 2)`` without normalize: the clamp alternative for
  stage 1, and exactly the rule stage 3 uses to write enhanced faces.

All functions take and return CPU or device tensors as given, except the ``*_uint8``/``save``
functions, which move the tensor to the CPU **before** any arithmetic: CUDA divides by a scalar
through a reciprocal multiply, which can move a pixel by one level, and the goldens were made on
the CPU.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch


def to_tensor(image: np.ndarray) -> "torch.Tensor":
    """torchvision ``ToTensor`` of a uint8 image, with a batch axis.

    Args:
        image: uint8 ``H×W`` (grey) or ``H×W×C`` (e.g. RGB) array.

    Returns:
        float32 tensor ``1×C×H×W`` (``C = 1`` for a grey ``H×W`` image) equal to ``image / 255``,
        the division done in float32 as torchvision does.  Allocates 4 bytes per sample.
    """
    import torch

    if image.dtype != np.uint8:
        raise TypeError(f"to_tensor expects a uint8 image, got {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3:
        raise ValueError(f"to_tensor expects H×W or H×W×C, got shape {image.shape}")
    # from_numpy shares memory; copy only what torch cannot share (read-only or strided arrays).
    if not image.flags.writeable or not image.flags.c_contiguous:
        image = np.array(image, order="C", copy=True)
    chw = torch.from_numpy(image).permute(2, 0, 1).contiguous()
    return chw.to(dtype=torch.float32).div(255).unsqueeze(0)


def normalise(tensor: "torch.Tensor") -> "torch.Tensor":
    """torchvision ``Normalize(0.5, 0.5)``: ``(x − 0.5) / 0.5`` in float32, [0,1] → [-1,1]."""
    return tensor.sub(0.5).div(0.5)


def to_network(image: np.ndarray) -> "torch.Tensor":
    """A uint8 image as the official scripts feed it to a network: ``1×C×H×W`` float32, [-1,1]."""
    return normalise(to_tensor(image))


def save_image_array(unit: "torch.Tensor", normalize: bool) -> np.ndarray:
    """The array ``torchvision.utils.save_image(unit, padding=0, normalize=normalize)`` writes.

    Args:
        unit: tensor ``1×C×H×W`` or ``C×H×W`` with ``C`` 1 or 3, nominally in [0, 1].  A single
            channel is copied into three, as ``make_grid`` does.
        normalize: ``True``: min/max stretch over the *whole* tensor (all channels together),
            ``t = (clamp(t, lo, hi) − lo) / max(hi − lo, 1e-5)``, so a constant tensor becomes all
            zeros.  ``False``: no stretch.

    Returns:
        uint8 ``H×W×3`` array, ``floor(clamp(t*255 + 0.5, 0, 255))`` computed in float32 with
        separate rounding after the multiply and the add, as torchvision does.

    Memory: a float32 copy of the tensor on the CPU plus the uint8 result (≈ 16 bytes per pixel and
    channel at peak).
    """
    import torch

    if unit.dim() == 4:
        if unit.shape[0] != 1:
            raise ValueError(f"expected a batch of one image, got shape {tuple(unit.shape)}")
        unit = unit[0]
    if unit.dim() != 3 or unit.shape[0] not in (1, 3):
        raise ValueError(f"expected C×H×W with C in (1, 3), got shape {tuple(unit.shape)}")
    image = unit.detach().to("cpu", torch.float32, copy=True)
    if normalize:
        # Python floats, as torchvision's norm_range passes them; the divisor is a double rounded
        # to float32 by the kernel.
        low, high = float(image.min()), float(image.max())
        image.clamp_(min=low, max=high)
        image.sub_(low).div_(max(high - low, 1e-5))
    if image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    array = image.mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0).to(torch.uint8)
    return array.numpy()


def official_stretch(generated: "torch.Tensor") -> np.ndarray:
    """Stage-1 official save of a [-1,1] tensor: ``save_image((t + 1) / 2, normalize=True)``.

    The darkest value of the whole tensor becomes 0 and the brightest 255 (bug B2, kept for
    fidelity: ``restored_image/`` feeds stages 2–4).
    """
    return save_image_array(generated.detach().cpu().add(1.0).div(2.0), normalize=True)


def clamp_to_uint8(generated: "torch.Tensor") -> np.ndarray:
    """Save of a [-1,1] tensor without stretch: ``floor(clamp((t + 1)/2, 0, 1)*255 + 0.5)``.

    This is ``save_image((t + 1) / 2)`` (no normalize): the stage-3 rule for enhanced faces, and
    the ``stretch="clamp"`` alternative for stage 1.
    """
    return save_image_array(generated.detach().cpu().add(1.0).div(2.0), normalize=False)
