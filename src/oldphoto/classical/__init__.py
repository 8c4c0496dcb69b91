"""Classical (weight-free) backend: OpenCV/numpy stand-ins for the learned steps.

Used when the official checkpoints are absent, through the same DAG and the same contract as
the networks: images uint8 RGB H×W×3 in and out, masks uint8 H×W {0, 255} (255 = scratch).
Every function is pure and deterministic (same input, same bytes out).

- :func:`detect_scratches` — the scratch U-Net's job: thin, long, bright or dark line defects.
- :func:`restore` — the global restoration's job: inpaint scratches, denoise, undo fading and
  colour cast, sharpen.
- :func:`enhance_face` — the face generator's job on aligned crops: edge-preserving smoothing,
  light local contrast, sharpening.

These are honest classical methods, not imitations of the networks' output: they remove what a
model of the degradation says they can (noise, scratches, fading, cast) and nothing is invented.
:func:`describe` returns every parameter, for output metadata.
"""

from __future__ import annotations

from typing import Any

from oldphoto.classical._common import estimate_noise, estimate_noise_sigma, luminance, unsharp
from oldphoto.classical.face import FACE_PARAMS, enhance_face
from oldphoto.classical.restoration import (RESTORE_PARAMS, blur_measure, deblock, defade,
                                            denoise, estimate_jpeg_quality, inpaint_scratches,
                                            restore, sharpen_amount, tint_strength)
from oldphoto.classical.scratches import (SCRATCH_PARAMS, detect_scratches, flank_difference,
                                          line_response)

CLASSICAL_VERSION = "1.0"

__all__ = [
    "CLASSICAL_VERSION", "describe", "detect_scratches", "restore", "enhance_face",
    "SCRATCH_PARAMS", "RESTORE_PARAMS", "FACE_PARAMS",
    "luminance", "estimate_noise", "estimate_noise_sigma", "unsharp", "blur_measure",
    "sharpen_amount", "estimate_jpeg_quality", "deblock", "inpaint_scratches", "denoise",
    "tint_strength", "defade", "line_response", "flank_difference",
]


def describe() -> dict[str, Any]:
    """The backend's version and every parameter, JSON-serialisable (for output metadata)."""
    def plain(params):
        return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}

    return {
        "backend": "classical",
        "version": CLASSICAL_VERSION,
        "detect_scratches": plain(SCRATCH_PARAMS),
        "restore": plain(RESTORE_PARAMS),
        "enhance_face": plain(FACE_PARAMS),
    }
