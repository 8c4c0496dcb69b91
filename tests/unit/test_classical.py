"""Classical backend (oldphoto.classical) and synthetic degradations (oldphoto.testing.degrade).

The quality targets are asserted with the benchmark's own code (bench/quality.py) on a small,
fixed subset: three bundled scikit-image photos downscaled to 256 px, every degradation once.
"""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, SAMPLES
from oldphoto import classical
from oldphoto.testing.degrade import KINDS, degrade, draw_params, jpeg, normalise_kinds


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_quality", REPO / "bench" / "quality.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


quality = _load_bench()


@pytest.fixture(scope="module")
def clean():
    """The bench's small subset: three clean photos (colour, grey, colour), 256 px long side."""
    return {name: quality.load_clean(name, 256) for name in quality.SMALL_IMAGES}


@pytest.fixture(scope="module")
def scratched_sample():
    with Image.open(SAMPLES / "old_w_scratch" / "a.png") as im:
        return np.asarray(im.convert("RGB")).copy()


def assert_mask(mask: np.ndarray, shape: tuple[int, int]) -> None:
    assert mask.dtype == np.uint8
    assert mask.shape == shape
    assert set(np.unique(mask)) <= {0, 255}


# ---------------------------------------------------------------------------------------------
# The quality targets


def test_quality_targets_on_small_subset(clean):
    summary = quality.run(tuple(clean), max_side=256)
    assert len(summary.rows) == len(clean) * len(quality.DEGRADATIONS)
    checks = summary.checks()
    report = quality.markdown(summary)
    assert checks["mean PSNR gain (dB)"][0] >= quality.TARGETS["psnr_gain"], report
    assert checks["mean SSIM gain"][0] >= quality.TARGETS["ssim_gain"], report
    assert checks["scratch F1"][0] >= quality.TARGETS["f1"], report
    assert checks["worst PSNR gain (dB)"][0] >= quality.TARGETS["worst_psnr_gain"], report
    assert summary.passed
    # each degradation family is helped on average, not just the easy ones
    for degradation in quality.DEGRADATIONS:
        rows = [r for r in summary.rows if r.degradation == degradation]
        assert np.mean([r.psnr_gain for r in rows]) > 0, (degradation, report)


def test_tolerant_mask_counts():
    truth = np.zeros((20, 20), np.uint8)
    truth[10, 2:18] = 255
    shifted = np.roll(truth, 2, axis=0)  # 2 px off: inside the tolerance
    far = np.roll(truth, 5, axis=0)
    counts = quality.mask_counts(shifted, truth)
    assert counts.precision == 1.0 and counts.recall == 1.0
    counts = quality.mask_counts(far, truth)
    assert counts.precision == 0.0 and counts.recall == 0.0
    assert quality.mask_counts(np.zeros_like(truth), truth).f1 == 0.0


# ---------------------------------------------------------------------------------------------
# Scratch detection


def test_masks_are_binary_and_sized(clean):
    for image in clean.values():
        degraded, _ = degrade(image, "old", seed=3)
        assert_mask(classical.detect_scratches(degraded), image.shape[:2])


def test_clean_photos_get_a_small_mask(clean):
    for name in quality.FULL_IMAGES:
        image = quality.load_clean(name, 256) if name not in clean else clean[name]
        mask = classical.detect_scratches(image)
        assert (mask > 0).mean() < 0.02, name


def test_drawn_scratches_are_found(clean):
    degraded, truth = degrade(clean["camera"], "old", seed=11)
    counts = quality.mask_counts(classical.detect_scratches(degraded), truth)
    assert counts.truth > 0
    assert counts.recall > 0.5 and counts.precision > 0.5


def test_real_scratched_sample(scratched_sample):
    """No golden mask: the obvious white crack right of the face must be covered."""
    mask = classical.detect_scratches(scratched_sample)
    assert_mask(mask, scratched_sample.shape[:2])
    share = (mask > 0).mean()
    assert 0.0005 < share < 0.05
    crack = mask[235:275, 398:456]  # the bright crack at x 400-455, y 238-272
    assert (crack > 0).sum() > 150
    # and the face itself is left alone
    assert not mask[180:330, 200:360].any()


def test_grey_and_rgba_inputs(clean):
    grey = clean["camera"][:, :, 0]
    assert_mask(classical.detect_scratches(grey), grey.shape)
    restored = classical.restore(grey, None)
    assert restored.shape == grey.shape + (3,) and restored.dtype == np.uint8
    # a grey photo stays grey
    assert np.abs(restored.astype(int) - restored[:, :, :1]).max() <= 2
    rgba = np.dstack([clean["astronaut"], np.full(clean["astronaut"].shape[:2], 255, np.uint8)])
    assert classical.restore(rgba, None).shape == clean["astronaut"].shape


def test_tiny_and_flat_images():
    for image in (np.zeros((5, 7, 3), np.uint8), np.full((40, 30, 3), 128, np.uint8)):
        assert_mask(classical.detect_scratches(image), image.shape[:2])
        assert classical.restore(image, None).shape == image.shape
        assert classical.enhance_face(image).shape == image.shape


def test_wrong_inputs_are_refused(clean):
    with pytest.raises(TypeError):
        classical.detect_scratches(clean["camera"].astype(np.float32))
    with pytest.raises(ValueError):
        classical.restore(clean["camera"], np.zeros((3, 3), np.uint8))


# ---------------------------------------------------------------------------------------------
# Restoration


def test_restore_is_deterministic(clean):
    degraded, _ = degrade(clean["coffee"], "old", seed=5)
    mask = classical.detect_scratches(degraded)
    assert np.array_equal(mask, classical.detect_scratches(degraded.copy()))
    first = classical.restore(degraded, mask)
    assert np.array_equal(first, classical.restore(degraded.copy(), mask.copy()))


def test_restore_leaves_a_clean_photo_alone(clean):
    for image in clean.values():
        assert np.array_equal(classical.restore(image, None), image)


def test_inpainting_removes_drawn_scratches(clean):
    image = clean["astronaut"]
    scratched, truth = degrade(image, "scratch", seed=2)
    inpainted = classical.inpaint_scratches(scratched, truth)
    err_before = np.abs(scratched.astype(int) - image)[truth > 0].mean()
    err_after = np.abs(inpainted.astype(int) - image)[truth > 0].mean()
    assert err_after < 0.5 * err_before
    assert np.array_equal(classical.inpaint_scratches(image, np.zeros_like(truth)), image)


def test_noise_estimate_and_denoise(clean):
    image = clean["coffee"]
    for sigma in (8.0, 15.0):
        noisy, _ = degrade(image, "noise", seed=0, params={"noise_sigma": sigma})
        assert abs(classical.estimate_noise(noisy) - sigma) < 0.35 * sigma
    assert classical.estimate_noise(clean["camera"]) < 4.0


def test_jpeg_quality_estimate(clean):
    for q in (15, 25, 40):
        estimate = classical.estimate_jpeg_quality(jpeg(clean["astronaut"], q))
        assert estimate is not None and abs(estimate - q) <= 6, (q, estimate)
    assert classical.estimate_jpeg_quality(clean["astronaut"]) is None


def test_defade_undoes_fading_and_cast(clean):
    image = clean["astronaut"]
    faded, _ = degrade(image, "fade", seed=1)
    restored, info = classical.defade(faded)
    assert info["fade"] > 0.9 and info["gain"] > 1.3
    assert np.abs(restored.astype(int) - image).mean() < 0.5 * np.abs(faded.astype(int) - image).mean()
    # the sepia cast (blue pushed below red) is reduced towards the photo's own balance
    def red_minus_blue(x):
        r, _, b = x.reshape(-1, 3).astype(float).mean(axis=0)
        return r - b

    own = red_minus_blue(image)
    assert abs(red_minus_blue(restored) - own) < 0.7 * abs(red_minus_blue(faded) - own)


def test_toned_monochrome_is_neutralised():
    grey = np.tile(np.linspace(10, 245, 128, dtype=np.float32), (64, 1))
    sepia = np.clip(np.stack([grey * 1.0, grey * 0.85, grey * 0.6], axis=2), 0, 255)
    sepia = sepia.astype(np.uint8)
    assert classical.tint_strength(sepia) == 1.0
    restored, info = classical.defade(sepia)
    spread_before = np.ptp(sepia.astype(int), axis=2).mean()
    spread_after = np.ptp(restored.astype(int), axis=2).mean()
    assert spread_after < 0.3 * spread_before


def test_sharpening_follows_blur(clean):
    image = clean["camera"]
    blurred, _ = degrade(image, "blur", seed=0, params={"blur_sigma": 1.6})
    assert classical.sharpen_amount(image) == 0.0
    assert classical.sharpen_amount(blurred) > 0.5


def test_large_image_runs(clean):
    big = np.asarray(Image.fromarray(clean["astronaut"]).resize((600, 600), Image.BICUBIC))
    degraded, _ = degrade(big, "old", seed=9)
    out = classical.restore(degraded, classical.detect_scratches(degraded))
    assert out.shape == big.shape and out.dtype == np.uint8


# ---------------------------------------------------------------------------------------------
# Faces


def test_enhance_face():
    with Image.open(SAMPLES / "old" / "a.png") as im:
        crop = im.convert("RGB").crop((74, 114, 254, 294))
    for size in (256, 512):
        face = np.asarray(crop.resize((size, size), Image.BICUBIC))
        enhanced = classical.enhance_face(face)
        assert enhanced.shape == face.shape and enhanced.dtype == np.uint8
        assert np.array_equal(enhanced, classical.enhance_face(face.copy()))
        difference = np.abs(enhanced.astype(int) - face)
        assert 1.0 < difference.mean() < 30.0  # it does something, and stays the same face


# ---------------------------------------------------------------------------------------------
# Metadata and degradations


def test_describe_is_json_metadata():
    info = classical.describe()
    assert info["version"] == classical.CLASSICAL_VERSION
    assert set(info) >= {"detect_scratches", "restore", "enhance_face"}
    json.dumps(info)


def test_degrade_is_seeded(clean):
    image = clean["astronaut"]
    a, mask_a = degrade(image, "old", seed=4)
    b, mask_b = degrade(image, "old", seed=4)
    c, _ = degrade(image, "old", seed=5)
    assert np.array_equal(a, b) and np.array_equal(mask_a, mask_b)
    assert not np.array_equal(a, c)
    assert_mask(mask_a, image.shape[:2])
    assert mask_a.any()


def test_degrade_kinds(clean):
    image = clean["camera"]
    assert normalise_kinds("old") == KINDS
    assert normalise_kinds("jpeg+noise") == ("noise", "jpeg")
    with pytest.raises(ValueError):
        normalise_kinds("rust")
    for kind in KINDS:
        out, mask = degrade(image, kind, seed=1)
        assert out.shape == image.shape and out.dtype == np.uint8
        assert not np.array_equal(out, image), kind
        assert mask.any() == (kind == "scratch")
    # the scratch mask marks exactly pixels that changed visibly
    out, mask = degrade(image, "scratch", seed=1)
    changed = np.abs(out.astype(int) - image).max(axis=2)
    assert changed[mask > 0].min() >= 12
    # strengths come from the documented ranges
    params = draw_params(KINDS, 1)
    assert 8 <= params["noise_sigma"] <= 20 and 15 <= params["jpeg_quality"] <= 30
    assert 0.55 <= params["fade_contrast"] <= 0.65 and 1.0 <= params["blur_sigma"] <= 1.8
