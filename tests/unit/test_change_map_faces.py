"""The change map's face boxes stand on the faces stage 2 recorded (``archival.changes``).

``resources/samples/old_w_scratch/a.png`` has one face that dlib's HOG detector (the official
stage 2) finds at (214, 194)-(393, 373).  Its box in the change map must cover that face and be
the footprint of the aligned square that stage 4 pastes back, computed here another way: the
pixels ``blend.warp_face_back`` (skimage's warp of the crop) writes into.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oldphoto import blend, faces, stages
from oldphoto.archival.changes import FACE_COLOUR, change_map, replaced_face_boxes

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "resources" / "samples" / "old_w_scratch" / "a.png"
FACE_RECT = [214, 194, 393, 373]  # dlib HOG, 0 upsampling (faces.json of the sample)


@pytest.fixture(scope="module")
def detected():
    with Image.open(SAMPLE) as im:
        rgb = np.asarray(im.convert("RGB")).copy()
    record, aligned = stages.detect_and_align_faces(rgb, faces.load_face_models(), 256)
    return rgb, json.loads(json.dumps(record)), aligned  # as faces.json holds it


def footprint(rgb: np.ndarray, aligned_face: np.ndarray, face_to_photo) -> tuple[int, ...]:
    """(x0, y0, x1, y1) of the pixels stage 4's back-warp of the 256-px crop lands on."""
    warped = blend.warp_face_back(rgb, aligned_face, np.array(face_to_photo), 256)
    ys, xs = np.nonzero(warped.backward_mask[:, :, 0])
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def test_box_covers_the_recorded_face_and_is_the_pasted_square(detected):
    rgb, record, aligned = detected
    height, width = rgb.shape[:2]
    assert [face["rect"] for face in record["faces"]] == [FACE_RECT]
    [box] = replaced_face_boxes(record, (width, height))
    left, top, right, bottom = FACE_RECT
    x0, y0, x1, y1 = box
    assert x0 <= left and y0 <= top and right <= x1 and bottom <= y1, box
    expected = footprint(rgb, aligned[0], record["faces"][0]["face_to_photo"])
    np.testing.assert_allclose(box, expected, atol=2.0)
    # a final output of another size gets the same box, scaled
    [half] = replaced_face_boxes(record, (width // 2, height // 2))
    np.testing.assert_allclose(half, np.array(box) * [(width // 2) / width, (height // 2) / height,
                                                      (width // 2) / width,
                                                      (height // 2) / height], atol=1e-9)


def test_face_area_fraction_is_the_boxed_area_and_the_box_is_drawn_there(detected):
    rgb, record, aligned = detected
    height, width = rgb.shape[:2]
    boxes = replaced_face_boxes(record, (width, height))
    preview, stats = change_map(rgb, rgb, None, boxes)
    fx0, fy0, fx1, fy1 = footprint(rgb, aligned[0], record["faces"][0]["face_to_photo"])
    assert stats["faces"] == 1
    assert stats["face_area_fraction"] == pytest.approx(
        (fx1 - fx0) * (fy1 - fy0) / (width * height), rel=0.03)
    # exactly the pixels of the box as change_map rounds it
    x0, y0, x1, y1 = (int(round(v)) for v in boxes[0])
    assert stats["face_area_fraction"] == round((x1 - x0) * (y1 - y0) / (width * height), 6)
    # the cyan outline runs along the box's edges, and nowhere near the top-left corner
    cyan = np.all(preview == FACE_COLOUR, axis=2)
    assert cyan[y0, x0:x1].all() and cyan[y1 - 1, x0:x1].all()
    assert cyan[y0:y1, x0].all() and cyan[y0:y1, x1 - 1].all()
    assert not cyan[:y0 - 2].any() and not cyan[:, :x0 - 2].any()
