"""Colour policy: the restoration works on sRGB values; derivatives return to the master's profile.

The networks were trained on sRGB photos and the classical methods assume sRGB too, so a master
with an embedded ICC profile (Adobe RGB 1998, ECI RGB, ...) is converted to sRGB for the
restoration (:func:`to_working_srgb`), and the restored result is converted back to the master's
profile (:func:`from_working_srgb`), which the derivative embeds.  A master without a profile is
taken as sRGB and passes unchanged.  Conversions use littleCMS through Pillow's ImageCms, relative
colorimetric intent with black-point compensation (wide-gamut colours the sRGB working space
cannot hold are clipped for the networks; pixels the restoration leaves alone keep the master's
exact values, see :mod:`oldphoto.archival.depth`).  Reasons: ``docs/archival.md``.

ImageCms transforms 8-bit RGB only; float inputs are quantised to 8 bits on the way in, which is
the precision the restoration itself works at.

A greyscale master gives a greyscale derivative (``docs/archival.md#greyscale-masters``):
:func:`grey_from_rgb` turns the restoration's RGB result into grey by its luminance.
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np

from oldphoto.errors import BadImageError

INTENT_RELATIVE = 1
"""ICC relative colorimetric rendering intent (ImageCms.Intent.RELATIVE_COLORIMETRIC)."""


def _profile(icc: bytes):
    from PIL import ImageCms

    try:
        return ImageCms.ImageCmsProfile(io.BytesIO(icc))
    except (OSError, ImageCms.PyCMSError) as err:
        raise BadImageError(None, f"unreadable ICC profile: {err}") from None


def profile_colour_space(icc: bytes) -> str:
    """The profile's data colour space as the ICC header names it (``"RGB"``, ``"GRAY"``, ...)."""
    return _profile(icc).profile.xcolor_space.strip()


def profile_description(icc: bytes) -> str:
    """The profile's description (e.g. ``"Compatible with Adobe RGB (1998)"``)."""
    return (_profile(icc).profile.profile_description or "").strip()


@lru_cache(maxsize=8)
def _transforms(icc: bytes):
    """(to sRGB, from sRGB) ImageCms transforms for an RGB profile, built once per profile."""
    from PIL import ImageCms

    source = _profile(icc)
    space = source.profile.xcolor_space.strip()
    if space != "RGB":
        raise BadImageError(None, f"ICC profile colour space {space!r} is not RGB; only RGB "
                                  "profiles are converted")
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    flags = ImageCms.Flags.BLACKPOINTCOMPENSATION
    to_srgb = ImageCms.buildTransform(source, srgb, "RGB", "RGB", INTENT_RELATIVE, flags)
    from_srgb = ImageCms.buildTransform(srgb, source, "RGB", "RGB", INTENT_RELATIVE, flags)
    return to_srgb, from_srgb


def _as_u8(rgb: np.ndarray) -> np.ndarray:
    if rgb.dtype == np.uint8:
        return np.ascontiguousarray(rgb)
    if np.issubdtype(rgb.dtype, np.floating):
        return np.rint(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)
    raise ValueError(f"expected uint8 or float RGB in [0, 1], got {rgb.dtype}")


def _apply(transform, rgb: np.ndarray) -> np.ndarray:
    from PIL import Image, ImageCms

    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 RGB array, got shape {rgb.shape}")
    image = Image.fromarray(_as_u8(rgb), "RGB")
    out = np.asarray(ImageCms.applyTransform(image, transform), dtype=np.uint8).copy()
    if np.issubdtype(rgb.dtype, np.floating):
        return out.astype(np.float32) / np.float32(255.0)
    return out


def working_profile(icc: bytes | None) -> bytes | None:
    """The profile the working-space conversion uses: ``icc`` when it is an RGB profile.

    A grey profile (or none) means the decoder's RGB values are taken as sRGB, as the library
    documents (``docs/archival.md``, Colour).

    Raises:
        BadImageError: the profile is unreadable (no file named: the caller names it).
    """
    if icc is None or profile_colour_space(icc) != "RGB":
        return None
    return icc


def to_working_srgb(rgb: np.ndarray, icc: bytes | None) -> np.ndarray:
    """The master's values (in profile ``icc``) converted to sRGB for the restoration.

    Args:
        rgb: uint8 H×W×3, or float H×W×3 in [0, 1] (quantised to 8 bits).
        icc: the master's ICC profile; None means the values already are sRGB (returned as is).

    Returns:
        The same dtype as ``rgb`` (float32 for float input).

    Raises:
        BadImageError: the profile is unreadable or not an RGB profile.
    """
    if icc is None:
        return rgb
    return _apply(_transforms(icc)[0], rgb)


def from_working_srgb(rgb: np.ndarray, icc: bytes | None) -> np.ndarray:
    """sRGB values from the restoration converted back to the master's profile ``icc``.

    The inverse of :func:`to_working_srgb` (same argument rules); None returns ``rgb``.
    """
    if icc is None:
        return rgb
    return _apply(_transforms(icc)[1], rgb)


SRGB_LUMINANCE = (0.2126, 0.7152, 0.0722)
"""Relative luminance Y of linear sRGB (ITU-R BT.709 primaries, D65), IEC 61966-2-1."""


def _srgb_to_linear(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(y: np.ndarray) -> np.ndarray:
    return np.where(y <= 0.0031308, 12.92 * y, 1.055 * np.power(y, 1 / 2.4) - 0.055)


def grey_from_rgb(rgb: np.ndarray) -> np.ndarray:
    """The grey of RGB values in the sRGB working space: the sRGB-encoded relative luminance.

    ``grey = srgb(0.2126·lin(R) + 0.7152·lin(G) + 0.0722·lin(B))`` with the sRGB transfer curve
    ``lin`` and its inverse ``srgb`` (IEC 61966-2-1), so a coloured pixel keeps its lightness.
    A neutral pixel (R = G = B) keeps its value exactly: an unchanged pixel of a greyscale master
    is the master's own sample.

    Args:
        rgb: H×W×3, uint8, or float in [0, 1] (16-bit precision finals).

    Returns:
        H×W of the same kind: uint8 for uint8 input, float32 for float input.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 RGB array, got shape {rgb.shape}")
    integer = rgb.dtype == np.uint8
    if not integer and not np.issubdtype(rgb.dtype, np.floating):
        raise ValueError(f"expected uint8 or float RGB in [0, 1], got {rgb.dtype}")
    grey = rgb[:, :, 0].astype(np.float64) / (255.0 if integer else 1.0)
    coloured = (rgb[:, :, 0] != rgb[:, :, 1]) | (rgb[:, :, 1] != rgb[:, :, 2])
    if coloured.any():
        values = np.clip(rgb[coloured].astype(np.float64) / (255.0 if integer else 1.0), 0, 1)
        luminance = _srgb_to_linear(values) @ np.asarray(SRGB_LUMINANCE)
        grey[coloured] = _linear_to_srgb(np.clip(luminance, 0.0, 1.0))
    if integer:
        return np.rint(grey * 255.0).astype(np.uint8)
    return np.clip(grey, 0.0, 1.0).astype(np.float32)
