"""Scratch detection glue (oldphoto.scratch) against the official goldens.

The goldens in tests/data/pipeline/stage1/scratch_detection*/ were made by the official
Global/detection.py (``--input_size full_size``) with the fake U-Net of
docs/reference_facts.md#golden-data, ``logits = 12*(x − 0.6)`` (the constant 5.0 for the all-ones case).  Sizes, the detection-sized
RGB image, the U-Net input and the masks are compared bit-exactly; the probabilities with the
facts' tolerance for float intermediates (atol 1e-5).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from oldphoto import scratch
from oldphoto.errors import BadImageError

DATA = Path(__file__).parents[1] / "data" / "pipeline" / "stage1"
STEMS = ["old_h", "scratch_c", "scratch_d"]


def fake_unet(x: torch.Tensor) -> torch.Tensor:
    """The goldens' fake scratch U-Net (docs/reference_facts.md#golden-data)."""
    return 12 * (x - 0.6)


def all_scratch_unet(x: torch.Tensor) -> torch.Tensor:
    """The fake of scratch_detection_allones: constant logits 5.0, P ≈ 0.9933 everywhere."""
    return torch.full_like(x, 5.0)


def read_png(relative: str, mode: str | None = "RGB") -> np.ndarray:
    with Image.open(DATA / relative) as image:
        return np.asarray(image.convert(mode) if mode else image)


def assert_identical(ours: np.ndarray, golden: np.ndarray) -> None:
    assert ours.shape == golden.shape
    assert ours.dtype == golden.dtype
    assert int(np.count_nonzero(ours != golden)) == 0


# ---------------------------------------------------------------------------------------------
# Geometry


def test_detection_size_examples():
    assert scratch.detection_size(372, 524) == (368, 528)
    assert scratch.detection_size(40, 24) == (32, 32)  # 2.5 → 2, 1.5 → 2
    assert scratch.detection_size(256, 336) == (256, 336)
    assert scratch.detection_size(9, 9) == (16, 16)  # the smallest photo: 9/16 rounds to 1


@pytest.mark.parametrize("size", [(8, 100), (100, 8), (3, 3)])
def test_too_small_for_detection(size):
    with pytest.raises(BadImageError) as error:
        scratch.detection_size(*size)
    assert error.value.path is None
    assert "image too small" in error.value.reason
    with pytest.raises(BadImageError):
        scratch.detect_scratches(np.zeros((size[1], size[0], 3), np.uint8), fake_unet)


def test_network_size_examples():
    # (h, w) in, (h, w) out: short side 256, long side rounded to a multiple of 16.
    assert scratch.network_size(528, 368) == (368, 256)
    assert scratch.network_size(336, 256) == (336, 256)
    assert scratch.network_size(256, 400) == (256, 400)
    assert scratch.network_size(32, 32) == (256, 256)


# ---------------------------------------------------------------------------------------------
# Against the goldens


@pytest.mark.parametrize("stem", STEMS)
def test_detection_matches_golden(stem):
    rgb = read_png(f"inputs/{stem}.png")
    seen = {}

    def recording_unet(x):
        seen["x"] = x
        return fake_unet(x)

    rgb16, mask = scratch.detect_scratches(rgb, recording_unet, "cpu")
    assert_identical(rgb16, read_png(f"scratch_detection/masks/input/{stem}.png"))
    assert_identical(seen["x"].numpy(),
                     np.load(DATA / f"scratch_detection/unet_io/{stem}_unet_input.npy"))
    # The official mask file is an RGB PNG with the mask in every channel.
    golden_file = read_png(f"scratch_detection/masks/mask/{stem}.png", mode=None)
    assert_identical(scratch.mask_to_rgb(mask), golden_file)
    assert_identical(scratch.mask_from_file_array(golden_file), mask)
    assert mask.shape == rgb16.shape[:2] and set(np.unique(mask)) == {0, 255}


@pytest.mark.parametrize("stem", STEMS)
def test_probability_matches_golden(stem):
    _, probability = scratch.scratch_probability(read_png(f"inputs/{stem}.png"), fake_unet)
    golden = np.load(DATA / f"scratch_detection/unet_io/{stem}_prob.npy")
    assert probability.shape == golden.shape
    np.testing.assert_allclose(probability.numpy(), golden, rtol=0, atol=1e-5)


def test_all_scratch_photo_keeps_its_mask():
    """Bug B1 fixed on purpose: the official file for an all-scratch photo is all zeros.

    (docs/reference_facts.md#b1-an-all-scratch-mask-is-saved-as-all-zeros)

    The official detection saves the mask through save_image(normalize=True); the min/max
    stretch of a constant all-ones mask divides 0 by 1e-5 and writes 0 everywhere, i.e. "no
    scratch at all".  oldphoto writes 255·mask directly, so the mask stays all scratch.  The
    inputs of the mask (resized photo, U-Net input, probabilities) still match the golden.
    """
    rgb = read_png("inputs/tiny40x24.png")
    golden = "scratch_detection_allones"
    rgb16, grey = scratch.detection_input(rgb)
    assert_identical(rgb16, read_png(f"{golden}/masks/input/tiny40x24.png"))
    assert_identical(scratch.unet_input(grey).numpy(),
                     np.load(DATA / f"{golden}/unet_io/tiny40x24_unet_input.npy"))
    _, probability = scratch.scratch_probability(rgb, all_scratch_unet)
    np.testing.assert_allclose(probability.numpy(),
                               np.load(DATA / f"{golden}/unet_io/tiny40x24_prob.npy"),
                               rtol=0, atol=1e-5)

    _, mask = scratch.detect_scratches(rgb, all_scratch_unet)
    assert mask.shape == (32, 32)
    assert (mask == 255).all()
    official_file = read_png(f"{golden}/masks/mask/tiny40x24.png", mode=None)
    assert official_file.shape == (32, 32, 3) and not official_file.any()


def test_all_clear_photo_gives_an_empty_mask():
    rgb = read_png("inputs/tiny40x24.png")
    _, mask = scratch.detect_scratches(rgb, lambda x: torch.full_like(x, -5.0))
    assert mask.shape == (32, 32) and not mask.any()


# ---------------------------------------------------------------------------------------------
# Post-processing rules


def test_probability_resize_is_legacy_nearest():
    probability = torch.tensor([[[[0.0, 1.0]]]])
    # Legacy nearest: source index floor(dst·2/3) = 0, 0, 1.  (Pixel-centre nearest, as PIL's,
    # would give 0, 1, 1.)
    assert scratch.probability_to_mask(probability, 1, 3).tolist() == [[0, 0, 255]]


def test_threshold_is_inclusive():
    probability = torch.tensor([[[[0.39999, 0.4, 0.41]]]])
    assert scratch.probability_to_mask(probability, 1, 3).tolist() == [[0, 255, 255]]


def test_mask_file_round_trip():
    mask = np.array([[0, 255], [255, 0]], np.uint8)
    rgb = scratch.mask_to_rgb(mask)
    assert rgb.shape == (2, 2, 3) and (rgb == mask[:, :, None]).all()
    assert_identical(scratch.mask_from_file_array(rgb), mask)
    assert_identical(scratch.mask_from_file_array(mask), mask)
    rgba = np.dstack([rgb, np.full((2, 2), 255, np.uint8)])
    assert_identical(scratch.mask_from_file_array(rgba), mask)
    # Channel 0 decides, as the network mask of the official restoration.
    other = np.zeros((1, 2, 3), np.uint8)
    other[0, 0, 0] = 1
    other[0, 1, 1] = 255
    assert scratch.mask_from_file_array(other).tolist() == [[255, 0]]
