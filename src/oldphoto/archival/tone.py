"""``tone: keep``: a greyscale or toned (sepia, selenium, cyanotype) print comes back in its own tone.

A monochrome print's colour is a function of its brightness alone: grey prints have no chroma,
a sepia print's chroma goes from dark brown in the shadows to cream in the highlights.  The
restoration may neutralise that tone or invent colour; :func:`apply_tone_keep` keeps the
restored luminance and gives every pixel the chroma the original print has at the same tonal
rank (the restored pixel's luminance quantile, mapped to the original's luminance at that
quantile, and the original's median chroma at that luminance).  Photos that are not monochrome
are returned unchanged.  YCbCr is BT.601 full-range, on 8-bit levels.
"""

from __future__ import annotations

import numpy as np

MONOCHROME_TOLERANCE = 3.0
"""Mean |chroma − chroma-at-this-luminance| (8-bit levels) below which a photo is monochrome."""

_BINS = 32


def _ycbcr(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    values = rgb.astype(np.float32)
    r, g, b = values[..., 0], values[..., 1], values[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return y, 0.564 * (b - y), 0.713 * (r - y)


def _rgb(y: np.ndarray, cb: np.ndarray, cr: np.ndarray) -> np.ndarray:
    r = y + 1.402 * cr
    g = y - 0.344136 * cb - 0.714136 * cr
    b = y + 1.772 * cb
    return np.rint(np.clip(np.stack([r, g, b], axis=-1), 0, 255)).astype(np.uint8)


def chroma_curve(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(luminance, Cb, Cr) sampled at 32 luminance bins: the median chroma per occupied bin.

    Empty bins are left out, so ``np.interp`` over the result fills them linearly and holds the
    end values beyond the photo's tonal range.
    """
    y, cb, cr = _ycbcr(rgb)
    index = np.minimum((y * (_BINS / 256.0)).astype(np.int32), _BINS - 1).ravel()
    order = np.argsort(index, kind="stable")
    sorted_index = index[order]
    starts = np.searchsorted(sorted_index, np.arange(_BINS))
    ends = np.searchsorted(sorted_index, np.arange(_BINS), side="right")
    lum, cbs, crs = [], [], []
    flat_y, flat_cb, flat_cr = y.ravel()[order], cb.ravel()[order], cr.ravel()[order]
    for start, end in zip(starts, ends):
        if end > start:
            lum.append(float(np.median(flat_y[start:end])))
            cbs.append(float(np.median(flat_cb[start:end])))
            crs.append(float(np.median(flat_cr[start:end])))
    return np.array(lum), np.array(cbs), np.array(crs)


def tone_residual(rgb: np.ndarray) -> float:
    """Mean distance (8-bit levels) of each pixel's chroma from its luminance's median chroma."""
    lum, cb_curve, cr_curve = chroma_curve(rgb)
    y, cb, cr = _ycbcr(rgb)
    d_cb = cb - np.interp(y, lum, cb_curve)
    d_cr = cr - np.interp(y, lum, cr_curve)
    return float(np.mean(np.hypot(d_cb, d_cr)))


def is_monochrome(rgb: np.ndarray, tolerance: float = MONOCHROME_TOLERANCE) -> bool:
    """Whether ``rgb`` (uint8 H×W×3) is a greyscale or single-toned print.

    True when every pixel's chroma is, within ``tolerance`` on average, the chroma its
    luminance has across the photo (true of grey, sepia and other toned prints, false of
    colour photos, whose chroma varies at equal luminance).
    """
    return tone_residual(rgb) < tolerance


def apply_tone_keep(original_rgb: np.ndarray, restored_rgb: np.ndarray,
                    tolerance: float = MONOCHROME_TOLERANCE) -> np.ndarray:
    """``restored_rgb`` in the tone of ``original_rgb`` when the original is monochrome.

    Args:
        original_rgb: the photo as the restoration received it (uint8 H×W×3, any size).
        restored_rgb: the restoration's result (uint8 H×W×3).
        tolerance: see :func:`is_monochrome`.

    Returns:
        uint8 H×W×3 of ``restored_rgb``'s size: its luminance with the original's chroma at
        equal tonal rank; ``restored_rgb`` itself when the original is not monochrome.
    """
    if not is_monochrome(original_rgb, tolerance):
        return restored_rgb
    lum, cb_curve, cr_curve = chroma_curve(original_rgb)
    y_restored = _ycbcr(restored_rgb)[0]
    y_original = _ycbcr(original_rgb)[0]
    quantiles = np.linspace(0.0, 1.0, 257)
    restored_q = np.quantile(y_restored, quantiles)
    original_q = np.quantile(y_original, quantiles)
    # Restored luminance -> its quantile -> the original's luminance at that quantile.
    rank = np.interp(y_restored, restored_q, quantiles)
    y_equivalent = np.interp(rank, quantiles, original_q)
    cb = np.interp(y_equivalent, lum, cb_curve)
    cr = np.interp(y_equivalent, lum, cr_curve)
    return _rgb(y_restored, cb, cr)
