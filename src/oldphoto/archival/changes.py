"""What the restoration changed, made visible: a change-map image and its numbers.

:func:`change_map` shows a reviewer where the result differs from the photo it started from
(a heat map of the largest per-channel change), which areas were repaired as scratches (magenta
tint and outline) and which face regions were replaced by generated faces (cyan boxes), over a
dimmed grey copy of the result, and returns the amounts.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

CHANGE_THRESHOLD = 8
"""A pixel counts as changed when a channel moved by more than this many 8-bit levels."""

SCRATCH_COLOUR = (255, 0, 255)
FACE_COLOUR = (0, 255, 255)


def _check(before: np.ndarray, after: np.ndarray) -> None:
    for name, image in (("before", before), ("after", after)):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"{name} must be uint8 H×W×3, got {image.dtype} {image.shape}")
    if before.shape != after.shape:
        raise ValueError(f"before {before.shape} and after {after.shape} differ in size; "
                         "resize one first (oldphoto.decode.resize_to)")


def _face_mask(shape: tuple[int, int], boxes: Sequence[Sequence[float]]) -> np.ndarray:
    mask = np.zeros(shape, bool)
    height, width = shape
    for box in boxes:
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        x0, x1 = max(0, min(x0, x1)), min(width, max(x0, x1))
        y0, y1 = max(0, min(y0, y1)), min(height, max(y0, y1))
        mask[y0:y1, x0:x1] = True
    return mask


def change_map(before_rgb: np.ndarray, after_rgb: np.ndarray,
               scratch_mask: np.ndarray | None = None,
               face_boxes: Sequence[Sequence[float]] = (),
               threshold: int = CHANGE_THRESHOLD) -> tuple[np.ndarray, dict[str, Any]]:
    """A change-map preview and its statistics.

    Args:
        before_rgb: the photo the restoration started from (uint8 H×W×3).
        after_rgb: the final result, same size.
        scratch_mask: uint8 H×W, non-zero where scratches were detected and repaired, or None
            (resized to the photo with nearest neighbour when its size differs).
        face_boxes: (x0, y0, x1, y1) of every replaced face region, in pixels of the photo.
        threshold: see :data:`CHANGE_THRESHOLD`.

    Returns:
        (preview uint8 H×W×3, stats) with stats ``changed_fraction``, ``mean_abs_change`` and
        ``max_abs_change`` (8-bit levels), ``scratch_area_fraction``, ``face_area_fraction``,
        ``faces`` and ``threshold``.
    """
    import cv2

    _check(before_rgb, after_rgb)
    height, width = after_rgb.shape[:2]
    delta = np.abs(after_rgb.astype(np.int16) - before_rgb.astype(np.int16)).max(axis=2)
    changed = delta > threshold
    scratches = np.zeros((height, width), bool)
    if scratch_mask is not None:
        if scratch_mask.shape != (height, width):
            scratch_mask = cv2.resize(scratch_mask, (width, height),
                                      interpolation=cv2.INTER_NEAREST)
        scratches = scratch_mask > 0
    faces = _face_mask((height, width), face_boxes)

    grey = cv2.cvtColor(after_rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) * 0.45
    preview = np.repeat(grey[:, :, None], 3, axis=2)
    # Heat: red for any change above the threshold, turning yellow as it grows.
    strength = np.clip(delta.astype(np.float32) / 64.0, 0.0, 1.0)[:, :, None] * changed[:, :, None]
    heat = np.stack([np.full_like(grey, 255.0), np.clip(delta * 2.0, 0, 255).astype(np.float32),
                     np.zeros_like(grey)], axis=2)
    preview = preview * (1.0 - strength) + heat * strength
    if scratches.any():
        tint = np.array(SCRATCH_COLOUR, np.float32)
        preview[scratches] = preview[scratches] * 0.6 + tint * 0.4
        edge = scratches & ~cv2.erode(scratches.astype(np.uint8), np.ones((3, 3), np.uint8)
                                      ).astype(bool)
        preview[edge] = tint
    preview = np.rint(np.clip(preview, 0, 255)).astype(np.uint8)
    thickness = max(1, round(max(height, width) / 400))
    for box in face_boxes:
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        cv2.rectangle(preview, (x0, y0), (x1 - 1, y1 - 1), FACE_COLOUR, thickness)

    pixels = float(height * width)
    stats = {
        "changed_fraction": round(float(changed.sum()) / pixels, 6),
        "mean_abs_change": round(float(delta.mean()), 4),
        "max_abs_change": int(delta.max()) if delta.size else 0,
        "scratch_area_fraction": round(float(scratches.sum()) / pixels, 6),
        "face_area_fraction": round(float(faces.sum()) / pixels, 6),
        "faces": len(face_boxes),
        "threshold": int(threshold),
    }
    return preview, stats


def replaced_face_boxes(record: Mapping[str, Any],
                        size: tuple[int, int]) -> list[tuple[float, float, float, float]]:
    """The regions the blended faces replaced, as (x0, y0, x1, y1) boxes in a ``size`` (w, h) image.

    Each face of the stage-2 record (``faces.json``) is pasted back through its ``face_to_photo``
    matrix (aligned face -> photo, the matrix stage 4 warps with; records of earlier versions
    call it ``matrix``, :func:`oldphoto.faces.face_matrix`); its box is the bounding box of the
    warped ``face_size``-square, clipped to the photo, then scaled from the record's photo size
    (``record["image"]``) to ``size`` (the final output may have another size).
    """
    from oldphoto.faces import face_matrix

    faces = record.get("faces") or []
    if not faces:
        return []
    side = float(record["face_size"])
    source_w, source_h = float(record["image"]["width"]), float(record["image"]["height"])
    scale_x, scale_y = size[0] / source_w, size[1] / source_h
    corners = np.array([[0, 0, 1], [side, 0, 1], [0, side, 1], [side, side, 1]], np.float64)
    boxes = []
    for face in faces:
        face_to_photo = face_matrix(face, "face_to_photo")[:2]
        points = corners @ face_to_photo.T
        x0, y0 = np.clip(points.min(axis=0), 0, [source_w, source_h])
        x1, y1 = np.clip(points.max(axis=0), 0, [source_w, source_h])
        boxes.append((float(x0 * scale_x), float(y0 * scale_y), float(x1 * scale_x),
                      float(y1 * scale_y)))
    return boxes
