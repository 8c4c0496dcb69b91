"""The automatic scratch triage (oldphoto.triage) on synthetic masks with a known answer."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from oldphoto import triage

SIZE = (400, 600)  # H, W: diagonal ~721 px
DIAGONAL = float(np.hypot(*SIZE))


def blank() -> np.ndarray:
    return np.zeros(SIZE, np.uint8)


def with_lines(lengths_in_diagonals: list[float], width: int = 2) -> np.ndarray:
    """Horizontal-ish separate lines of the given lengths (fractions of the diagonal)."""
    mask = blank()
    for i, fraction in enumerate(lengths_in_diagonals):
        y = 30 + 40 * i
        length = int(round(fraction * DIAGONAL))
        cv2.line(mask, (10, y), (10 + length, y + length // 10), 255, thickness=width)
    return mask


def test_long_thin_lines_take_the_scratch_path():
    decision = triage.scratch_decision(with_lines([0.4, 0.3], width=2))
    assert decision.with_scratch
    assert decision.components == 2
    assert decision.line_score == pytest.approx(0.7, abs=0.05)  # skeleton ≈ drawn length
    assert 0 < decision.coverage < 0.01
    assert "scratch path" in decision.reason and "no scratch" not in decision.reason


def test_curved_scratches_count_like_straight_ones():
    mask = blank()
    xs = np.arange(20, 580)
    ys = (200 + 80 * np.sin(xs / 60.0)).astype(np.int32)
    cv2.polylines(mask, [np.stack([xs, ys], axis=1).reshape(-1, 1, 2)], False, 255, 3)
    decision = triage.scratch_decision(mask)
    assert decision.with_scratch and decision.line_score > 0.8


def test_empty_mask_is_clean():
    decision = triage.scratch_decision(blank())
    assert not decision.with_scratch
    assert (decision.coverage, decision.line_score, decision.components) == (0.0, 0.0, 0)


def test_blobs_are_not_scratches_however_many():
    mask = blank()
    for i in range(12):  # 12 discs of radius 15: 3 % of the photo, no line among them
        cv2.circle(mask, (40 + 45 * i, 200 + (i % 3) * 50), 15, 255, -1)
    decision = triage.scratch_decision(mask)
    assert not decision.with_scratch
    assert decision.components == 12 and decision.line_score == 0.0
    assert "0 line-like of 12" in decision.reason


def test_wide_bands_are_not_scratches():
    mask = blank()
    cv2.line(mask, (0, 200), (599, 200), 255, thickness=30)  # a fold or a frame edge: 30 px wide
    decision = triage.scratch_decision(mask)
    assert not decision.with_scratch and decision.line_score == 0.0


def test_specks_and_short_lines_stay_below_the_threshold():
    mask = blank()
    rng = np.random.default_rng(0)
    mask[rng.integers(0, 400, 300), rng.integers(0, 600, 300)] = 255  # dust specks
    assert not triage.scratch_decision(mask).with_scratch
    # one short line, under MIN_LINE_SCORE of the diagonal
    short = with_lines([triage.MIN_LINE_SCORE * 0.6])
    decision = triage.scratch_decision(short)
    assert not decision.with_scratch and 0 < decision.line_score < triage.MIN_LINE_SCORE


def test_line_score_threshold_is_the_boundary():
    below = triage.scratch_decision(with_lines([0.14, 0.14]))
    above = triage.scratch_decision(with_lines([0.17, 0.17]))
    assert below.line_score < triage.MIN_LINE_SCORE <= above.line_score
    assert (below.with_scratch, above.with_scratch) == (False, True)


def test_mask_covering_most_of_the_photo_is_a_detector_failure():
    mask = np.full(SIZE, 255, np.uint8)  # what the recipe-weight U-Net marks (~99 %)
    mask[::7, ::5] = 0
    decision = triage.scratch_decision(mask)
    assert not decision.with_scratch and decision.coverage > triage.MAX_COVERAGE
    assert "does not mark thin scratches" in decision.reason


def test_scale_invariant_and_any_nonzero_counts():
    small = with_lines([0.4, 0.3])
    large = cv2.resize(small, (SIZE[1] * 3, SIZE[0] * 3), interpolation=cv2.INTER_NEAREST)
    a, b = triage.scratch_decision(small), triage.scratch_decision(large)
    assert a.with_scratch and b.with_scratch
    assert b.line_score == pytest.approx(a.line_score, rel=0.1)
    ones = (small > 0).astype(np.uint8)
    assert triage.scratch_decision(ones) == a


def test_record_is_json_and_bad_masks_are_refused():
    record = triage.scratch_decision(with_lines([0.5])).record()
    assert json.loads(json.dumps(record)) == record
    assert set(record) == {"with_scratch", "coverage", "line_score", "components", "reason"}
    with pytest.raises(ValueError, match="H×W"):
        triage.scratch_decision(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="H×W"):
        triage.scratch_decision(np.zeros((0, 4), np.uint8))


def test_classical_detector_mask_on_a_drawn_scratch():
    """End to end with the classical detector: a grey gradient with two bright scratches."""
    from oldphoto import classical

    grey = np.tile(np.linspace(60, 160, 480, dtype=np.float32), (320, 1))
    rgb = np.repeat(grey[:, :, None], 3, axis=2).astype(np.uint8)
    clean = triage.scratch_decision(classical.detect_scratches(rgb))
    scratched = rgb.copy()
    cv2.line(scratched, (20, 40), (460, 250), (235, 230, 210), 2)
    cv2.line(scratched, (30, 300), (400, 20), (235, 230, 210), 2)
    decision = triage.scratch_decision(classical.detect_scratches(scratched))
    assert not clean.with_scratch
    assert decision.with_scratch, decision.reason
