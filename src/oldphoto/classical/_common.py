"""Shared helpers of the classical backend: input checks, luma, noise level, unsharp mask."""

from __future__ import annotations

import numpy as np


def _cv2():
    import cv2

    return cv2


def _as_rgb(rgb: np.ndarray) -> np.ndarray:
    """uint8 H×W×3 view of an RGB, RGBA or grey image."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8:
        raise TypeError(f"expected a uint8 image, got {rgb.dtype}")
    if rgb.ndim == 2:
        return np.repeat(rgb[:, :, None], 3, axis=2)
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4):
        raise ValueError(f"expected an H×W×3 RGB image, got shape {rgb.shape}")
    return np.ascontiguousarray(rgb[:, :, :3])


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Rec. 601 luma as float32 (0-255) of RGB values on the last axis (H×W×3, N×3)."""
    x = rgb.astype(np.float32)
    return 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]


def estimate_noise_sigma(gray: np.ndarray, edge_quantile: float = 0.7) -> float:
    """Std of additive white noise in a grey image (Immerkaer's operator, robust version).

    The 3×3 operator ``[[1,-2,1],[-2,4,-2],[1,-2,1]]`` cancels smooth image content and has gain
    6 on white noise; its median absolute response over the pixels with the weakest gradients
    (below the ``edge_quantile`` of the Sobel magnitude), divided by 0.6745·6, is the sigma.
    """
    cv2 = _cv2()
    g = gray.astype(np.float32)
    if min(g.shape) < 8:
        return 0.0
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    response = np.abs(cv2.filter2D(g, -1, kernel, borderType=cv2.BORDER_REFLECT))[1:-1, 1:-1]
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)[1:-1, 1:-1]
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)[1:-1, 1:-1]
    magnitude = np.hypot(gx, gy)
    flat = magnitude <= np.quantile(magnitude, edge_quantile)
    return float(np.median(response[flat]) / (0.6745 * 6.0))


def estimate_noise(rgb: np.ndarray) -> float:
    """Per-channel noise sigma of an RGB image, also counting noise JPEG has made blotchy.

    The maximum of the full-resolution estimate (white noise) and twice the estimate on the
    2×2-averaged image (noise whose finest frequencies a JPEG encoder removed survives there).
    Both are of the luma, rescaled to one channel (luma of i.i.d. channel noise has 0.668 sigma).
    """
    cv2 = _cv2()
    y = luminance(rgb)
    fine = estimate_noise_sigma(y)
    h, w = y.shape
    coarse = 0.0
    if min(h, w) >= 32:
        half = cv2.resize(y, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        coarse = 2.0 * estimate_noise_sigma(half)
    return max(fine, coarse) / 0.668


def unsharp(rgb: np.ndarray, amount: float, sigma: float) -> np.ndarray:
    """Unsharp mask ``x + amount * (x - gauss_sigma(x))`` (float32 in, float32 out)."""
    cv2 = _cv2()
    x = rgb.astype(np.float32)
    if amount <= 0:
        return x
    soft = cv2.GaussianBlur(x, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)
    return x + amount * (x - soft)
