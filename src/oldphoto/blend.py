"""Stage 4: paste enhanced faces back into the photo, bit-exact with the official
``align_warp_back_multiple_dlib(_HR).py`` (docs/reference_facts.md#warp-back-and-blending),
with three deliberate changes (the bug numbers are those of
docs/reference_facts.md#official-behaviour-that-looks-like-a-bug):

* **No re-detection (B13, docs/reference_facts.md#b13-stage-4-re-detects-faces).** The
  similarity matrix of every face comes from the stage-2 record; the official script re-detects
  and pairs crops by index, which gives the same matrices.
* **B11 fix** (docs/reference_facts.md#b11-the-warp-back-crashes-on-scikit-image-019-and-later).
  The back-warp of the forward mask runs on a float copy, as skimage 0.18 did; the official
  script crashes on skimage ≥ 0.19 (uint8 ``mask *= 255.0``). Nothing else changes.
* **A missing enhanced face** (B5,
  docs/reference_facts.md#b5-a-missing-enhanced-face-aborts-stage-4) keeps that face unenhanced
  and yields a note, instead of aborting the whole image.

Per face, in detector order (later faces are drawn over earlier ones), with ``T`` the stage-2
matrix (aligned → image) and ``image`` the photo *before* any face was pasted:

1. histogram reference = ``warp(image, T)`` bilinear in [0, 255], **truncated** to uint8
   (B12, docs/reference_facts.md#b12-rounding-is-inconsistent);
2. forward mask = ``warp(ones, T)`` nearest: where the S×S crop samples inside the image;
3. the enhanced face is histogram-matched to the reference, per channel (CDF look-up table,
   black border pixels included in the counts, B14,
   docs/reference_facts.md#b14-the-blend-mask-is-the-square-crop-footprint);
4. warped back with ``warp(matched, T⁻¹)`` bicubic (skimage Catmull-Rom, a = −0.5);
5. the back-warped forward mask (nearest) is eroded and Gaussian-blurred into a soft mask;
6. ``canvas = clip((warped·m + (1 − m)·canvas)/255, 0, 1)·255`` in float64.

The result is saved as ``img_as_ubyte(canvas/255)`` (round half to even).

Blending modes (``blending``):

* ``"official"`` (default): erosion 9×9 three times (= one 25×25) and a 25×25 Gaussian (σ = 4.1),
  fixed in image pixels whatever the face size.
* ``"adaptive"`` (facexlib-style, our improvement): the seam scales with the face.  With
  ``side = S·sqrt(|det T₂ₓ₂|)`` the side of the crop footprint in image pixels and
  ``edge = max(1, floor(side) // 20)``, the mask is eroded once by a square of ``2·edge + 1`` and
  blurred by a ``(2·edge + 1)²`` Gaussian with OpenCV's default σ.  A 256-px footprint gives
  ``edge = 12``: 25 and 25, the official mask exactly.  Small faces keep more of the enhanced
  face; large faces (HR, big photos) get a proportionally wide, invisible seam.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

BLENDINGS = ("official", "adaptive")
#: The official erosion (a 9×9 square applied 3 times) and Gaussian kernel, in image pixels.
OFFICIAL_ERODE_KERNEL, OFFICIAL_ERODE_ITERATIONS, OFFICIAL_BLUR_KERNEL = 9, 3, 25
#: Adaptive blending: edge width = footprint side // ADAPTIVE_EDGE_DIVISOR (facexlib's 20).
ADAPTIVE_EDGE_DIVISOR = 20


@dataclass(frozen=True)
class MaskKernels:
    """How the back-warped footprint becomes the soft blend mask: ``erode_size``×``erode_size``
    square erosion applied ``erode_iterations`` times, then a ``blur_size``² Gaussian (σ from
    OpenCV's rule for sigma 0)."""

    erode_size: int
    erode_iterations: int
    blur_size: int


@dataclass(frozen=True)
class WarpedFace:
    """One face warped back into the photo, with the official intermediates.

    ``reference``: aligned crop of the photo truncated to uint8 (histogram reference);
    ``forward_mask``: S×S×3 uint8 {0, 1}; ``luts``: (3, 256) uint8 look-up tables in RGB order;
    ``matched``: histogram-matched enhanced face; ``warped_back``: H×W×3 float64 in [0, 255];
    ``backward_mask``: H×W×3 float64 {0, 1} footprint of the crop in the photo.
    """

    reference: np.ndarray
    forward_mask: np.ndarray
    luts: np.ndarray
    matched: np.ndarray
    warped_back: np.ndarray
    backward_mask: np.ndarray


# ---------------------------------------------------------------------------------------------
# Histogram matching


def histogram_luts(source: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per-channel look-up tables (C, 256) uint8 mapping ``source`` values so that their
    histogram follows ``reference``: ``LUT[v]`` = the smallest r with ``cdf_ref[r] ≥ cdf_src[v]``.

    Counts cover every pixel (black crop borders included), CDFs are float64 ``cumsum/total``.
    """
    source, reference = np.asarray(source), np.asarray(reference)
    if source.dtype != np.uint8 or reference.dtype != np.uint8 or source.ndim != 3 \
            or reference.ndim != 3 or source.shape[2] != reference.shape[2]:
        raise ValueError(f"expected uint8 H×W×C images with the same C, got {source.dtype} "
                         f"{source.shape} and {reference.dtype} {reference.shape}")
    luts = np.empty((source.shape[2], 256), dtype=np.uint8)
    for c in range(source.shape[2]):
        cdf_source = _cdf(source[:, :, c])
        cdf_reference = _cdf(reference[:, :, c])
        luts[c] = np.searchsorted(cdf_reference, cdf_source, side="left")
    return luts


def _cdf(channel: np.ndarray) -> np.ndarray:
    counts = np.bincount(channel.ravel(), minlength=256)
    cdf = counts.cumsum()
    return cdf / float(cdf[-1])


# ---------------------------------------------------------------------------------------------
# One face


def warp_face_back(image: np.ndarray, enhanced_face: np.ndarray, matrix: np.ndarray,
                   size: int) -> WarpedFace:
    """Histogram-match ``enhanced_face`` (S×S uint8) to the photo's own crop and warp it back.

    ``image`` is the uint8 photo before any face was pasted; ``matrix`` maps aligned (x, y) to
    image (x, y) (stage 2).
    """
    from skimage.transform import warp

    image = _as_rgb_u8(image, "image")
    enhanced_face = _as_rgb_u8(enhanced_face, "enhanced face")
    if enhanced_face.shape[:2] != (size, size):
        raise ValueError(f"enhanced face is {enhanced_face.shape[1]}×{enhanced_face.shape[0]}, "
                         f"expected {size}×{size}")
    matrix = np.asarray(matrix, dtype=np.float64)
    inverse = np.linalg.inv(matrix)  # what skimage's SimilarityTransform.inverse computes
    height, width = image.shape[:2]

    aligned = warp(image, matrix, output_shape=(size, size, 3), preserve_range=True)
    reference = aligned.astype(np.uint8)  # truncation, unlike stage 2's rounding (B12)
    forward_mask = warp(np.ones_like(image), matrix, output_shape=(size, size, 3), order=0,
                        preserve_range=True)
    luts = histogram_luts(enhanced_face, reference)
    matched = np.stack([luts[c][enhanced_face[:, :, c]] for c in range(3)], axis=2)
    warped_back = warp(matched, inverse, output_shape=(height, width, 3), order=3,
                       preserve_range=True)
    # B11: skimage >= 0.19 keeps uint8 for order 0; warp a float copy as 0.18 did.
    backward_mask = warp(forward_mask.astype(np.float64), inverse,
                         output_shape=(height, width, 3), order=0, preserve_range=True)
    return WarpedFace(reference, forward_mask, luts, matched, warped_back, backward_mask)


def mask_kernels(matrix: np.ndarray, size: int, blending: str = "official") -> MaskKernels:
    """Erosion and blur sizes of the blend mask for one face (see the module docstring)."""
    if blending == "official":
        return MaskKernels(OFFICIAL_ERODE_KERNEL, OFFICIAL_ERODE_ITERATIONS, OFFICIAL_BLUR_KERNEL)
    if blending == "adaptive":
        edge = max(1, int(footprint_side(matrix, size)) // ADAPTIVE_EDGE_DIVISOR)
        return MaskKernels(2 * edge + 1, 1, 2 * edge + 1)
    raise ValueError(f"unknown face blending {blending!r}; expected one of {BLENDINGS}")


def footprint_side(matrix: np.ndarray, size: int) -> float:
    """Side, in image pixels, of the S×S aligned crop's footprint (S × similarity scale)."""
    linear = np.asarray(matrix, dtype=np.float64)[:2, :2]
    return float(size) * float(np.sqrt(abs(np.linalg.det(linear))))


def blend_mask(backward_mask: np.ndarray, kernels: MaskKernels) -> tuple[np.ndarray, np.ndarray]:
    """``(eroded, soft)``: the footprint ×255 eroded (float64, 0/255) and the blurred mask in
    [0, 1] (float64), as the official ``blur_blending_cv2``."""
    import cv2

    scaled = np.asarray(backward_mask, dtype=np.float64) * 255.0
    eroded = cv2.erode(scaled, np.ones((kernels.erode_size, kernels.erode_size), np.uint8),
                       iterations=kernels.erode_iterations)
    soft = cv2.GaussianBlur(eroded, (kernels.blur_size, kernels.blur_size), 0)
    soft /= 255.0
    return eroded, soft


def blend(canvas: np.ndarray, warped_back: np.ndarray, soft_mask: np.ndarray) -> np.ndarray:
    """``clip((warped·m + (1 − m)·canvas)/255, 0, 1)·255`` in float64, in the official order."""
    mixed = warped_back * soft_mask + (1 - soft_mask) * canvas
    mixed /= 255.0
    np.clip(mixed, 0.0, 1.0, out=mixed)
    mixed *= 255.0
    return mixed


def paste_face(canvas: np.ndarray, image: np.ndarray, enhanced_face: np.ndarray,
               matrix: np.ndarray, size: int, blending: str = "official") -> np.ndarray:
    """Paste one enhanced face onto ``canvas`` (the photo so far, uint8 or float64 in
    [0, 255]); ``image`` is the uint8 photo before any face (histogram reference).
    Returns the new float64 canvas."""
    kernels = mask_kernels(matrix, size, blending)
    warped = warp_face_back(image, enhanced_face, matrix, size)
    _, soft = blend_mask(warped.backward_mask, kernels)
    return blend(canvas, warped.warped_back, soft)


# ---------------------------------------------------------------------------------------------
# Whole photo


def paste_faces(image: np.ndarray, faces: Sequence[tuple[np.ndarray, np.ndarray]], size: int,
                blending: str = "official") -> np.ndarray:
    """Paste ``(enhanced_face, matrix)`` pairs in order into ``image`` (uint8 RGB); returns uint8
    saved as the official ``img_as_ubyte(canvas/255)``. No faces → the image unchanged."""
    from skimage import img_as_ubyte

    image = _as_rgb_u8(image, "image")
    if blending not in BLENDINGS:
        raise ValueError(f"unknown face blending {blending!r}; expected one of {BLENDINGS}")
    if not faces:
        return image.copy()
    canvas: np.ndarray = image
    for enhanced_face, matrix in faces:
        canvas = paste_face(canvas, image, enhanced_face, matrix, size, blending)
    return img_as_ubyte(canvas / 255.0)


def paste_faces_from_record(image: np.ndarray, record: Mapping[str, Any],
                            enhanced_faces: Mapping[int, np.ndarray],
                            blending: str = "official") -> tuple[np.ndarray, list[str]]:
    """Stage 4 from the stage-2 record: paste ``enhanced_faces[index]`` at each recorded face.

    Faces without a usable enhanced crop (missing, or not S×S RGB) stay unenhanced; each such
    case, and each crop with no recorded face, is described in the returned notes.  Raises
    ``ValueError`` if the record does not describe this image.
    """
    from oldphoto.faces import faces_from_json

    image = _as_rgb_u8(image, "image")
    size_wh = (int(record["image"]["width"]), int(record["image"]["height"]))
    if size_wh != (image.shape[1], image.shape[0]):
        raise ValueError(f"face record is for a {size_wh[0]}×{size_wh[1]} image, "
                         f"got {image.shape[1]}×{image.shape[0]}")
    size = int(record["face_size"])
    notes: list[str] = []
    pairs = []
    recorded = faces_from_json(record)
    for face in recorded:
        enhanced = enhanced_faces.get(face.index)
        if enhanced is None:
            notes.append(f"face {face.index}: no enhanced crop, kept unenhanced")
            continue
        enhanced = np.asarray(enhanced)
        if enhanced.dtype != np.uint8 or enhanced.shape != (size, size, 3):
            notes.append(f"face {face.index}: enhanced crop is {enhanced.dtype} "
                         f"{enhanced.shape}, expected uint8 ({size}, {size}, 3); kept unenhanced")
            continue
        pairs.append((enhanced, face.face_to_photo))
    for index in sorted(set(enhanced_faces) - {face.index for face in recorded}):
        notes.append(f"enhanced crop {index} has no recorded face, ignored")
    return paste_faces(image, pairs, size, blending), notes


def _as_rgb_u8(array: np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected the {what} as RGB uint8 H×W×3, got {array.dtype} "
                         f"{array.shape}")
    return array
