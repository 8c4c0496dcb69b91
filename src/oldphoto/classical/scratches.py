"""Scratch detection without networks: morphological top-hats, clipped oriented line filters,
crack shapes, hysteresis by connectivity, rejection of object edges."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from oldphoto.classical._common import _as_rgb, _cv2, estimate_noise, luminance

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
    "min_area": 30,          # px: smaller components are dropped, and those spanning less ...
    "min_extent": 0.06,      # ... than this fraction of the image diagonal
}


# ---------------------------------------------------------------------------------------------
# Scratch detection


@lru_cache(maxsize=8)
def _line_kernels(length: int, orientations: int) -> tuple[np.ndarray, ...]:
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
        cv2.line(canvas, p0, p1, 255, thickness=3)  # 3/4 px wide at the kernel scale
        kernel = cv2.resize(canvas.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
        kernels.append(kernel / kernel.sum())
    return tuple(kernels)


def line_response(tophat: np.ndarray, length: int, orientations: int,
                  saturation: float) -> tuple[np.ndarray, np.ndarray]:
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
                          for k in _line_kernels(length, orientations)])
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
