"""Face enhancement without networks, for aligned crops."""

from __future__ import annotations

from typing import Any

import numpy as np

from oldphoto.classical._common import _as_rgb, _cv2, _to_uint8, estimate_noise

FACE_PARAMS: dict[str, Any] = {
    "bilateral_sigma_color": 12.0,  # grey levels (plus twice the estimated noise)
    "bilateral_sigma_space": 3.0,   # px at 256 (scaled with the crop size)
    "clahe_clip": 1.5,              # CLAHE clip limit on the L channel, 8x8 tiles
    "clahe_blend": 0.5,             # share of the CLAHE result in the new L channel
    "sharpen": 0.6,                 # unsharp-mask amount on L
    "sharpen_sigma": 1.5,           # px at 256 (scaled with the crop size)
}


# ---------------------------------------------------------------------------------------------
# Faces


def enhance_face(face: np.ndarray, *,
                 bilateral_sigma_color: float = FACE_PARAMS["bilateral_sigma_color"],
                 bilateral_sigma_space: float = FACE_PARAMS["bilateral_sigma_space"],
                 clahe_clip: float = FACE_PARAMS["clahe_clip"],
                 clahe_blend: float = FACE_PARAMS["clahe_blend"],
                 sharpen: float = FACE_PARAMS["sharpen"],
                 sharpen_sigma: float = FACE_PARAMS["sharpen_sigma"]) -> np.ndarray:
    """Enhance an aligned face crop (256 or 512 px square, any size works); uint8 RGB out.

    1. Edge-preserving smoothing: bilateral filter (``bilateral_sigma_space`` px, colour sigma
       ``bilateral_sigma_color`` plus twice the estimated noise) — skin noise and grain go,
       eyes, lips and hair edges stay.  The sigmas are for a 256-px crop and scale with size.
    2. Local contrast, lightly: CLAHE (clip ``clahe_clip``, 8×8 tiles) on the L channel of
       CIELAB, blended with the original L by ``clahe_blend``.
    3. Detail: unsharp mask of the luminance only (amount ``sharpen``, Gaussian
       ``sharpen_sigma`` px, scaled with size), so colours do not fringe.
    """
    cv2 = _cv2()
    image = _as_rgb(face)
    scale = max(image.shape[:2]) / 256.0
    sigma_noise = estimate_noise(image)
    diameter = int(2 * round(2 * bilateral_sigma_space * scale) + 1)
    smooth = cv2.bilateralFilter(image, diameter, bilateral_sigma_color + 2.0 * sigma_noise,
                                 bilateral_sigma_space * scale)
    lab = cv2.cvtColor(smooth, cv2.COLOR_RGB2LAB)
    lightness = lab[:, :, 0]
    clahe = cv2.createCLAHE(clipLimit=clahe_clip, tileGridSize=(8, 8))
    local = clahe.apply(lightness).astype(np.float32)
    lightness = (1.0 - clahe_blend) * lightness.astype(np.float32) + clahe_blend * local
    soft = cv2.GaussianBlur(lightness, (0, 0), sharpen_sigma * scale)
    lightness = lightness + sharpen * (lightness - soft)
    lab[:, :, 0] = _to_uint8(lightness)
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)
