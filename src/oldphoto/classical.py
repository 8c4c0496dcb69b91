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

import numpy as np

CLASSICAL_VERSION = "1.0"

# ---------------------------------------------------------------------------------------------
# Parameters (defaults of the public functions; describe() reports them)

SCRATCH_PARAMS: dict[str, Any] = {
    "max_width": 5,          # px: widest scratch the top-hat keeps (disc of diameter 2w-1)
    "line_lengths": (21, 41),  # px: oriented mean filters (short for cracks, long for lines)
    "orientations": 12,      # directions of the line filters (15° apart)
    "saturation": 50.0,      # grey levels: top-hat clipped here (a fully visible scratch)
    "thresholds": (0.6, 0.75),  # evidence: grow / seed, as fractions of the saturation
    "defect_contrast": 35.0,  # grey levels: top-hat that may grow a seeded scratch
    "noise_factor": 2.5,     # ... at least this many noise sigmas
    "crack_contrast": 40.0,  # grey levels: top-hat of a crack seed
    "crack_length": 20.0,    # px: a crack seed is at least this long
    "crack_width": 3.0,      # px: ... and at most this wide on average
    "tone_quantile": 0.7,    # bright scratches above this luma quantile, dark ones below 1-q
    "pair_radius": 6,        # px: an opposite-polarity line this close, with evidence ...
    "pair_ratio": 0.5,       # ... ≥ this × saturation, makes a pixel edge-like; so do ...
    "flank_distance": 5.0,   # px: ... the two sides of the line at this distance ...
    "flank_ratio": 0.4,      # ... differing by ≥ this × the line's contrast
    "edge_share_max": 0.6,   # lines edge-like along more than this share are dropped
    "min_area": 30,
    "min_extent": 0.06,      # a component spans at least this fraction of the image diagonal          # px: smaller components are dropped
}

RESTORE_PARAMS: dict[str, Any] = {
    "deblock_below": 75.0,   # JPEG quality under which blocking is removed (0 = never)
    "inpaint_dilation": 2,   # px: mask grown before inpainting (scratch edges, JPEG halo)
    "inpaint_radius": 5,     # px: cv2.inpaint neighbourhood
    "denoise": 0.65,         # NLM filter strength h = denoise * estimated sigma (0 = off)
    "denoise_onset": (4.0, 8.0),  # estimated sigma: no denoising / full strength
    "fade_onset": (25.0, 50.0),  # luma black point (0.5th pct): start / full de-fading
    "fade_anchor": 140.0,    # luma that fading pulls tones towards
    "levels": (12.0, 245.0),  # target black point / white point ceiling
    "white_balance": 0.65,   # fraction of the colour cast removed on a faded photo
    "tone_removal": 0.8,     # fraction of the tint removed on a toned monochrome photo
    "sharpen": 1.0,          # unsharp-mask amount on a clearly blurred photo
    "sharpen_onset": (0.40, 0.60),  # blur measure: no sharpening / full amount
    "sharpen_sigma": 1.2,    # px: unsharp-mask Gaussian
}

FACE_PARAMS: dict[str, Any] = {
    "bilateral_sigma_color": 12.0,
    "bilateral_sigma_space": 3.0,
    "clahe_clip": 1.5,
    "clahe_blend": 0.5,
    "sharpen": 0.6,
    "sharpen_sigma": 1.5,
}


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


# ---------------------------------------------------------------------------------------------
# Helpers


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
    """Rec. 601 luma as float32 (0-255)."""
    x = rgb.astype(np.float32)
    return 0.299 * x[:, :, 0] + 0.587 * x[:, :, 1] + 0.114 * x[:, :, 2]


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


def blur_measure(rgb: np.ndarray) -> float:
    """How blurred an image looks, 0 (sharp) to 1 (flat): Crété-Roffet's re-blur measure.

    The luma is blurred again by a 9-px box filter along each axis; a sharp image loses much of
    its neighbour-to-neighbour variation, a blurred one little.  The measure is
    ``1 - lost / total`` variation, the larger of the two axes.  Natural sharp photos measure
    about 0.15-0.35, a Gaussian blur of sigma 1-2 px moves them to 0.45-0.7.
    """
    cv2 = _cv2()
    y = luminance(rgb)
    box = np.full(9, 1.0 / 9.0, np.float32)
    measures = []
    for axis, kernel in ((0, box.reshape(-1, 1)), (1, box.reshape(1, -1))):
        blurred = cv2.filter2D(y, -1, kernel, borderType=cv2.BORDER_REFLECT)
        variation = np.abs(np.diff(y, axis=axis))
        kept = np.abs(np.diff(blurred, axis=axis))
        total = float(variation.sum())
        if total <= 0:
            return 1.0
        measures.append(1.0 - float(np.maximum(variation - kept, 0).sum()) / total)
    return max(measures)


def sharpen_amount(rgb: np.ndarray, amount: float = 1.0,
                   onset: tuple[float, float] = (0.40, 0.60)) -> float:
    """Unsharp-mask amount for an image: ``amount`` × how far :func:`blur_measure` is between
    ``onset[0]`` (sharp enough: 0) and ``onset[1]`` (clearly blurred: full amount)."""
    blurred = blur_measure(rgb)
    return float(amount * np.clip((blurred - onset[0]) / (onset[1] - onset[0]), 0.0, 1.0))


# ---------------------------------------------------------------------------------------------
# Restoration steps


# The IJG standard luminance quantisation table (JPEG Annex K), quality 50.
_JPEG_LUMA_TABLE = np.array([
    [16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56], [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]], np.float64)


def _dct_matrix(n: int = 8) -> np.ndarray:
    """Orthonormal DCT-II matrix (JPEG's forward DCT is exactly this, applied on both axes)."""
    k = np.arange(n)
    matrix = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n))
    matrix[0] /= np.sqrt(2.0)
    return matrix


def estimate_jpeg_quality(rgb: np.ndarray, min_samples: int = 100,
                          agreement: float = 0.6) -> float | None:
    """IJG quality (1-100) a decoded JPEG was saved at, or None if it does not look like one.

    The luma is cut into the 8×8 blocks of the JPEG grid (origin at the top-left corner) and
    transformed by the DCT.  In a decoded JPEG the coefficients (0,1) and (1,0) sit on
    multiples of their quantisation step ``Q``: the largest ``Q`` (60 down to 2) for which the
    coefficients of magnitude ≥ Q/2 (at least ``min_samples`` of them) have a mean
    ``cos(2π c / Q)`` above ``agreement`` is the step.  The step is turned back into a quality
    with the IJG scaling of the standard table; the estimates of the two coefficients are
    averaged.  Images never saved as JPEG, or resized or cropped off the grid since, give None.
    """
    y = luminance(_as_rgb(rgb)).astype(np.float64) - 128.0
    h, w = (y.shape[0] // 8) * 8, (y.shape[1] // 8) * 8
    if h < 16 or w < 16:
        return None
    blocks = y[:h, :w].reshape(h // 8, 8, w // 8, 8)
    dct = _dct_matrix()
    estimates = []
    for u, v in ((0, 1), (1, 0)):
        coefficients = np.einsum("i,aibj,j->ab", dct[u], blocks, dct[v]).ravel()
        for step in range(60, 1, -1):
            large = np.abs(coefficients) >= step / 2
            if large.sum() < min_samples:
                continue
            if np.mean(np.cos(2 * np.pi * coefficients[large] / step)) > agreement:
                scale = 100.0 * step / _JPEG_LUMA_TABLE[u, v]
                estimates.append((200.0 - scale) / 2.0 if scale <= 100 else 5000.0 / scale)
                break
    if not estimates:
        return None
    return float(np.clip(np.mean(estimates), 1.0, 100.0))


def deblock(rgb: np.ndarray, quality: float, shifts: int = 4, quality_offset: float = 3.0,
            ) -> np.ndarray:
    """Reduce JPEG blocking and ringing by re-application of JPEG (Nosratinia, 2001).

    The image is shifted by ``shifts × shifts`` offsets on a regular sub-grid of the 8×8 block
    (reflected padding), JPEG-compressed at ``quality + quality_offset``, shifted back and the
    results averaged: each version quantises away different artefacts of the original grid, and
    their mean is closer to the uncompressed image (about +0.3-0.5 dB at quality 15-30).
    """
    from oldphoto.degrade import jpeg

    image = _as_rgb(rgb)
    h, w = image.shape[:2]
    q = int(round(min(95.0, quality + quality_offset)))
    step = 8 // shifts
    total = np.zeros(image.shape, np.float32)
    offsets = [(dy, dx) for dy in range(0, 8, step) for dx in range(0, 8, step)]
    for dy, dx in offsets:
        padded = np.pad(image, ((dy, 8), (dx, 8), (0, 0)), mode="reflect")
        total += jpeg(padded, q)[dy:dy + h, dx:dx + w]
    return _to_uint8(total / len(offsets))


def inpaint_scratches(rgb: np.ndarray, mask: np.ndarray, dilation: int = 2,
                      radius: int = 5) -> np.ndarray:
    """Fill the (dilated) masked pixels from their surroundings: ``cv2.inpaint`` (Telea).

    The mask is grown by ``dilation`` px (a 3×3 cross, repeated) so the soft edge of a scratch
    goes too; Telea's fast-marching method fills from ``radius`` px around each pixel.
    """
    cv2 = _cv2()
    hole = np.where(np.asarray(mask) > 0, 255, 0).astype(np.uint8)
    if hole.shape != rgb.shape[:2]:
        raise ValueError(f"mask {hole.shape} does not match image {rgb.shape[:2]}")
    if not hole.any():
        return rgb
    if dilation > 0:
        hole = cv2.dilate(hole, cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3)),
                          iterations=dilation)
    return cv2.inpaint(np.ascontiguousarray(rgb), hole, radius, cv2.INPAINT_TELEA)


def denoise(rgb: np.ndarray, strength: float = 0.65, onset: tuple[float, float] = (4.0, 8.0),
            sigma: float | None = None) -> tuple[np.ndarray, float]:
    """Non-local means (``cv2.fastNlMeansDenoisingColored``) tuned to the estimated noise.

    ``h = strength × sigma × ramp`` for the luma and the chroma (7×7 patches, 21×21 search),
    where ``sigma`` is :func:`estimate_noise` unless given and ``ramp`` rises from 0 at
    ``onset[0]`` to 1 at ``onset[1]``: below ~4 grey levels the "noise" measured is mostly fine
    texture, which smoothing would only destroy.  Returns ``(image, sigma)``.
    """
    cv2 = _cv2()
    if sigma is None:
        sigma = estimate_noise(rgb)
    ramp = float(np.clip((sigma - onset[0]) / (onset[1] - onset[0]), 0.0, 1.0))
    h = float(strength * sigma * ramp)
    if h < 1.0:
        return rgb, float(sigma)
    return cv2.fastNlMeansDenoisingColored(np.ascontiguousarray(rgb), None, h, h, 7, 21), \
        float(sigma)


def tint_strength(rgb: np.ndarray) -> float:
    """How much the image is a tinted monochrome (sepia, cyanotype...): 1 yes, 0 a colour photo.

    Each channel is fitted as an affine function of the luma; the mean residual std is small
    (≤ 3 grey levels) for a toned print and large (≥ 5) for a colour photograph.
    """
    x = rgb.astype(np.float32).reshape(-1, 3)
    step = max(1, x.shape[0] // 200_000)
    x = x[::step]
    y = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    design = np.stack([y, np.ones_like(y)], axis=1)
    coef, *_ = np.linalg.lstsq(design, x, rcond=None)
    residual = float(np.mean(np.std(x - design @ coef, axis=0)))
    return float(np.clip((5.0 - residual) / 2.0, 0.0, 1.0))


def defade(rgb: np.ndarray, onset: tuple[float, float] = (25.0, 50.0), anchor: float = 140.0,
           levels: tuple[float, float] = (12.0, 245.0), white_balance: float = 0.65,
           tone_removal: float = 0.8) -> tuple[np.ndarray, dict[str, float]]:
    """Undo fading and colour cast, conservatively.  Returns ``(image, what was done)``.

    Fading is recognised by a lifted black point: the 0.5th percentile ``b`` of the luma.  The
    correction weight ``w`` rises linearly from 0 at ``onset[0]`` to 1 at ``onset[1]`` (a clean
    photo has shadows darker than ~25 and is left alone).  The luma is stretched about ``b`` by
    the smaller of two gains: the one undoing a fade towards ``anchor`` (``(anchor - black) /
    (anchor - b)``) and the one taking the 0.5–99.5 % range to ``levels`` (so whites never go
    past ``levels[1]``).  The same affine map is applied to every channel (colour kept), blended
    with the per-channel map of each channel's own 0.5/99.5 % points onto the same output range
    (cast removed: white-patch/black-patch balance) by ``white_balance``.

    A tinted monochrome (:func:`tint_strength`) additionally moves towards its neutral grey
    (its luma) by ``tone_removal × tint`` whether faded or not: a sepia print becomes
    black-and-white with a trace of its tone.
    """
    x = rgb.astype(np.float32)
    done = {"fade": 0.0, "gain": 1.0, "tint": 0.0}
    tint = tint_strength(rgb)
    if tint > 0 and tone_removal > 0:
        y = luminance(rgb)[:, :, None]
        x = x + tone_removal * tint * (y - x)
        done["tint"] = round(tint, 3)
    y = 0.299 * x[:, :, 0] + 0.587 * x[:, :, 1] + 0.114 * x[:, :, 2]
    low, high = (float(v) for v in np.percentile(y, [0.5, 99.5]))
    weight = float(np.clip((low - onset[0]) / (onset[1] - onset[0]), 0.0, 1.0))
    if weight > 0 and high - low > 8:
        black, ceiling = levels
        gain = min((anchor - black) / max(anchor - low, 1.0), (ceiling - black) / (high - low))
        gain = max(gain, 1.0)
        keep = (x - low) * gain + black
        lows = np.percentile(x.reshape(-1, 3), 0.5, axis=0)
        highs = np.percentile(x.reshape(-1, 3), 99.5, axis=0)
        span = (high - low) * gain
        neutral = (x - lows) * (span / np.maximum(highs - lows, 8.0)) + black
        mapped = keep + white_balance * (neutral - keep)
        x = x + weight * (mapped - x)
        done.update(fade=round(weight, 3), gain=round(1.0 + weight * (gain - 1.0), 3))
    return _to_uint8(x), done


def restore(rgb: np.ndarray, mask: np.ndarray | None = None, *,
            deblock_below: float = RESTORE_PARAMS["deblock_below"],
            inpaint_dilation: int = RESTORE_PARAMS["inpaint_dilation"],
            inpaint_radius: int = RESTORE_PARAMS["inpaint_radius"],
            denoise_strength: float = RESTORE_PARAMS["denoise"],
            denoise_onset: tuple[float, float] = RESTORE_PARAMS["denoise_onset"],
            fade_onset: tuple[float, float] = RESTORE_PARAMS["fade_onset"],
            fade_anchor: float = RESTORE_PARAMS["fade_anchor"],
            levels: tuple[float, float] = RESTORE_PARAMS["levels"],
            white_balance: float = RESTORE_PARAMS["white_balance"],
            tone_removal: float = RESTORE_PARAMS["tone_removal"],
            sharpen: float = RESTORE_PARAMS["sharpen"],
            sharpen_onset: tuple[float, float] = RESTORE_PARAMS["sharpen_onset"],
            sharpen_sigma: float = RESTORE_PARAMS["sharpen_sigma"]) -> np.ndarray:
    """Global restoration of a whole photo; uint8 RGB (or grey) in, uint8 RGB out.

    0. JPEG artefacts: if the photo was saved as JPEG below quality ``deblock_below``
       (:func:`estimate_jpeg_quality`), :func:`deblock`.
    1. Scratches: if ``mask`` is given, :func:`inpaint_scratches` (mask dilated by
       ``inpaint_dilation`` px, Telea inpainting of radius ``inpaint_radius``).
    2. Fading and cast: :func:`defade` (``fade_onset``, ``fade_anchor``, ``levels``,
       ``white_balance``, ``tone_removal``) — before denoising, so the noise is measured at the
       contrast it will be seen at.
    3. Noise: :func:`denoise`, NLM with ``h = denoise_strength × sigma``, faded in over
       ``denoise_onset`` (estimated sigma).
    4. Sharpening, only as much as the photo looks blurred: unsharp mask of Gaussian
       ``sharpen_sigma`` px, amount ``sharpen`` scaled by :func:`sharpen_amount`
       (``sharpen_onset``) — sharpening a sharp, noisy or blocky photo only adds artefacts.
    """
    image = _as_rgb(rgb)
    quality = estimate_jpeg_quality(image) if deblock_below > 0 else None
    if quality is not None and quality < deblock_below:
        image = deblock(image, quality)
    if mask is not None:
        image = inpaint_scratches(image, mask, inpaint_dilation, inpaint_radius)
    image, _ = defade(image, fade_onset, fade_anchor, levels, white_balance, tone_removal)
    image, _ = denoise(image, denoise_strength, denoise_onset)
    amount = sharpen_amount(image, sharpen, sharpen_onset)
    return _to_uint8(unsharp(image, amount, sharpen_sigma))


# ---------------------------------------------------------------------------------------------
# Scratch detection


def _line_kernels(length: int, orientations: int, width: float = 1.0) -> list[np.ndarray]:
    """Normalised anti-aliased line segments of ``length`` px at ``orientations`` angles."""
    cv2 = _cv2()
    size = length if length % 2 else length + 1
    centre = size // 2
    kernels = []
    for k in range(orientations):
        angle = np.pi * k / orientations
        dx, dy = np.cos(angle) * (length - 1) / 2, np.sin(angle) * (length - 1) / 2
        canvas = np.zeros((size * 4, size * 4), np.uint8)  # 4x supersampled, then averaged
        p0 = (int(round((centre - dx) * 4 + 2)), int(round((centre - dy) * 4 + 2)))
        p1 = (int(round((centre + dx) * 4 + 2)), int(round((centre + dy) * 4 + 2)))
        cv2.line(canvas, p0, p1, 255, thickness=max(1, int(round(4 * width)) - 1))
        kernel = cv2.resize(canvas.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
        kernels.append(kernel / kernel.sum())
    return kernels


def line_response(tophat: np.ndarray, length: int, orientations: int,
                  saturation: float, width: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Line evidence of a top-hat image: ``max_θ mean_θ − min_θ mean_θ`` of the clipped top-hat.

    ``mean_θ`` averages ``min(tophat, saturation)`` along a segment of ``length`` px at angle θ.
    Clipping makes the mean count how much of the segment is consistently raised, not how bright
    a few pixels are, so sparse strong texture scores low and a long scratch scores close to
    ``saturation``.  On a line the best direction collects the whole contrast and the one across
    it almost nothing; on a blob, texture or noise every direction collects about the same, so
    the difference stays small; edges have no top-hat.

    Returns ``(evidence, direction)``: the direction index ``k`` of the best segment, at angle
    ``π k / orientations`` from the x axis (y pointing down).
    """
    cv2 = _cv2()
    clipped = np.minimum(tophat, np.float32(saturation))
    responses = np.stack([cv2.filter2D(clipped, -1, k, borderType=cv2.BORDER_REFLECT)
                          for k in _line_kernels(length, orientations, width)])
    return responses.max(axis=0) - responses.min(axis=0), responses.argmax(axis=0)


def flank_difference(gray: np.ndarray, direction: np.ndarray, orientations: int,
                     distance: float) -> np.ndarray:
    """|luma on one side − luma on the other| at ``distance`` px across each pixel's line.

    ``direction`` holds the line direction index per pixel (:func:`line_response`); the two
    flanks are read at ``± distance`` along the normal, on the luma smoothed by 1 px.  A scratch
    lies on the photo, so the photo continues on both sides of it; a bright or dark line with
    different sides is the edge of an object (a lit rim, a rod against its shadow).  A flank
    outside the image gives ``inf``.
    """
    cv2 = _cv2()
    smooth = cv2.GaussianBlur(gray, (0, 0), 1.0)
    difference = np.zeros_like(smooth)
    for k in range(orientations):
        chosen = direction == k
        if not chosen.any():
            continue
        angle = np.pi * k / orientations
        nx, ny = -np.sin(angle) * distance, np.cos(angle) * distance
        # outside the photo counts as "different": nothing says the picture continues there
        sides = [cv2.warpAffine(smooth, np.float32([[1, 0, sx], [0, 1, sy]]),
                                (smooth.shape[1], smooth.shape[0]),
                                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=np.inf)
                 for sx, sy in ((nx, ny), (-nx, -ny))]
        with np.errstate(invalid="ignore"):
            gap = np.nan_to_num(np.abs(sides[0] - sides[1]), nan=np.inf)
        difference[chosen] = gap[chosen]
    return difference


def _component_shapes(labels: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(length, mean width) of each labelled component, from its second moments.

    A straight bar of length ``l`` has variance ``l²/12`` along its axis, so the length is
    ``sqrt(12 λ_max)``; the mean width is the area over that length.
    """
    ys, xs = np.nonzero(labels)
    lab = labels[ys, xs]
    area = np.bincount(lab, minlength=count).astype(np.float64)
    safe = np.maximum(area, 1.0)
    xs = xs.astype(np.float64)
    ys = ys.astype(np.float64)
    mx = np.bincount(lab, xs, count) / safe
    my = np.bincount(lab, ys, count) / safe
    cxx = np.bincount(lab, xs * xs, count) / safe - mx * mx
    cyy = np.bincount(lab, ys * ys, count) / safe - my * my
    cxy = np.bincount(lab, xs * ys, count) / safe - mx * my
    major = (cxx + cyy) / 2 + np.sqrt(((cxx - cyy) / 2) ** 2 + cxy ** 2)
    length = np.sqrt(12.0 * np.maximum(major, 0.0) + 1.0)
    return length, area / length


def detect_scratches(rgb: np.ndarray, *,
                     max_width: int = SCRATCH_PARAMS["max_width"],
                     line_lengths: tuple[int, ...] = SCRATCH_PARAMS["line_lengths"],
                     orientations: int = SCRATCH_PARAMS["orientations"],
                     saturation: float = SCRATCH_PARAMS["saturation"],
                     thresholds: tuple[float, float] = SCRATCH_PARAMS["thresholds"],
                     tone_quantile: float = SCRATCH_PARAMS["tone_quantile"],
                     defect_contrast: float = SCRATCH_PARAMS["defect_contrast"],
                     noise_factor: float = SCRATCH_PARAMS["noise_factor"],
                     crack_contrast: float = SCRATCH_PARAMS["crack_contrast"],
                     crack_length: float = SCRATCH_PARAMS["crack_length"],
                     crack_width: float = SCRATCH_PARAMS["crack_width"],
                     pair_radius: int = SCRATCH_PARAMS["pair_radius"],
                     pair_ratio: float = SCRATCH_PARAMS["pair_ratio"],
                     flank_distance: float = SCRATCH_PARAMS["flank_distance"],
                     flank_ratio: float = SCRATCH_PARAMS["flank_ratio"],
                     edge_share_max: float = SCRATCH_PARAMS["edge_share_max"],
                     min_area: int = SCRATCH_PARAMS["min_area"],
                     min_extent: float = SCRATCH_PARAMS["min_extent"]) -> np.ndarray:
    """Scratch mask of a photo: uint8 H×W, 255 on thin, long, bright or dark line defects.

    1. Luma, lightly smoothed (Gaussian 0.7 px).  Thin bright structures: white top-hat (luma
       minus its opening by a disc of diameter ``2·max_width−1``); thin dark ones: black
       top-hat.  Edges and wide regions have none.
    2. Line evidence per polarity, :func:`line_response`: segments of each of
       ``line_lengths`` px in ``orientations`` directions over the top-hat clipped at
       ``saturation`` grey levels (the larger of the lengths' responses, and its direction).
    3. Tone: a scratch shows the paper or dirt, so bright candidates must lie above the
       ``tone_quantile`` of the luma, dark ones below ``1 − tone_quantile``.
    4. Seeds: evidence ≥ ``thresholds[1] × saturation`` (long, consistent lines); for the
       bright polarity also cracks: components of top-hat ≥ ``max(crack_contrast, T)`` that
       are bar-like on their own (second-moment length ≥ ``crack_length`` px, mean width ≤
       ``crack_width`` px).  ``T = max(defect_contrast, noise_factor × sigma)`` with sigma the
       estimated noise (:func:`estimate_noise`).  Dark cracks are not seeded this way: short
       dark thin lines are mostly eyes, lips and hair.
    5. Growth (hysteresis by connectivity): the 8-connected regions of evidence ≥
       ``thresholds[0] × saturation`` (bright polarity: or top-hat ≥ ``T``) that hold a seed.
    6. Object edges out.  A scratch lies *on* the photo: the picture continues on both of its
       sides.  A pixel is edge-like when a line of the opposite polarity runs within
       ``pair_radius`` px (evidence ≥ ``pair_ratio × saturation``: a lit rod beside its
       shadow) or when its two sides, ``flank_distance`` px across the line
       (:func:`flank_difference`), differ by ≥ ``flank_ratio`` × its contrast (a rim, a frame).
       Regions edge-like on more than ``edge_share_max`` of their pixels are dropped.
    7. Components smaller than ``min_area`` px or spanning less than ``min_extent`` of the
       image diagonal are dropped.

    The mask marks the scratch body; :func:`restore` grows it before inpainting.  The
    parameters are in pixels of the image as given: the detector expects scans where a scratch
    is a few pixels wide (it is tuned on 250-1000 px photos).
    """
    cv2 = _cv2()

    image = _as_rgb(rgb)
    y = cv2.GaussianBlur(luminance(image), (0, 0), 0.7)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * max_width - 1,) * 2)
    defect = max(defect_contrast, noise_factor * estimate_noise(image))
    low, high = thresholds
    tophats = {op: cv2.morphologyEx(y, op, disc, borderType=cv2.BORDER_REFLECT)
               for op in (cv2.MORPH_TOPHAT, cv2.MORPH_BLACKHAT)}
    evidences, directions = {}, {}
    for op in tophats:
        per_length = [line_response(tophats[op], n, orientations, saturation)
                      for n in line_lengths]
        stack = np.stack([e for e, _ in per_length])
        best = stack.argmax(axis=0)
        evidences[op] = stack.max(axis=0)
        directions[op] = np.choose(best, [d for _, d in per_length])
    near = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pair_radius + 1,) * 2)
    mask = np.zeros(y.shape, bool)
    for op, opposite in ((cv2.MORPH_TOPHAT, cv2.MORPH_BLACKHAT),
                         (cv2.MORPH_BLACKHAT, cv2.MORPH_TOPHAT)):
        tophat, evidence = tophats[op], evidences[op]
        # a scratch shows the paper (among the brightest tones) or dirt (among the darkest)
        if op == cv2.MORPH_TOPHAT:
            tone = y >= np.quantile(y, tone_quantile)
        else:
            tone = y <= np.quantile(y, 1.0 - tone_quantile)
        seeds = (evidence >= high * saturation) & tone
        grow = (evidence >= low * saturation) & tone
        if op == cv2.MORPH_TOPHAT:  # bright cracks only: dark thin lines are eyes, lips, hair
            strong = ((tophat >= max(crack_contrast, defect)) & tone).astype(np.uint8)
            count, labels = cv2.connectedComponents(strong, connectivity=8)
            length, width = _component_shapes(labels, count)
            bar = (length >= crack_length) & (width <= crack_width)
            bar[0] = False
            seeds |= bar[labels]
            grow |= ((tophat >= defect) & tone) | seeds
        count, labels = cv2.connectedComponents(grow.astype(np.uint8), connectivity=8)
        seeded = np.zeros(count, bool)
        seeded[labels[seeds]] = True
        seeded[0] = False
        # a bright line running beside a dark one is an object's edge (a lit rod, a fold): drop
        # the components that have such a companion along most of their length
        flanks = flank_difference(y, directions[op], orientations, flank_distance)
        edge_like = ((cv2.dilate(evidences[opposite], near) >= pair_ratio * saturation)
                     | (flanks >= flank_ratio * np.maximum(tophat, defect)))
        inside = labels > 0
        edge_share = (np.bincount(labels[inside], edge_like[inside], count)
                      / np.maximum(np.bincount(labels[inside], minlength=count), 1))
        seeded &= edge_share <= edge_share_max
        mask |= seeded[labels]
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8),
                                                               connectivity=8)
    extent = np.hypot(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT])
    keep = (stats[:, cv2.CC_STAT_AREA] >= min_area) & \
        (extent >= min_extent * float(np.hypot(*y.shape)))
    keep[0] = False
    return np.where(keep[labels], 255, 0).astype(np.uint8)


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
