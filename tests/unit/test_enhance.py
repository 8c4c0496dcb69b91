"""Stage 3 glue (oldphoto.enhance) against the official goldens, with the golden fake enhancer."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from oldphoto import enhance

DATA = Path(__file__).resolve().parents[1] / "data" / "pipeline" / "faces"
FACE_NAMES = ["old_a_1", "old_h_1", "old_h_tl_1", "scratch_d_1", "scratch_d_2",
              "scratch_d_top20_1", "scratch_d_top20_2"]
SIZES = {"std": 256, "hr": 512}


def fake_enhancer(x: torch.Tensor) -> torch.Tensor:
    """The goldens' fake face generator: ``clamp(a·x + b, −1, 1)`` per RGB channel (float32)."""
    a = torch.tensor([0.75, 0.9, 0.6], dtype=torch.float32).view(1, 3, 1, 1)
    b = torch.tensor([0.2, -0.15, -0.3], dtype=torch.float32).view(1, 3, 1, 1)
    return (a.to(x.device) * x + b.to(x.device)).clamp(-1, 1)


def read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).copy()


def read_npy_gz(path: Path) -> np.ndarray:
    return np.load(io.BytesIO(gzip.decompress(path.read_bytes())))


def test_face_to_tensor_matches_golden_network_input():
    face = read_rgb(DATA / "aligned_std" / "old_a_1.png")
    x = enhance.face_to_tensor(face, 256)
    golden = read_npy_gz(DATA / "net_io_std" / "old_a_1_net_input.npy.gz")
    assert x.dtype == torch.float32 and tuple(x.shape) == golden.shape == (1, 3, 256, 256)
    assert np.array_equal(x.numpy(), golden)
    generated = read_npy_gz(DATA / "net_io_std" / "old_a_1_fake_generated.npy.gz")
    assert np.array_equal(fake_enhancer(x).numpy(), generated)


@pytest.mark.parametrize("tag", SIZES)
def test_enhanced_faces_bit_exact(tag):
    for name in FACE_NAMES:
        face = read_rgb(DATA / f"aligned_{tag}" / f"{name}.png")
        enhanced = enhance.enhance_face(face, fake_enhancer, "cpu")
        golden = read_rgb(DATA / f"enhanced_{tag}" / f"{name}.png")
        assert enhanced.dtype == np.uint8 and enhanced.shape == (SIZES[tag], SIZES[tag], 3)
        assert np.count_nonzero(enhanced != golden) == 0, name


def test_tensor_to_face_rounding_rule():
    # (g+1)/2*255 = 127.5 exactly for g = 0 -> floor(127.5 + 0.5) = 128 (half up, not to even)
    values = torch.tensor([-2.0, -1.0, 0.0, 1.0, 3.0, 2 * 10.5 / 255 - 1], dtype=torch.float32)
    t = values.view(1, 1, 1, -1).expand(1, 3, 1, values.numel())
    face = enhance.tensor_to_face(t)
    assert face.shape == (1, values.numel(), 3) and face.dtype == np.uint8
    expected = np.floor(np.clip((values.numpy() + 1) / 2, 0, 1) * 255 + 0.5)
    assert face[0, :, 0].tolist() == expected.astype(np.uint8).tolist()
    assert face[0, :5, 0].tolist() == [0, 0, 128, 255, 255]


def test_face_to_tensor_resizes_only_when_needed():
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (100, 100, 3), dtype=np.uint8)
    x = enhance.face_to_tensor(small, 256)
    resized = np.asarray(Image.fromarray(small).resize((256, 256), Image.BICUBIC))
    assert tuple(x.shape) == (1, 3, 256, 256)
    assert np.array_equal(enhance.tensor_to_face(x), resized)  # [-1,1] round trip is lossless
    same = enhance.face_to_tensor(small)
    assert tuple(same.shape) == (1, 3, 100, 100)
    assert np.array_equal(enhance.tensor_to_face(same), small)


def test_enhance_face_with_identity_generator_is_lossless():
    face = read_rgb(DATA / "aligned_hr" / "scratch_d_2.png")
    assert np.array_equal(enhance.enhance_face(face, lambda x: x), face)


def test_rejects_non_rgb_faces():
    with pytest.raises(ValueError, match="RGB uint8"):
        enhance.face_to_tensor(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="batch"):
        enhance.tensor_to_face(torch.zeros(2, 3, 4, 4))
