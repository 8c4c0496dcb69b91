"""Synthetic old-photo degradations with a known ground truth, for benchmarks and tests.

A clean uint8 RGB image is turned into an "old photo" by a fixed, physically ordered chain of
degradations, each seeded and deterministic:

1. ``blur``    — optical softness: Gaussian blur, sigma ~ U(1.0, 1.8) px.
2. ``fade``    — chemical fading of the print: contrast ~ U(0.55, 0.65) towards a grey
   ~ U(130, 175) (blacks lifted to 50-80, whites pulled down to 200-225), then a sepia/yellow
   cast: per-channel gains R 1.0, G ~ U(0.87, 0.93), B ~ U(0.68, 0.76) and small offsets (the
   blue dye fades most, the paper yellows).
3. ``scratch`` — physical damage on the print: white (emulsion gone, shows the paper) and dark
   (dirt, creases) curved scratches 1-4 px wide, soft-edged and of varying opacity, with the
   ground-truth mask of the pixels they visibly changed (see :func:`draw_scratches`).
4. ``noise``   — film grain and scanner noise: additive i.i.d. Gaussian per channel,
   sigma ~ U(8, 20) grey levels.
5. ``jpeg``    — the scan saved as JPEG, quality ~ U{15..30} (8×8 blocking, ringing).

``degrade(clean, kinds, seed)`` applies the requested kinds in that order whatever order they
are given in; ``"old"`` stands for all five.  The strengths are drawn from the ranges above by a
``numpy.random.default_rng(seed)``, so one seed always gives the same image, and can be pinned
with ``params``.  Nothing here is used by the restoration itself.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np

KINDS: tuple[str, ...] = ("blur", "fade", "scratch", "noise", "jpeg")
"""The degradations, in the order :func:`degrade` applies them."""

OLD_PHOTO: tuple[str, ...] = KINDS
"""The combined "old photo" degradation (``kinds="old"``)."""

# Minimum change (grey levels, largest channel) for a drawn scratch pixel to count as visible.
VISIBLE_CHANGE = 12.0


def add_noise(rgb: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Additive i.i.d. Gaussian noise of standard deviation ``sigma`` grey levels, per channel."""
    noisy = rgb.astype(np.float32) + rng.normal(0.0, sigma, rgb.shape).astype(np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def blur(rgb: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of standard deviation ``sigma`` px (reflected borders)."""
    import cv2

    return cv2.GaussianBlur(rgb, (0, 0), sigmaX=sigma, sigmaY=sigma,
                            borderType=cv2.BORDER_REFLECT_101)


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    """Encode and decode as baseline JPEG (4:2:0 chroma subsampling) at ``quality`` (1-100)."""
    import cv2

    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]),
                            [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - cv2 always encodes a valid uint8 image
        raise RuntimeError("JPEG encoding failed")
    return cv2.imdecode(data, cv2.IMREAD_COLOR)[:, :, ::-1].copy()


def fade(rgb: np.ndarray, contrast: float = 0.6, mid: float = 150.0,
         cast: tuple[float, float, float] = (1.0, 0.90, 0.72),
         offset: tuple[float, float, float] = (10.0, 4.0, -4.0)) -> np.ndarray:
    """Faded print with a sepia/yellow cast.

    ``out_c = cast_c * (contrast * rgb_c + (1 - contrast) * mid) + offset_c``: every channel keeps
    ``contrast`` of its range around ``mid`` (0.6 turns 0..255 into 60..213), then the dyes fade
    unequally (``cast``, blue most) and the paper yellows (``offset``).
    """
    x = rgb.astype(np.float32)
    faded = contrast * x + (1.0 - contrast) * mid
    faded = faded * np.asarray(cast, np.float32) + np.asarray(offset, np.float32)
    return np.clip(np.rint(faded), 0, 255).astype(np.uint8)


def _scratch_path(rng: np.random.Generator, height: int, width: int, length: float,
                  wiggle: float) -> np.ndarray:
    """A smooth random curve (x, y) int32 points: a walk whose heading drifts by ``wiggle``."""
    x, y = rng.uniform(0, width), rng.uniform(0, height)
    heading = rng.uniform(0, np.pi)
    if rng.random() < 0.5:
        heading += np.pi
    step = 3.0
    points = [(x, y)]
    for _ in range(max(2, int(length / step))):
        heading += rng.normal(0.0, wiggle)
        x += step * np.cos(heading)
        y += step * np.sin(heading)
        points.append((x, y))
    return np.rint(np.asarray(points)).astype(np.int32)


def draw_scratches(rgb: np.ndarray, rng: np.random.Generator, count: int | None = None,
                   widths: tuple[int, ...] = (1, 2, 3, 4), white_fraction: float = 0.7,
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Draw curved white and dark scratches; returns ``(scratched, mask)``.

    ``count`` scratches (default: 4-8 per 512×512 of image area, at least 2) are random smooth
    curves of length 15-60 % of the image diagonal and width drawn from ``widths`` px.  A white
    scratch shows the (yellowed) paper, RGB ~(240, 232, 205); a dark one dirt, ~(25, 22, 20).
    Each is blended with an opacity of 0.75-1.0 that also varies slowly along the scratch, through
    a slightly softened (sigma 0.5 px) stroke, like a real scratch's edge.

    The mask (uint8 {0, 255}) marks the drawn stroke pixels whose colour visibly changed, by at
    least :data:`VISIBLE_CHANGE` grey levels in some channel: a white scratch crossing white sky
    is not a defect anyone (or any detector) can see, and is not counted.
    """
    import cv2

    height, width = rgb.shape[:2]
    diagonal = float(np.hypot(height, width))
    if count is None:
        count = max(2, int(round(rng.uniform(4, 8) * height * width / 512**2)))
    alpha = np.zeros((height, width), np.float32)
    colour = np.zeros((height, width, 3), np.float32)
    stroke_mask = np.zeros((height, width), np.uint8)
    for _ in range(count):
        stroke = np.zeros((height, width), np.uint8)
        path = _scratch_path(rng, height, width, rng.uniform(0.15, 0.6) * diagonal,
                             wiggle=rng.uniform(0.02, 0.12))
        thickness = int(rng.choice(widths))
        cv2.polylines(stroke, [path], False, 255, thickness=thickness, lineType=cv2.LINE_8)
        white = rng.random() < white_fraction
        tone = (np.array([240.0, 232.0, 205.0]) if white else np.array([25.0, 22.0, 20.0]))
        tone = tone + rng.normal(0.0, 6.0)
        # opacity varying slowly along the stroke (a smooth random field)
        field = cv2.resize(rng.uniform(0.75, 1.0, (4, 4)).astype(np.float32), (width, height),
                           interpolation=cv2.INTER_CUBIC)
        soft = cv2.GaussianBlur(stroke.astype(np.float32) / 255.0, (0, 0), 0.5)
        a = np.clip(soft * np.clip(field, 0.0, 1.0), 0.0, 1.0)
        take = a > alpha
        alpha[take] = a[take]
        colour[take] = tone
        stroke_mask |= stroke
    x = rgb.astype(np.float32)
    scratched = (1.0 - alpha[:, :, None]) * x + alpha[:, :, None] * colour
    scratched = np.clip(np.rint(scratched), 0, 255).astype(np.uint8)
    change = np.abs(scratched.astype(np.float32) - x).max(axis=2)
    mask = np.where((stroke_mask > 0) & (change >= VISIBLE_CHANGE), 255, 0).astype(np.uint8)
    return scratched, mask


def draw_params(kinds: Iterable[str], seed: int) -> dict[str, Any]:
    """The strengths :func:`degrade` uses for ``kinds`` and ``seed`` (same draws, same order)."""
    rng = np.random.default_rng([seed, 0])
    drawn = {
        "blur_sigma": float(rng.uniform(1.0, 1.8)),
        "fade_contrast": float(rng.uniform(0.55, 0.65)),
        "fade_mid": float(rng.uniform(130.0, 175.0)),
        "fade_cast": (1.0, float(rng.uniform(0.87, 0.93)), float(rng.uniform(0.68, 0.76))),
        "noise_sigma": float(rng.uniform(8.0, 20.0)),
        "jpeg_quality": int(rng.integers(15, 31)),
    }
    kinds = set(kinds)
    keep = {"blur": ["blur_sigma"], "fade": ["fade_contrast", "fade_mid", "fade_cast"],
            "noise": ["noise_sigma"], "jpeg": ["jpeg_quality"], "scratch": []}
    return {key: drawn[key] for kind in kinds for key in keep[kind]}


def normalise_kinds(kinds: str | Iterable[str]) -> tuple[str, ...]:
    """``"old"`` or ``"noise+jpeg"`` or an iterable of names -> the kinds in application order."""
    if isinstance(kinds, str):
        kinds = OLD_PHOTO if kinds == "old" else tuple(k for k in kinds.split("+") if k)
    kinds = tuple(kinds)
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ValueError(f"unknown degradation(s) {unknown}; known: {list(KINDS)} or 'old'")
    return tuple(k for k in KINDS if k in kinds)


def degrade(clean: np.ndarray, kinds: str | Iterable[str], seed: int = 0,
            params: Mapping[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Apply ``kinds`` to ``clean`` (uint8 RGB, or H×W grey which is made RGB).

    Returns ``(degraded, scratch_mask)``; the mask is uint8 H×W {0, 255}, all zero unless
    ``"scratch"`` is among the kinds.  ``params`` overrides the drawn strengths (keys of
    :func:`draw_params`).  Deterministic in ``(clean, kinds, seed, params)``.
    """
    if clean.dtype != np.uint8:
        raise TypeError(f"expected uint8 image, got {clean.dtype}")
    image = np.repeat(clean[:, :, None], 3, axis=2) if clean.ndim == 2 else clean[:, :, :3]
    image = np.ascontiguousarray(image)
    order = normalise_kinds(kinds)
    strengths = draw_params(KINDS, seed)
    if params:
        strengths.update(params)
    mask = np.zeros(image.shape[:2], np.uint8)
    for kind in order:
        if kind == "blur":
            image = blur(image, strengths["blur_sigma"])
        elif kind == "fade":
            image = fade(image, strengths["fade_contrast"], strengths["fade_mid"],
                         cast=strengths["fade_cast"])
        elif kind == "scratch":
            image, mask = draw_scratches(image, np.random.default_rng([seed, 1]))
        elif kind == "noise":
            image = add_noise(image, strengths["noise_sigma"], np.random.default_rng([seed, 2]))
        elif kind == "jpeg":
            image = jpeg(image, strengths["jpeg_quality"])
    return image, mask
