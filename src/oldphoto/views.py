"""The images a job makes for people to look at: scaled previews, overlays and face strips.

Pure functions (uint8 RGB arrays in, uint8 RGB arrays out); the jobs that have the pictures at
hand (``detect_scratches`` for the scratch mask, ``blend_faces`` for the before/after, the face
strip and the change map: :mod:`oldphoto.jobs.tasks`) call them and write JPEGs with
:func:`write_jpeg`.  ``snakemake --report`` then collects those files (:mod:`oldphoto.report`
builds its captions and tables).
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Sequence

import numpy as np

PREVIEW_WIDTH = 1200
"""Default width (px) of a before/after preview: sharp on a laptop screen, ~100-300 KB."""

CHANGE_MAP_WIDTH = PREVIEW_WIDTH
"""Longer side (px) of a change map, like the other single-photo views the report embeds
(:func:`fit_within`).  It was twice the preview width, and a width only: for a 2600×3600 scan
the map alone then weighed 0.6-1 MB of the report, more than every other view of the photo
together (``bench/report_size.py``); the numbers behind the map are in the photo's sidecar, and
its scratch mask at full size in ``stage_1_restore_output/masks/mask``."""

FACE_TILE = 192
"""Side (px) of one face in a face strip (aligned faces are 256 or 512 px)."""

WHITE = 255


def _check_rgb(name: str, image: np.ndarray) -> None:
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
            and image.shape[2] == 3 and min(image.shape[:2]) > 0):
        raise ValueError(f"{name} must be a non-empty uint8 H×W×3 array, got "
                         f"{getattr(image, 'dtype', None)} {getattr(image, 'shape', None)}")


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    from oldphoto.decode import resize_to

    return resize_to(image, (max(1, width), max(1, height)))


def fit_width(image: np.ndarray, max_width: int) -> np.ndarray:
    """``image`` scaled down (aspect kept) so that it is at most ``max_width`` wide."""
    _check_rgb("image", image)
    height, width = image.shape[:2]
    if width <= max_width:
        return image
    return _resize(image, max_width, round(height * max_width / width))


def fit_within(image: np.ndarray, max_side: int) -> np.ndarray:
    """``image`` scaled down (aspect kept) so that neither side exceeds ``max_side``.

    The report's single-photo views (scratch mask, change map) use it: a portrait scan fitted
    to a width alone comes out 1.4 times taller than wide, which the report's panel shows
    scrolled and which weighs twice as much.
    """
    _check_rgb("image", image)
    height, width = image.shape[:2]
    if max(height, width) <= max_side:
        return image
    scale = max_side / max(height, width)
    return _resize(image, min(max_side, round(width * scale)),
                   min(max_side, round(height * scale)))


def side_by_side(before: np.ndarray, after: np.ndarray, max_width: int = PREVIEW_WIDTH,
                 gap: int = 8) -> np.ndarray:
    """``before`` and ``after`` next to each other at one height, at most ``max_width`` wide.

    Both are scaled (aspect ratio kept, never enlarged) to the smaller of their two heights, so a
    final output at the network grid size still lines up with its original; then both are scaled
    down together until the pair, with a white ``gap`` between them, fits ``max_width``.
    """
    _check_rgb("before", before)
    _check_rgb("after", after)
    if max_width < 2 + gap:
        raise ValueError(f"max_width {max_width} leaves no room for two images and the gap")
    height = min(before.shape[0], after.shape[0])
    widths = [image.shape[1] * height / image.shape[0] for image in (before, after)]
    scale = min(1.0, (max_width - gap) / sum(widths))
    height = max(1, math.floor(height * scale))
    sized = [_resize(image, max(1, math.floor(w * scale)), height)
             for image, w in zip((before, after), widths)]
    spacer = np.full((height, gap, 3), WHITE, np.uint8)
    return np.concatenate([sized[0], spacer, sized[1]], axis=1)


def mask_overlay(rgb: np.ndarray, mask: np.ndarray, color: Sequence[int] = (255, 0, 0),
                 opacity: float = 0.6) -> np.ndarray:
    """The photo with its scratch mask (255 = scratch) painted over it in ``color``.

    Pixels outside the mask are unchanged; masked pixels become
    ``(1 - opacity) * rgb + opacity * color``, rounded.
    """
    _check_rgb("rgb", rgb)
    if not (isinstance(mask, np.ndarray) and mask.ndim == 2 and mask.shape == rgb.shape[:2]):
        raise ValueError(f"mask must be an H×W array matching the photo {rgb.shape[:2]}, got "
                         f"{getattr(mask, 'shape', None)}")
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be within [0, 1], got {opacity}")
    tint = np.asarray(color, np.float64).reshape(1, 3)
    out = rgb.copy()
    scratch = mask > 0
    blended = (1.0 - opacity) * rgb[scratch].astype(np.float64) + opacity * tint
    out[scratch] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return out


def face_strip(pairs: Sequence[tuple[np.ndarray, np.ndarray]], tile: int = FACE_TILE,
               gap: int = 8, columns: int = 8) -> np.ndarray:
    """Every face of a photo before (top) and after (below) enhancement, as one image.

    ``pairs`` holds ``(aligned_face, enhanced_face)`` in face order; each becomes a column of two
    ``tile``-px squares.  After ``columns`` faces the strip wraps to a new row of pairs.
    White ``gap`` px separate the tiles.
    """
    if not pairs:
        raise ValueError("face_strip needs at least one (aligned, enhanced) pair")
    if tile < 1 or columns < 1 or gap < 0:
        raise ValueError(f"bad layout: tile={tile}, columns={columns}, gap={gap}")
    for index, (aligned, enhanced) in enumerate(pairs, start=1):
        _check_rgb(f"aligned face {index}", aligned)
        _check_rgb(f"enhanced face {index}", enhanced)
    n_cols = min(columns, len(pairs))
    n_rows = math.ceil(len(pairs) / n_cols)
    split = max(1, gap // 2)  # between a face and its enhancement: closer than to the next
    cell_w, cell_h = tile + gap, 2 * tile + split + gap
    strip = np.full((n_rows * cell_h + gap, n_cols * cell_w + gap, 3), WHITE, np.uint8)
    for index, (aligned, enhanced) in enumerate(pairs):
        row, col = divmod(index, n_cols)
        x, y = gap + col * cell_w, gap + row * cell_h
        strip[y:y + tile, x:x + tile] = _resize(aligned, tile, tile)
        below = y + tile + split
        strip[below:below + tile, x:x + tile] = _resize(enhanced, tile, tile)
    return strip


def encode_jpeg(rgb: np.ndarray, quality: int = 85) -> bytes:
    """Baseline JPEG bytes of an RGB image (4:2:0, optimized Huffman tables)."""
    from PIL import Image

    _check_rgb("rgb", rgb)
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, format="JPEG", quality=quality,
                                                    optimize=True)
    return buffer.getvalue()


def write_jpeg(path: str | Path, rgb: np.ndarray, quality: int = 85) -> None:
    """Write a preview JPEG atomically (temp file + rename, like every other output)."""
    from oldphoto.atomic import write_bytes_atomic

    write_bytes_atomic(path, encode_jpeg(rgb, quality))
