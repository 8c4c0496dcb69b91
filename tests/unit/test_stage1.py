"""Stage-1 global restoration glue (oldphoto.restore, oldphoto.tensors) against the goldens.

The goldens in tests/data/pipeline/stage1/ were made by the official Global/test.py with the fake
restoration network of docs/reference_facts.md#golden-data, ``generated = 0.85*tanh(1.7*x) − 0.1``, in place
of the whole encoder → mapping → decoder chain.  Every comparison here is bit-exact (0 differing pixels),
including input_image/ and restored_image/, which pass through the float32 min/max stretch: the
facts allow max |Δ| ≤ 1 on ≤ 0.1 % of pixels there, but this implementation does not need it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from oldphoto import restore
from oldphoto.errors import BadImageError
from oldphoto.tensors import clamp_to_uint8, normalise, official_stretch, to_network, to_tensor

DATA = Path(__file__).parents[1] / "data" / "pipeline" / "stage1"
QUALITY_STEMS = ["old_a", "g_crop303x206"]
SCRATCH_STEMS = ["old_h", "scratch_c", "scratch_d"]
MODE_FOLDERS = {"Full": "stage1_full", "Scale": "stage1_scale", "Crop": "stage1_crop"}


def fake_generator(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The goldens' fake for the whole network chain (docs/reference_facts.md#golden-data)."""
    return 0.85 * torch.tanh(1.7 * x) - 0.1


def read_rgb(relative: str) -> np.ndarray:
    """A golden PNG loaded the official way, ``Image.open().convert("RGB")``."""
    with Image.open(DATA / relative) as image:
        return np.asarray(image.convert("RGB"))


def read_mask(relative: str) -> np.ndarray:
    from oldphoto.scratch import mask_from_file_array

    with Image.open(DATA / relative) as image:
        return mask_from_file_array(np.asarray(image))


def assert_identical(ours: np.ndarray, golden: np.ndarray) -> None:
    assert ours.shape == golden.shape
    assert ours.dtype == golden.dtype
    differing = int(np.count_nonzero(ours != golden))
    assert differing == 0, f"{differing} differing values, max |Δ| " \
                           f"{np.abs(ours.astype(np.float64) - golden).max()}"


def test_golden_copies_match_manifest():
    manifest = json.loads((DATA / "MANIFEST.json").read_text())
    for relative, entry in manifest.items():
        digest = hashlib.sha256((DATA / relative).read_bytes()).hexdigest()
        assert digest == entry["sha256"], relative


# ---------------------------------------------------------------------------------------------
# Geometry


def test_round_half_to_even_examples():
    # 298/4 = 74.5 → 74, 450/4 = 112.5 → 112; 303/4 = 75.75 → 76, 206/4 = 51.5 → 52.
    assert restore.full_size(298, 450) == (296, 448)
    assert restore.full_size(303, 206) == (304, 208)
    assert restore.full_size(10, 14) == (8, 16)  # 2.5 → 2, 3.5 → 4
    assert restore.full_size(296, 448) == (296, 448)


def test_scale_and_crop_geometry_examples():
    assert restore.scale_size(298, 450) == (256, 388)
    assert restore.scale_size(303, 206) == (376, 256)
    assert restore.scale_size(300, 300) == (256, 256)
    assert restore.crop_resize_size(298, 450) == (298, 450)
    assert restore.crop_box(298, 450) == (21, 97, 277, 353)
    # B10 fixed (docs/reference_facts.md#b10-crop-mode-crashes-on-small-photos):
    # short side < 256 → short side 256, long side int(256*303/206) = 376.
    assert restore.crop_resize_size(303, 206) == (376, 256)
    assert restore.crop_box(303, 206) == (60, 0, 316, 256)
    assert restore.crop_resize_size(100, 1000) == (256, 2560)


@pytest.mark.parametrize("mode", ["Full", "Scale", "Crop"])
@pytest.mark.parametrize("stem", QUALITY_STEMS)
def test_geometry_matches_golden_sizes(mode, stem):
    height, width = read_rgb(f"inputs/{stem}.png").shape[:2]
    size, box = restore.quality_geometry(width, height, mode)
    golden_h, golden_w = read_rgb(f"{MODE_FOLDERS[mode]}/origin/{stem}.png").shape[:2]
    if box is None:
        assert size == (golden_w, golden_h)
    else:
        assert (box[2] - box[0], box[3] - box[1]) == (golden_w, golden_h)


def test_unknown_mode_and_stretch_are_rejected():
    with pytest.raises(ValueError):
        restore.quality_geometry(100, 100, "full")
    with pytest.raises(ValueError):
        restore.save_restored(torch.zeros(1, 3, 4, 4), "none")


@pytest.mark.parametrize("size", [(2, 450), (450, 1), (2, 2)])
def test_too_small_for_full_mode(size):
    with pytest.raises(BadImageError) as error:
        restore.full_size(*size)
    assert error.value.path is None
    assert "image too small" in error.value.reason
    rgb = np.zeros((size[1], size[0], 3), np.uint8)
    with pytest.raises(BadImageError):
        restore.restore_image(rgb, fake_generator)


def test_smallest_full_mode_image():
    assert restore.full_size(3, 3) == (4, 4)
    rgb = np.full((3, 3, 3), 100, np.uint8)
    assert restore.prepare_quality_input(rgb, "Full").shape == (4, 4, 3)
    # Scale and Crop bring the short side to 256 and accept any non-empty image.
    assert restore.prepare_quality_input(rgb, "Scale").shape == (256, 256, 3)
    assert restore.prepare_quality_input(rgb, "Crop").shape == (256, 256, 3)


# ---------------------------------------------------------------------------------------------
# Tensor helpers


def test_to_tensor_and_normalise():
    image = np.array([[0, 128, 255]], np.uint8)
    grey = to_tensor(image)
    assert grey.shape == (1, 1, 1, 3) and grey.dtype == torch.float32
    expected = (torch.tensor([0, 128, 255], dtype=torch.float32) / 255 - 0.5) / 0.5
    assert torch.equal(normalise(grey)[0, 0, 0], expected)
    assert normalise(grey)[0, 0, 0, 0] == -1 and normalise(grey)[0, 0, 0, 2] == 1
    rgb = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    tensor = to_tensor(rgb)
    assert tensor.shape == (1, 3, 2, 4)
    assert torch.equal(tensor[0, 1] * 255, torch.from_numpy(rgb[:, :, 1].astype(np.float32)))
    with pytest.raises(TypeError):
        to_tensor(rgb.astype(np.float32))


def test_official_stretch_is_min_max_over_the_whole_tensor():
    generated = torch.tensor([[[[-0.5, 0.0]], [[0.25, 0.5]], [[0.5, -0.5]]]])  # 1×3×1×2
    stretched = official_stretch(generated)
    assert stretched.shape == (1, 2, 3) and stretched.dtype == np.uint8
    # min −0.5 → 0, max 0.5 → 255 over all channels jointly; 0.0 → 0.5 → floor(128.0) = 128.
    assert stretched[0, :, 0].tolist() == [0, 128]
    assert stretched[0, :, 2].tolist() == [255, 0]
    # A constant tensor (max == min) becomes all zeros.
    assert not official_stretch(torch.full((1, 3, 2, 2), 0.3)).any()
    # One channel is copied into three.
    assert official_stretch(torch.tensor([[[[0.0, 1.0]]]])).tolist() == [[[0] * 3, [255] * 3]]


def test_clamp_to_uint8_rule():
    generated = torch.tensor([[[[-2.0, -1.0, 0.0, 0.5, 1.0, 3.0]]]]).expand(1, 3, 1, 6)
    # floor(clamp((g + 1)/2, 0, 1)*255 + 0.5): 0.75*255 + 0.5 = 191.75 → 191.
    assert clamp_to_uint8(generated)[0, :, 0].tolist() == [0, 0, 128, 191, 255, 255]
    assert restore.save_restored(generated, "clamp").tolist() == clamp_to_uint8(generated).tolist()


# ---------------------------------------------------------------------------------------------
# Generator composition


def test_global_generator_composes_encoder_mapping_decoder():
    calls = []

    class Vae:
        def encode(self, x):
            calls.append("encode")
            return x + 1

        def decode(self, z):
            calls.append("decode")
            return z * 10

    def mapping(z, mask=None):
        calls.append("mapping" if mask is None else "mapping+mask")
        return z if mask is None else z + mask

    generator = restore.global_generator(Vae(), mapping, Vae())
    x = torch.zeros(1, 3, 2, 2)
    assert torch.equal(generator(x), torch.full((1, 3, 2, 2), 10.0))
    assert calls == ["encode", "mapping", "decode"]
    calls.clear()
    mask = torch.ones(1, 1, 2, 2)
    assert torch.equal(generator(x, mask), torch.full((1, 3, 2, 2), 20.0))
    assert calls == ["encode", "mapping+mask", "decode"]
    # Bound methods work as well as modules.
    from_methods = restore.global_generator(Vae().encode, mapping, Vae().decode)
    assert torch.equal(from_methods(x), generator(x))


# ---------------------------------------------------------------------------------------------
# Quality path against the goldens


@pytest.mark.parametrize("mode", ["Full", "Scale", "Crop"])
@pytest.mark.parametrize("stem", QUALITY_STEMS)
def test_quality_path_matches_golden(mode, stem):
    folder = MODE_FOLDERS[mode]
    images = restore.restore_image(read_rgb(f"inputs/{stem}.png"), fake_generator, "cpu",
                                   test_mode=mode)
    assert_identical(images.origin, read_rgb(f"{folder}/origin/{stem}.png"))
    assert_identical(images.input_image, read_rgb(f"{folder}/input_image/{stem}.png"))
    assert_identical(images.restored, read_rgb(f"{folder}/restored_image/{stem}.png"))


@pytest.mark.parametrize("stem", QUALITY_STEMS)
def test_full_mode_network_input_matches_golden(stem):
    origin = restore.prepare_quality_input(read_rgb(f"inputs/{stem}.png"), "Full")
    assert_identical(to_network(origin).numpy(),
                     np.load(DATA / f"stage1_full/net_io/{stem}_net_input.npy"))


def test_fake_generator_is_the_goldens_fake():
    net_input = torch.from_numpy(np.load(DATA / "stage1_full/net_io/g_crop303x206_net_input.npy"))
    assert_identical(fake_generator(net_input).numpy(),
                     np.load(DATA / "stage1_full/net_io/g_crop303x206_fake_generated.npy"))


def test_restore_quality_returns_raw_output_and_stretched_input():
    origin = read_rgb("stage1_full/origin/g_crop303x206.png")
    input_image, restored = restore.restore_quality(origin, fake_generator, "cpu")
    assert restored.dtype == torch.float32 and restored.shape == (1, 3, 208, 304)
    assert_identical(restored.numpy(),
                     np.load(DATA / "stage1_full/net_io/g_crop303x206_fake_generated.npy"))
    assert_identical(input_image, read_rgb("stage1_full/input_image/g_crop303x206.png"))
    # input_image is the stretched input, not the input: the official file differs from origin.
    assert (input_image != origin).any()
    # The clamp alternative differs from the official stretch on this photo.
    assert (restore.save_restored(restored, "clamp") != restore.save_restored(restored)).any()


# ---------------------------------------------------------------------------------------------
# Scratch path against the goldens


def test_synthesize_holes_float64_rule():
    rgb = np.array([[[100, 0, 254], [100, 50, 7]]], np.uint8)
    binary = np.array([[0, 255]], np.uint8)
    assert restore.synthesize_holes(rgb, binary).tolist() == [[[100, 0, 254], [255, 255, 255]]]
    # Non-binary weights: 100*(1 − 128/255) + 128 = 177.80… truncated to 177.
    partial = np.array([[128, 128]], np.uint8)
    assert restore.synthesize_holes(rgb, partial)[0, 0, 0] == 177
    per_channel = np.zeros((1, 2, 3), np.uint8)
    per_channel[0, 1, 2] = 255
    assert restore.synthesize_holes(rgb, per_channel).tolist() == [[[100, 0, 254], [100, 50, 255]]]


def test_dilate_mask_is_a_7x7_square_max_filter():
    rng = np.random.default_rng(3)
    mask = np.where(rng.random((40, 50)) > 0.97, 255, 0).astype(np.uint8)
    mask[0, 0] = mask[39, 49] = 255  # corners: out-of-image pixels do not count
    padded = np.pad(mask, 3)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (7, 7))
    assert_identical(restore.dilate_mask(mask, 3), windows.max(axis=(2, 3)))
    assert restore.dilate_mask(mask, 0) is mask


@pytest.mark.parametrize("hr", [False, True], ids=["std", "hr"])
@pytest.mark.parametrize("stem", SCRATCH_STEMS)
def test_scratch_path_matches_golden(stem, hr):
    folder = "stage1_scratch_hr" if hr else "stage1_scratch_std"
    rgb16 = read_rgb(f"scratch_detection/masks/input/{stem}.png")
    mask = read_mask(f"scratch_detection/masks/mask/{stem}.png")
    images = restore.restore_image(rgb16, fake_generator, "cpu", mask=mask, hr=hr)
    assert_identical(images.origin, read_rgb(f"{folder}/origin/{stem}.png"))
    assert_identical(images.input_image, read_rgb(f"{folder}/input_image/{stem}.png"))
    assert_identical(images.restored, read_rgb(f"{folder}/restored_image/{stem}.png"))


@pytest.mark.parametrize("hr", [False, True], ids=["std", "hr"])
def test_scratch_network_inputs_match_golden(hr):
    folder = "stage1_scratch_hr" if hr else "stage1_scratch_std"
    rgb16 = read_rgb("scratch_detection/masks/input/scratch_d.png")
    mask = read_mask("scratch_detection/masks/mask/scratch_d.png")
    holes, net_input, net_mask = restore.scratch_network_inputs(rgb16, mask, hr)
    assert_identical(net_input.numpy(), np.load(DATA / f"{folder}/net_io/scratch_d_net_input.npy"))
    assert_identical(net_mask.numpy(), np.load(DATA / f"{folder}/net_io/scratch_d_net_mask.npy"))
    # Holes are white exactly where the (dilated, with HR) network mask is 1.
    assert (holes[net_mask[0, 0].numpy() == 1] == 255).all()
    if hr:
        assert net_mask.sum() > torch.from_numpy(mask > 0).sum()


def test_scratch_generator_gets_hole_image_and_full_resolution_mask():
    rgb16 = read_rgb("scratch_detection/masks/input/scratch_d.png")
    mask = read_mask("scratch_detection/masks/mask/scratch_d.png")
    seen = {}

    def recording_generator(x, mask=None):
        seen["x"], seen["mask"] = x, mask
        return fake_generator(x)

    _, restored = restore.restore_scratch(rgb16, mask, recording_generator, hr=False, device="cpu")
    assert seen["mask"].shape == (1, 1, 256, 400)
    assert_identical(seen["mask"].numpy(),
                     np.load(DATA / "stage1_scratch_std/net_io/scratch_d_net_mask.npy"))
    assert_identical(restored.numpy(),
                     np.load(DATA / "stage1_scratch_std/net_io/scratch_d_fake_generated.npy"))


def test_scratch_mask_must_match_image():
    with pytest.raises(ValueError):
        restore.restore_scratch(np.zeros((16, 32, 3), np.uint8), np.zeros((16, 16), np.uint8),
                                fake_generator)
