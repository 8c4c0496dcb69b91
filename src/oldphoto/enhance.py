"""Stage 3 glue: aligned face → generator tensor → enhanced face, as the official ``test_face.py``.

The face generator itself is a black box (``oldphoto.nets``); this module only reproduces the data
handling around it (docs/reference_facts.md#face-enhancement-glue): an optional bicubic resize
to the load size (an identity for stage-2 crops), ``ToTensor`` and ``Normalize(0.5, 0.5)`` in
float32, and the save rule ``floor(clamp((g + 1)/2, 0, 1)·255 + 0.5)``.  The official parsing-map
label is all zeros and ignored by the generator, so it is not built here.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


def face_to_tensor(face: np.ndarray, size: int | None = None):
    """An RGB uint8 face → float32 ``1×3×size×size`` tensor in [-1, 1].

    The face is resized with PIL bicubic only if it is not already ``size``×``size``
    (``size`` defaults to the face's own height).
    """
    import torch

    face = np.asarray(face)
    if face.dtype != np.uint8 or face.ndim != 3 or face.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 H×W×3 face, got {face.dtype} {face.shape}")
    size = int(face.shape[0] if size is None else size)
    if face.shape[:2] != (size, size):
        from PIL import Image

        face = np.asarray(Image.fromarray(face).resize((size, size), Image.BICUBIC))
    # torchvision ToTensor (u8/255 in float32) then Normalize(0.5, 0.5), both in float32.
    tensor = torch.from_numpy(np.array(face, copy=True)).permute(2, 0, 1).to(torch.float32)
    tensor = tensor.div(255).sub(0.5).div(0.5)
    return tensor.unsqueeze(0).contiguous()


def tensor_to_face(tensor) -> np.ndarray:
    """A generator output ``1×3×H×W`` (or ``3×H×W``) in [-1, 1] → RGB uint8 H×W×3 with the
    official save rule ``floor(clamp((g + 1)/2, 0, 1)·255 + 0.5)``, computed in float32."""
    import torch

    t = tensor.detach().to("cpu", torch.float32)
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise ValueError(f"expected one face, got a batch of {t.shape[0]}")
        t = t[0]
    if t.ndim != 3 or t.shape[0] != 3:
        raise ValueError(f"expected a 3×H×W tensor, got shape {tuple(t.shape)}")
    unit = ((t + 1) / 2).clamp(0, 1)
    return torch.floor(unit * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy().copy()


def enhance_face(face: np.ndarray, generator: Callable[[Any], Any], device: Any = "cpu",
                 size: int | None = None) -> np.ndarray:
    """Run the face generator on one aligned face; returns the enhanced ``size``×``size`` face
    (``size`` defaults to the face's own size: 256 standard, 512 HR)."""
    import torch

    x = face_to_tensor(face, size).to(device)
    with torch.inference_mode():
        generated = generator(x)
    return tensor_to_face(generated)
