"""A real 16-bit final from the 8-bit restoration, keeping the master's levels where it is unchanged.

The restoration works on 8-bit images (the official pipeline's fidelity); a 16-bit master must
still give a 16-bit derivative that holds the master's own levels, not 8-bit values times 257.
:func:`final_16bit` splits every master sample ``m`` (in [0, 1]) into its 8-bit level
``m8 = round(255·m)`` — exactly the level :func:`oldphoto.decode.read_image` hands the
restoration — and the fine part the restoration never saw, ``r = 255·m − m8`` (within ±½ level).
The derivative is the restoration's 8-bit result (back in the master's profile) plus that fine
part::

    final = (f8 + r) / 255        f8 = m8 where the restoration left the pixel unchanged,
                                        else from_working_srgb(restored)

so

* a pixel the restoration did not change is the master's value exactly (its full 16 bits);
* a changed pixel is the restoration's result within half an 8-bit level, carrying the
  master's fine gradation (a tone or colour-cast correction of a smooth 16-bit gradient stays
  smooth instead of posterising to 256 levels).

The reasons for this choice over keeping float stage outputs are in ``docs/archival.md``.
"""

from __future__ import annotations

import numpy as np

from oldphoto.archival.colour import from_working_srgb, to_working_srgb


def master_levels8(master16: np.ndarray) -> np.ndarray:
    """The 8-bit levels of a float master in [0, 1]: ``round(255·m)`` as uint8.

    For 16-bit data ``m = v/65535`` this is ``round(v/257)``, the decoder's own scaling.
    """
    return np.rint(np.clip(master16, 0.0, 1.0) * 255.0).astype(np.uint8)


def unchanged_pixels(master16: np.ndarray, restored_working: np.ndarray,
                     icc: bytes | None) -> np.ndarray:
    """bool H×W: where the restoration returned exactly the working-space pixel it was given."""
    working_input = to_working_srgb(master_levels8(master16), icc)
    return np.all(restored_working == working_input, axis=2)


def _resized(master16: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    import cv2

    height, width = size_hw
    if master16.shape[:2] == (height, width):
        return master16
    shrink = width < master16.shape[1] or height < master16.shape[0]
    method = cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
    return np.clip(cv2.resize(master16, (width, height), interpolation=method), 0.0, 1.0)


def final_16bit(master16: np.ndarray, restored_working: np.ndarray,
                icc: bytes | None) -> np.ndarray:
    """The 16-bit-precision final: float32 H×W×3 in [0, 1], in the master's colour space.

    Args:
        master16: the master's pixels, float32 H×W×3 in [0, 1]
            (:func:`oldphoto.archival.master.read_master_pixels16`), in its own profile.
        restored_working: the restoration's final result, uint8 H×W×3, in the sRGB working
            space (:func:`oldphoto.archival.colour.to_working_srgb` of the decoder's 8-bit
            image went in).  When its size differs from the master's (``final_size:
            official``), the master is resized to it first, and only pixels equal to the
            resized master's count as unchanged.
        icc: the master's ICC profile (None: the working values are the master's values).

    Returns:
        float32; write it with ``bits=16``.  Unchanged pixels equal ``master16`` exactly;
        every pixel is within half an 8-bit level of ``from_working_srgb(restored_working)``.
    """
    if restored_working.dtype != np.uint8 or restored_working.ndim != 3:
        raise ValueError(f"restored_working must be uint8 H×W×3, got {restored_working.dtype} "
                         f"{restored_working.shape}")
    master = _resized(master16.astype(np.float32, copy=False), restored_working.shape[:2])
    levels = master_levels8(master)
    fine = master * np.float32(255.0) - levels.astype(np.float32)
    unchanged = unchanged_pixels(master, restored_working, icc)
    restored_master_space = from_working_srgb(restored_working, icc)
    base = np.where(unchanged[:, :, None], levels, restored_master_space).astype(np.float32)
    return np.clip((base + fine) / np.float32(255.0), 0.0, 1.0).astype(np.float32)


def to_uint16(pixels: np.ndarray) -> np.ndarray:
    """float in [0, 1] → uint16 levels ``round(65535·x)``; uint16 passes, uint8 is ×257."""
    if pixels.dtype == np.uint16:
        return pixels
    if pixels.dtype == np.uint8:
        return pixels.astype(np.uint16) * np.uint16(257)
    return np.rint(np.clip(pixels, 0.0, 1.0) * 65535.0).astype(np.uint16)


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """float in [0, 1] → uint8 ``round(255·x)``; uint8 passes, uint16 is ``round(v/257)``."""
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype == np.uint16:
        return ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8)
    return np.rint(np.clip(pixels, 0.0, 1.0) * 255.0).astype(np.uint8)

