"""Stage-2 options (oldphoto.faces.FaceOptions): detector, upsampling, face selection, record."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from oldphoto import faces

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "resources" / "samples"
GOLDEN_ALIGNED = REPO / "tests" / "data" / "pipeline" / "faces" / "aligned_std"
# old/a.png: dlib HOG's (0 upsampling) box of its one face (tests/data/pipeline/faces goldens)
OLD_A_FACE = (74, 114, 254, 293)


def read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).copy()


@pytest.fixture(scope="module")
def models() -> faces.FaceModels:
    return faces.load_face_models(detector="cnn")


def small_face_photo(face_side: int) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """old/a.png scaled so its face box is ``face_side`` px, centred on a 240×240 grey canvas;
    returns the photo and the face's box (left, top, right, bottom) there."""
    rgb = read_rgb(SAMPLES / "old" / "a.png")
    left, top, right, bottom = OLD_A_FACE
    scale = face_side / (right - left)
    small = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    canvas = np.full((240, 240, 3), 128, np.uint8)
    ox = 120 - int((left + right) / 2 * scale)
    oy = 120 - int((top + bottom) / 2 * scale)
    h, w = small.shape[:2]
    x0, y0, x1, y1 = max(ox, 0), max(oy, 0), min(ox + w, 240), min(oy + h, 240)
    canvas[y0:y1, x0:x1] = small[y0 - oy:y1 - oy, x0 - ox:x1 - ox]
    box = (left * scale + ox, top * scale + oy, right * scale + ox, bottom * scale + oy)
    return canvas, box


def centre_inside(rect: tuple[int, int, int, int], box: tuple[float, ...]) -> bool:
    cx, cy = (rect[0] + rect[2]) / 2, (rect[1] + rect[3]) / 2
    return box[0] <= cx <= box[2] and box[1] <= cy <= box[3]


def fake_face(rect: tuple[int, int, int, int], score: float = 1.0) -> faces.Face:
    return faces.Face(rect=rect, score=score, landmarks68=np.zeros((68, 2), np.int64),
                      five_points=np.zeros((5, 2), np.int64))


def test_default_options_are_the_official_stage_2():
    options = faces.FaceOptions()
    assert (options.detector, options.upsample, options.only_center_face,
            options.max_faces) == ("hog", 0, False, None)
    assert faces.load_face_models().cnn_detector is None  # the CNN is loaded only when asked


def test_options_are_validated():
    for bad in ({"detector": "mtcnn"}, {"upsample": 3}, {"upsample": -1}, {"max_faces": -1},
                {"max_faces": 1.5}, {"max_faces": True}):
        with pytest.raises(ValueError):
            faces.FaceOptions(**bad)
    with pytest.raises(ValueError, match="detector"):
        faces.load_face_models(detector="mtcnn")


def test_cnn_model_file_is_found_and_missing_ones_are_named(tmp_path):
    path = faces.default_cnn_detector_path()
    assert path.name == "mmod_human_face_detector.dat" and path.is_file()
    with pytest.raises(FileNotFoundError, match="CNN face detector"):
        faces.load_face_models(detector="cnn", cnn_path=tmp_path / "none.dat")


def test_cnn_detector_finds_the_faces_of_a_sample(models):
    rgb = read_rgb(SAMPLES / "old_w_scratch" / "d.png")  # two faces (HOG finds both)
    hog = faces.detect_faces(rgb, models)
    cnn = faces.detect_faces(rgb, models, detector="cnn")
    assert len(hog) == 2 and len(cnn) == 2
    for face in cnn:
        assert face.landmarks68.shape == (68, 2) and face.score > 0
        hog_boxes = [tuple(float(v) for v in h.rect) for h in hog]
        assert any(centre_inside(face.rect, box) for box in hog_boxes), face.rect
    aligned = faces.detect_and_align(rgb, models, 256, faces.FaceOptions(detector="cnn"))
    assert [a.index for a in aligned] == [1, 2]
    assert all(a.image.shape == (256, 256, 3) for a in aligned)


def test_cnn_without_its_model_is_refused(models):
    hog_only = faces.FaceModels(models.detector, models.predictor)
    with pytest.raises(ValueError, match="not loaded"):
        faces.detect_faces(np.zeros((32, 32, 3), np.uint8), hog_only, detector="cnn")


@pytest.mark.parametrize(("side", "finds_from"), [(50, 1), (30, 2)])
def test_upsampling_finds_small_faces_that_the_official_setting_misses(models, side, finds_from):
    photo, box = small_face_photo(side)
    for upsample in faces.UPSAMPLES:
        found = faces.detect_faces(photo, models, "hog", upsample)
        if upsample < finds_from:
            assert found == [], (upsample, [f.rect for f in found])
        else:
            assert len(found) == 1 and centre_inside(found[0].rect, box), (upsample, found)


def test_only_center_face_keeps_the_face_nearest_the_centre(models):
    rgb = read_rgb(SAMPLES / "old_w_scratch" / "d.png")  # 400×256, centre (200, 128)
    everything = faces.detect_and_align(rgb, models, 256)
    assert [f.face.rect for f in everything] == [(102, 102, 189, 189), (169, 42, 273, 146)]
    # centres (145.5, 145.5) and (221, 94): the second detection is 40 px from the centre
    kept = faces.detect_and_align(rgb, models, 256, faces.FaceOptions(only_center_face=True))
    assert len(kept) == 1 and kept[0].index == 1
    assert kept[0].face.rect == (169, 42, 273, 146)
    np.testing.assert_array_equal(kept[0].face_to_photo, everything[1].face_to_photo)
    golden = read_rgb(GOLDEN_ALIGNED / "scratch_d_2.png")
    assert np.array_equal(kept[0].image, golden)  # same crop as without the option


def test_max_faces_keeps_the_largest_in_detection_order():
    found = [fake_face((0, 0, 10, 10)), fake_face((50, 50, 90, 90)), fake_face((0, 50, 20, 70)),
             fake_face((100, 0, 140, 40)), fake_face((200, 0, 205, 5))]
    select = faces.select_faces
    assert select(found, 300, 300, faces.FaceOptions(max_faces=2)) == [found[1], found[3]]
    assert select(found, 300, 300, faces.FaceOptions(max_faces=3)) == found[1:4]
    assert select(found, 300, 300, faces.FaceOptions(max_faces=0)) == []
    assert select(found, 300, 300, faces.FaceOptions(max_faces=9)) == found
    assert select(found, 300, 300, faces.FaceOptions()) == found
    # only_center_face first (box centre nearest (150, 150) is found[1]), then max_faces
    both = faces.FaceOptions(only_center_face=True, max_faces=1)
    assert select(found, 300, 300, both) == [found[1]]
    assert select([], 300, 300, faces.FaceOptions(only_center_face=True)) == []


def test_max_faces_renumbers_the_aligned_faces(models):
    rgb = read_rgb(SAMPLES / "old_w_scratch" / "d.png")
    kept = faces.detect_and_align(rgb, models, 256, faces.FaceOptions(max_faces=1))
    # the larger box is the second detection (104 px against 87 px): it becomes face 1
    assert [(f.index, f.face.rect) for f in kept] == [(1, (169, 42, 273, 146))]


def test_record_holds_the_options_and_reads_back(models):
    rgb = read_rgb(SAMPLES / "old_w_scratch" / "d.png")
    options = faces.FaceOptions(detector="hog", upsample=1, max_faces=1)
    aligned = faces.detect_and_align(rgb, models, 256, options)
    record = json.loads(json.dumps(faces.faces_to_json(rgb, aligned, 256, options)))
    assert record["options"] == {"detector": "hog", "upsample": 1, "only_center_face": False,
                                 "max_faces": 1}
    assert len(record["faces"]) == 1
    back = faces.faces_from_json(record)
    assert np.array_equal(back[0].face_to_photo, aligned[0].face_to_photo)
    assert "options" not in faces.faces_to_json(rgb, aligned, 256)  # official record unchanged


def test_stage_2_records_options_only_when_not_the_official_ones(models):
    from oldphoto import stages

    rgb = read_rgb(SAMPLES / "old" / "a.png")
    official, _ = stages.detect_and_align_faces(rgb, models, 256)
    assert "options" not in official
    assert stages.detect_and_align_faces(rgb, models, 256, faces.FaceOptions())[0] == official
    chosen = faces.FaceOptions(upsample=1, max_faces=1)
    record, aligned = stages.detect_and_align_faces(rgb, models, 256, chosen)
    assert record["options"] == chosen.record()
    assert len(aligned) == len(record["faces"]) == 1
