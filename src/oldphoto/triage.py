"""Automatic triage (``with_scratch: auto``): does a photo take the scratch path?

The scratch detector of the run's backend (the U-Net of ``oldphoto.scratch`` or
``oldphoto.classical.detect_scratches``) marks the photo; :func:`scratch_decision` reads the mask
and decides with one rule:

1. **Coverage.**  A mask covering more than :data:`MAX_COVERAGE` of the photo does not mark
   scratches (a scratch is thin): the detector failed on this photo, so no scratch path.  With
   the recipe (non-official) U-Net weights every mask lands here: they mark ~99 % of the pixels.
2. **Line structure.**  Each 8-connected component of the mask is skeletonised (one-pixel
   centre line, ``skimage.morphology.skeletonize``).  A component is a *line* when its skeleton
   is at least :data:`MIN_LINE_LENGTH` of the image diagonal long, its mean width (area over
   skeleton length) is at most ``max(MAX_WIDTH_PX, MAX_WIDTH_FRACTION × diagonal)`` and its
   skeleton is at least :data:`MIN_ELONGATION` times longer than it is wide.  Blobs, specks and
   filled regions are not lines.
3. **Amount.**  ``line_score`` = total skeleton length of the line components over the image
   diagonal ("how many diagonals of scratch").  The photo takes the scratch path when
   ``line_score ≥`` :data:`MIN_LINE_SCORE`.

The thresholds were set by measuring the classical detector's masks on the 12 bundled samples and
on generated clean and scratched photos (``bench/triage.py``, one seed; the accuracy reported in
``bench/results/triage.md`` is on those samples and on other seeds).  A scan at any resolution
gives the same figures: lengths are relative to the diagonal.

The decision only picks the path: a photo decided ``auto`` → scratched is then restored exactly
as with ``with_scratch: true`` (the mask used is the same detector's), and ``auto`` → clean
exactly as with ``false``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: Masks covering more than this fraction of the photo are detector failures, not scratches.
MAX_COVERAGE = 0.25
#: A line component's skeleton is at least this fraction of the image diagonal long ...
MIN_LINE_LENGTH = 0.05
#: ... its mean width at most max(MAX_WIDTH_PX, MAX_WIDTH_FRACTION × diagonal) px ...
MAX_WIDTH_PX = 8.0
MAX_WIDTH_FRACTION = 0.005
#: ... and its skeleton at least this many times longer than its mean width.
MIN_ELONGATION = 8.0
#: Scratch path when the line components' skeletons total this many image diagonals.
MIN_LINE_SCORE = 0.3


@dataclass(frozen=True)
class TriageDecision:
    """The triage of one photo.

    Attributes:
        with_scratch: take the scratch path.
        coverage: fraction of the photo's pixels the mask marks.
        line_score: total skeleton length of the mask's line components / image diagonal
            (0.0 when the coverage rule decided).
        components: 8-connected components of the mask.
        reason: one sentence, with the figures and the thresholds that decided.
    """

    with_scratch: bool
    coverage: float
    line_score: float
    components: int
    reason: str

    def record(self) -> dict[str, Any]:
        """JSON-able form, for run_summary.json, the per-photo sidecar and the report."""
        return asdict(self)


def scratch_decision(mask: np.ndarray) -> TriageDecision:
    """Decide the scratch path from a scratch mask (uint8 H×W, 255 = scratch; any non-zero
    counts).  See the module docstring for the rule."""
    import cv2
    from skimage.morphology import skeletonize

    marked = np.asarray(mask)
    if marked.ndim != 2 or marked.size == 0:
        raise ValueError(f"expected a non-empty H×W scratch mask, got shape {marked.shape}")
    marked = marked != 0
    coverage = float(marked.mean())
    count, labels = cv2.connectedComponents(marked.astype(np.uint8), connectivity=8)
    components = int(count - 1)
    if coverage > MAX_COVERAGE:
        return TriageDecision(
            False, coverage, 0.0, components,
            f"the mask covers {coverage:.1%} of the photo (> {MAX_COVERAGE:.0%}): it does not "
            "mark thin scratches, so the detector's mask is not used; no scratch path")
    diagonal = float(np.hypot(*marked.shape))
    line_score = 0.0
    lines = 0
    if components:
        skeleton = skeletonize(marked)
        length = np.bincount(labels[skeleton], minlength=count).astype(np.float64)
        area = np.bincount(labels.ravel(), minlength=count).astype(np.float64)
        width = area / np.maximum(length, 1.0)
        max_width = max(MAX_WIDTH_PX, MAX_WIDTH_FRACTION * diagonal)
        is_line = ((length >= MIN_LINE_LENGTH * diagonal) & (width <= max_width)
                   & (length >= MIN_ELONGATION * width))
        is_line[0] = False
        lines = int(is_line.sum())
        line_score = float(length[is_line].sum() / diagonal)
    decided = line_score >= MIN_LINE_SCORE
    reason = (f"{lines} line-like of {components} component(s), {line_score:.3f} diagonals of "
              f"scratch line ({'≥' if decided else '<'} {MIN_LINE_SCORE}), coverage "
              f"{coverage:.2%}: {'scratch path' if decided else 'no scratch path'}")
    return TriageDecision(bool(decided), coverage, line_score, components, reason)
