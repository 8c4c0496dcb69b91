"""Global restoration without networks: JPEG deblocking, scratch inpainting, de-fading and
colour-cast removal, non-local-means denoising, blur-adaptive sharpening."""

from __future__ import annotations

from typing import Any

import numpy as np

from oldphoto.classical._common import (_as_rgb, _cv2, _to_uint8, estimate_noise, luminance,
                                        unsharp)

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
    cv2 = _cv2()
    image = _as_rgb(rgb)
    h, w = image.shape[:2]
    q = int(round(min(95.0, quality + quality_offset)))
    step = 8 // shifts
    total = np.zeros(image.shape, np.float32)
    offsets = [(dy, dx) for dy in range(0, 8, step) for dx in range(0, 8, step)]
    for dy, dx in offsets:
        padded = np.ascontiguousarray(np.pad(image, ((dy, 8), (dx, 8), (0, 0)), mode="reflect"))
        _, data = cv2.imencode(".jpg", padded[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])
        total += cv2.imdecode(data, cv2.IMREAD_COLOR)[dy:dy + h, dx:dx + w, ::-1]
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
    y = luminance(x)
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
    y = luminance(x)
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
