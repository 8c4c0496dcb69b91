"""Stage 4 (oldphoto.blend) against the official goldens, fed with the stage-2 matrices.

Stage 4 reuses the stage-2 matrices instead of re-detecting (B13,
docs/reference_facts.md#b13-stage-4-re-detects-faces); a missing enhanced face keeps that face unenhanced (B5,
docs/reference_facts.md#b5-a-missing-enhanced-face-aborts-stage-4).
"""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oldphoto import blend

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "pipeline" / "faces"
SAMPLES = REPO / "resources" / "samples"
INPUTS = {  # byte-identical golden inputs (see tests/data/pipeline/faces/README.md)
    "old_a": SAMPLES / "old" / "a.png",
    "old_h": SAMPLES / "old" / "h.png",
    "scratch_d": SAMPLES / "old_w_scratch" / "d.png",
    "old_h_tl": DATA / "inputs" / "old_h_tl.png",
    "scratch_d_top20": DATA / "inputs" / "scratch_d_top20.png",
}
SIZES = {"std": 256, "hr": 512}
INTERMEDIATES = [("std", "scratch_d", 1), ("std", "scratch_d", 2), ("std", "old_h_tl", 1),
                 ("hr", "scratch_d_top20", 1), ("hr", "scratch_d_top20", 2)]


def read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).copy()


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im).copy()


def read_npy_gz(path: Path) -> np.ndarray:
    return np.load(io.BytesIO(gzip.decompress(path.read_bytes())))


def golden_record(tag: str, name: str) -> dict:
    """The golden stage-2 detections of one image in oldphoto's stage-2 JSON schema."""
    golden = json.loads((DATA / f"detections_{tag}.json").read_text(encoding="utf-8"))
    image = golden["images"][f"{name}.png"]
    return {
        "image": {"width": image["width"], "height": image["height"]},
        "face_size": golden["aligned_size"],
        "faces": [{"index": k, "rect": f["rect_ltrb"], "score": f["detector_score"],
                   "landmarks68": f["landmarks68_xy"], "five_points": f["five_points_xy"],
                   "face_to_photo": f["similarity_aligned_to_image_3x3"],
                   "photo_to_face": f["similarity_image_to_aligned_3x3"]}
                  for k, f in enumerate(image["faces"], start=1)],
    }


def golden_enhanced(tag: str, name: str, n_faces: int) -> dict[int, np.ndarray]:
    folder = DATA / f"enhanced_{tag}"
    return {k: read_rgb(folder / f"{name}_{k}.png") for k in range(1, n_faces + 1)}


# ---------------------------------------------------------------------------------------------
# Official blending: intermediates and final composites


@pytest.mark.parametrize(("tag", "name", "k"), INTERMEDIATES)
def test_warp_back_intermediates_bit_exact(tag, name, k):
    size = SIZES[tag]
    folder = DATA / f"intermediates_{tag}"
    metas = json.loads((folder / "intermediates.json").read_text(encoding="utf-8"))
    meta = metas[f"{name}_face{k}"]
    prefix = f"{name}_face{k}_"
    matrix = np.array(meta["matrix_aligned_to_image"])
    warped = blend.warp_face_back(read_rgb(INPUTS[name]), golden_enhanced(tag, name, k)[k],
                                  matrix, size)

    assert np.array_equal(warped.reference, read_png(folder / (prefix + "aligned_trunc_u8.png")))
    assert np.array_equal(warped.forward_mask[:, :, 0] * 255,
                          read_png(folder / (prefix + "forward_mask.png")))
    # The official code matched in BGR order; channels are independent, ours are RGB.
    assert [lut.tolist() for lut in warped.luts] == [meta["luts_bgr"][c] for c in "rgb"]
    assert np.array_equal(warped.matched, read_png(folder / (prefix + "hist_matched.png")))
    golden_warped = read_npy_gz(folder / (prefix + "warped_back_f32.npy.gz"))
    assert warped.warped_back.dtype == np.float64
    assert np.array_equal(warped.warped_back.astype(np.float32), golden_warped)  # exact in float32
    assert np.array_equal(warped.backward_mask[:, :, 0] * 255,
                          read_png(folder / (prefix + "backward_mask.png")))

    eroded, soft = blend.blend_mask(warped.backward_mask, blend.mask_kernels(matrix, size))
    assert np.array_equal(eroded[:, :, 0], read_png(folder / (prefix + "eroded_mask.png")))
    assert np.array_equal(soft[:, :, 0], soft[:, :, 2])
    golden_soft = read_npy_gz(folder / (prefix + "mask_blur_ch0_f32.npy.gz"))
    assert np.array_equal(soft[:, :, 0].astype(np.float32), golden_soft)  # exact in float32


def test_histogram_luts_are_the_smallest_reference_level_of_each_cdf():
    rng = np.random.default_rng(1)
    source = rng.integers(0, 120, (32, 32, 3), dtype=np.uint8)
    reference = rng.integers(100, 256, (32, 32, 3), dtype=np.uint8)
    luts = blend.histogram_luts(source, reference)
    for c in range(3):
        # smallest r with cdf_ref[r] >= cdf_src[v], by brute force
        cdf_s = np.cumsum(np.bincount(source[:, :, c].ravel(), minlength=256)) / (32 * 32)
        cdf_r = np.cumsum(np.bincount(reference[:, :, c].ravel(), minlength=256)) / (32 * 32)
        brute = [next(r for r in range(256) if cdf_r[r] >= cdf_s[v]) for v in range(256)]
        assert luts[c].tolist() == brute
        assert luts[c][source[:, :, c]].min() >= 100  # the source range moved to the reference's


@pytest.mark.parametrize("tag", SIZES)
@pytest.mark.parametrize("name", INPUTS)
def test_final_composites_bit_exact(tag, name):
    record = golden_record(tag, name)
    image = read_rgb(INPUTS[name])
    enhanced = golden_enhanced(tag, name, len(record["faces"]))
    final, notes = blend.paste_faces_from_record(image, record, enhanced)
    assert notes == []
    golden = read_rgb(DATA / f"final_{tag}" / f"{name}.png")
    assert final.dtype == np.uint8 and final.shape == golden.shape
    assert np.count_nonzero(final != golden) == 0


def test_stage_2_to_4_chain_reproduces_the_golden_composite():
    """Inputs -> our detection/alignment -> JSON -> our enhancement glue (fake) -> our warp-back."""
    import torch

    from oldphoto import enhance, faces

    def fake_enhancer(x):  # the goldens' fake face generator, clamp(a·x + b, −1, 1)
        a = torch.tensor([0.75, 0.9, 0.6]).view(1, 3, 1, 1)
        b = torch.tensor([0.2, -0.15, -0.3]).view(1, 3, 1, 1)
        return (a * x + b).clamp(-1, 1)

    image = read_rgb(INPUTS["scratch_d"])
    aligned = faces.detect_and_align(image, faces.load_face_models(), 256)
    record = json.loads(json.dumps(faces.faces_to_json(image, aligned, 256)))
    enhanced = {face.index: enhance.enhance_face(face.image, fake_enhancer) for face in aligned}
    final, notes = blend.paste_faces_from_record(image, record, enhanced)
    assert notes == []
    assert np.array_equal(final, read_rgb(DATA / "final_std" / "scratch_d.png"))


# ---------------------------------------------------------------------------------------------
# Missing or unusable enhanced faces (B5)


def test_missing_enhanced_face_keeps_it_unenhanced():
    record = golden_record("std", "scratch_d")
    image = read_rgb(INPUTS["scratch_d"])
    enhanced = golden_enhanced("std", "scratch_d", 2)
    final, notes = blend.paste_faces_from_record(image, record, {2: enhanced[2]})
    assert len(notes) == 1 and "face 1" in notes[0] and "unenhanced" in notes[0]
    only_second = blend.paste_faces(image, [(enhanced[2], np.array(record["faces"][1]["face_to_photo"]))],
                                    256)
    assert np.array_equal(final, only_second)
    full = read_rgb(DATA / "final_std" / "scratch_d.png")
    assert not np.array_equal(final, full)
    # Face 1's footprint outside face 2's blend mask is the untouched photo.
    matrix1, matrix2 = (np.array(face["face_to_photo"]) for face in record["faces"])
    first = blend.warp_face_back(image, enhanced[1], matrix1, 256)
    second = blend.warp_face_back(image, enhanced[2], matrix2, 256)
    _, soft2 = blend.blend_mask(second.backward_mask, blend.mask_kernels(matrix2, 256))
    only_face1 = (first.backward_mask[:, :, 0] > 0) & (soft2[:, :, 0] == 0)
    assert only_face1.sum() > 1000
    assert np.array_equal(final[only_face1], image[only_face1])


def test_no_enhanced_faces_and_bad_crops_give_notes_not_crashes():
    record = golden_record("std", "scratch_d")
    image = read_rgb(INPUTS["scratch_d"])
    final, notes = blend.paste_faces_from_record(image, record, {})
    assert np.array_equal(final, image) and len(notes) == 2
    wrong_size = np.zeros((512, 512, 3), np.uint8)
    extra = np.zeros((256, 256, 3), np.uint8)
    final, notes = blend.paste_faces_from_record(image, record, {1: wrong_size, 7: extra})
    assert np.array_equal(final, image)
    assert any("face 1" in n and "expected uint8 (256, 256, 3)" in n for n in notes)
    assert any("face 2" in n for n in notes) and any("crop 7" in n for n in notes)


def test_record_of_another_image_is_rejected():
    record = golden_record("std", "scratch_d")
    with pytest.raises(ValueError, match="400×256"):
        blend.paste_faces_from_record(read_rgb(INPUTS["old_h_tl"]), record, {})
    with pytest.raises(ValueError, match="unknown face blending"):
        blend.paste_faces(read_rgb(INPUTS["old_h_tl"]), [], 256, blending="poisson")


# ---------------------------------------------------------------------------------------------
# Adaptive blending: only the mask's erosion and blur change, scaled with the face


def erosion_extent(kernels: blend.MaskKernels) -> int:
    """Side of the one square erosion that the kernels' repeated erosions equal (a k-px square
    eroded n times takes (k - 1) / 2 px off each side per pass): 25 for the official 9x9 x 3."""
    return kernels.erode_iterations * (kernels.erode_size - 1) + 1


def test_mask_kernels():
    official = blend.mask_kernels(np.eye(3), 256, "official")
    assert (official.erode_size, official.erode_iterations, official.blur_size) == (9, 3, 25)
    theta = 0.1
    rotation = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0],
                         [0, 0, 1]])
    nominal = blend.mask_kernels(rotation, 256, "adaptive")  # 256-px footprint = the official
    assert (erosion_extent(nominal), nominal.blur_size) == (25, 25)
    small = np.diag([0.45, 0.45, 1.0])  # 115-px footprint: edge 5
    assert blend.mask_kernels(small, 256, "adaptive") == blend.MaskKernels(11, 1, 11)
    # HR crops of the same face have half the scale: same footprint, same kernels.
    assert blend.mask_kernels(np.diag([0.225, 0.225, 1.0]), 512, "adaptive") == \
        blend.MaskKernels(11, 1, 11)
    big = blend.mask_kernels(np.diag([2.0, 2.0, 1.0]), 512, "adaptive")  # 1024 px: edge 51
    assert big == blend.MaskKernels(103, 1, 103)


def test_adaptive_equals_official_at_the_nominal_face_size():
    image = read_rgb(INPUTS["old_a"])
    face = read_rgb(DATA / "enhanced_std" / "old_a_1.png")
    theta = 0.1  # a 256-px footprint, rotated, inside the 298×450 photo
    matrix = np.array([[np.cos(theta), -np.sin(theta), 40.0],
                       [np.sin(theta), np.cos(theta), 60.0], [0, 0, 1]])
    official = blend.paste_faces(image, [(face, matrix)], 256, "official")
    adaptive = blend.paste_faces(image, [(face, matrix)], 256, "adaptive")
    assert not np.array_equal(official, image)
    assert np.array_equal(adaptive, official)


def test_adaptive_scales_the_seam_with_the_face():
    record = golden_record("std", "scratch_d")
    image = read_rgb(INPUTS["scratch_d"])
    enhanced = golden_enhanced("std", "scratch_d", 2)
    matrix = np.array(record["faces"][0]["face_to_photo"])  # a 114-px face
    warped = blend.warp_face_back(image, enhanced[1], matrix, 256)
    eroded_off, soft_off = blend.blend_mask(warped.backward_mask,
                                            blend.mask_kernels(matrix, 256, "official"))
    eroded_ada, soft_ada = blend.blend_mask(warped.backward_mask,
                                            blend.mask_kernels(matrix, 256, "adaptive"))
    footprint = warped.backward_mask[:, :, 0] > 0
    # Small face: less erosion, so the enhanced face keeps more of its crop...
    assert np.all(eroded_ada[eroded_off > 0] > 0)
    assert (soft_ada[:, :, 0] > 0.99).sum() > 1.5 * (soft_off[:, :, 0] > 0.99).sum()
    # ...and neither mask reaches outside the crop footprint.
    assert soft_ada[:, :, 0][~footprint].max() == 0 and soft_off[:, :, 0][~footprint].max() == 0

    # Large face (4x): the adaptive seam widens instead of staying 12 px.
    big = np.diag([4.0, 4.0, 1.0]) @ matrix
    big_mask = np.zeros((1024, 1600, 3))
    big_mask[200:700, 300:800] = 1.0
    eroded_off, _ = blend.blend_mask(big_mask, blend.mask_kernels(big, 256, "official"))
    eroded_ada, _ = blend.blend_mask(big_mask, blend.mask_kernels(big, 256, "adaptive"))
    assert (eroded_off[:, :, 0] > 0).sum() == (500 - 24) ** 2
    kernels = blend.mask_kernels(big, 256, "adaptive")
    assert erosion_extent(kernels) > 25
    assert (eroded_ada[:, :, 0] > 0).sum() == (500 - (erosion_extent(kernels) - 1)) ** 2

    # The whole photo stays valid: uint8, same size, untouched outside both footprints.
    pairs = [(enhanced[k], np.array(f["face_to_photo"])) for k, f in enumerate(record["faces"], 1)]
    official = blend.paste_faces(image, pairs, 256, "official")
    adaptive = blend.paste_faces(image, pairs, 256, "adaptive")
    assert adaptive.dtype == np.uint8 and adaptive.shape == image.shape
    assert not np.array_equal(adaptive, official)
    second = blend.warp_face_back(image, enhanced[2], pairs[1][1], 256).backward_mask[:, :, 0] > 0
    outside = ~(footprint | second)
    assert np.array_equal(adaptive[outside], image[outside])
    assert np.array_equal(official[outside], image[outside])
