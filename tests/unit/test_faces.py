"""Stage 2 (oldphoto.faces) against the official goldens: real dlib + 68-point model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oldphoto import faces

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "pipeline" / "faces"
SAMPLES = REPO / "resources" / "samples"
# Golden inputs: four are byte-identical to the bundled samples, two are crops (see tests/data/pipeline/faces/README.md).
INPUTS = {
    "old_a": SAMPLES / "old" / "a.png",
    "old_h": SAMPLES / "old" / "h.png",
    "old_b_noface": SAMPLES / "old" / "b.png",
    "scratch_d": SAMPLES / "old_w_scratch" / "d.png",
    "old_h_tl": DATA / "inputs" / "old_h_tl.png",
    "scratch_d_top20": DATA / "inputs" / "scratch_d_top20.png",
}
SIZES = {"std": 256, "hr": 512}


def read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).copy()


def golden_detections(tag: str) -> dict:
    return json.loads((DATA / f"detections_{tag}.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def models() -> faces.FaceModels:
    return faces.load_face_models(faces.default_landmarks_path())


@pytest.fixture(scope="module")
def detected(models) -> dict[str, list[faces.Face]]:
    return {name: faces.detect_faces(read_rgb(path), models) for name, path in INPUTS.items()}


def test_default_landmarks_path_is_the_dlib_68_point_model():
    path = faces.default_landmarks_path()
    assert path.name == "shape_predictor_68_face_landmarks.dat"
    assert path.stat().st_size == 99_693_937


@pytest.mark.parametrize("tag", SIZES)
def test_face_template_is_the_official_float32_template(tag):
    template = faces.face_template(SIZES[tag])
    assert template.dtype == np.float32 and template.shape == (5, 2)
    assert template.tolist() == golden_detections(tag)["template_points_xy"]


def test_face_template_exact_float32_values():
    assert faces.face_template(256)[3].tolist() == [104.5999984741211, 195.8599853515625]
    assert faces.face_template(512)[4].tolist() == [302.79998779296875, 391.719970703125]


def test_five_points_truncate_eye_centres_toward_zero():
    landmarks = np.zeros((68, 2), dtype=np.int64)
    landmarks[36], landmarks[39] = (-3, 5), (0, 8)  # centre (-1.5, 6.5) -> (-1, 6), not floor
    landmarks[42], landmarks[45] = (10, -7), (13, -2)  # centre (11.5, -4.5) -> (11, -4)
    landmarks[30], landmarks[48], landmarks[54] = (1, 2), (3, 4), (5, 6)
    points = faces.five_points_from_landmarks(landmarks)
    assert points.tolist() == [[-1, 6], [11, -4], [1, 2], [3, 4], [5, 6]]


@pytest.mark.parametrize("name", INPUTS)
def test_detections_match_golden(detected, name):
    expected = golden_detections("std")["images"][f"{name}.png"]["faces"]
    found = detected[name]
    assert len(found) == len(expected)
    for face, gold in zip(found, expected):
        assert list(face.rect) == gold["rect_ltrb"]
        assert face.score == pytest.approx(gold["detector_score"], abs=1e-12)
        assert face.landmarks68.tolist() == gold["landmarks68_xy"]
        assert face.five_points.tolist() == gold["five_points_xy"]


def test_scratch_d_faces_come_in_dlib_order(detected):
    scores = [face.score for face in detected["scratch_d"]]
    assert len(scores) == 2 and scores[0] > scores[1]


@pytest.mark.parametrize("tag", SIZES)
def test_aligned_faces_and_matrices_bit_exact(detected, tag):
    size = SIZES[tag]
    images = golden_detections(tag)["images"]
    n_checked = 0
    for name, found in detected.items():
        rgb = read_rgb(INPUTS[name])
        for face, gold in zip(found, images[f"{name}.png"]["faces"]):
            matrix = faces.similarity_matrix(face.five_points, size)
            assert matrix.dtype == np.float64 and matrix.shape == (3, 3)
            np.testing.assert_allclose(matrix, gold["similarity_aligned_to_image_3x3"],
                                       rtol=0, atol=1e-9)
            np.testing.assert_allclose(faces.inverse_matrix(matrix),
                                       gold["similarity_image_to_aligned_3x3"], rtol=0, atol=1e-9)
            aligned = faces.align_face(rgb, matrix, size)
            golden = read_rgb(DATA / f"aligned_{tag}" / Path(gold["file"]).name)
            assert aligned.dtype == np.uint8 and aligned.shape == (size, size, 3)
            assert np.count_nonzero(aligned != golden) == 0, gold["file"]
            n_checked += 1
    assert n_checked == 7


def test_matrix_maps_template_near_five_points(detected):
    face = detected["old_a"][0]
    matrix = faces.similarity_matrix(face.five_points, 256)
    template = np.c_[faces.face_template(256), np.ones(5)]
    mapped = (matrix @ template.T).T[:, :2]
    # Least squares: the optimal translation maps the template centroid onto the points' centroid,
    # and no nearby similarity fits better.
    np.testing.assert_allclose(mapped.mean(axis=0), face.five_points.mean(axis=0), atol=1e-9)
    best = np.sum((mapped - face.five_points) ** 2)
    for delta in (np.diag([1.01, 1.01, 1]), np.diag([0.99, 0.99, 1])):
        other = (matrix @ delta @ template.T).T[:, :2]
        assert np.sum((other - face.five_points) ** 2) > best
    linear = matrix[:2, :2]
    assert linear[0, 0] == pytest.approx(linear[1, 1])
    assert linear[0, 1] == pytest.approx(-linear[1, 0])


def test_detect_and_align_and_json_round_trip(models):
    rgb = read_rgb(INPUTS["scratch_d"])
    aligned = faces.detect_and_align(rgb, models, 256)
    assert [face.index for face in aligned] == [1, 2]
    for face in aligned:
        golden = read_rgb(DATA / "aligned_std" / f"scratch_d_{face.index}.png")
        assert np.array_equal(face.image, golden)
        assert face.record()["size"] == 256
    record = json.loads(json.dumps(faces.faces_to_json(rgb, aligned, 256)))
    assert record["image"] == {"width": 400, "height": 256} and record["face_size"] == 256
    assert set(record["faces"][0]) == {"index", "rect", "score", "landmarks68", "five_points",
                                       "face_to_photo", "photo_to_face"}
    back = faces.faces_from_json(record)
    for original, restored in zip(aligned, back):
        assert restored.index == original.index and restored.size == 256
        # JSON floats round-trip exactly
        assert np.array_equal(restored.face_to_photo, original.face_to_photo)
        assert np.array_equal(restored.photo_to_face, original.photo_to_face)
        assert restored.face.rect == original.face.rect
        assert np.array_equal(restored.face.landmarks68, original.face.landmarks68)
        assert restored.image is None


def test_no_face_gives_empty_record(models):
    rgb = read_rgb(INPUTS["old_b_noface"])
    assert faces.detect_and_align(rgb, models, 512) == []
    assert faces.faces_to_json(rgb, [], 512) == {
        "image": {"width": 644, "height": 900}, "face_size": 512, "faces": []}


def test_malformed_record_and_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="malformed"):
        faces.faces_from_json({"face_size": 256, "faces": [{"index": 1, "matrix": [[1, 0]]}]})
    with pytest.raises(ValueError, match="RGB uint8"):
        faces.align_face(np.zeros((8, 8), np.uint8), np.eye(3), 16)
    with pytest.raises(ValueError, match="degenerate"):
        faces.similarity_matrix(np.zeros((5, 2), np.int64), 256)
    with pytest.raises(FileNotFoundError):
        faces.load_face_models(DATA / "missing.dat")


def test_record_names_matrices_by_direction_and_reads_earlier_records(models):
    rgb = read_rgb(INPUTS["scratch_d"])
    record = json.loads(json.dumps(faces.faces_to_json(rgb, faces.detect_and_align(rgb, models,
                                                                                   256), 256)))
    entry = record["faces"][0]
    to_photo, to_face = np.array(entry["face_to_photo"]), np.array(entry["photo_to_face"])
    # face_to_photo sends the template's eye centre to where the photo's eye is
    left_eye = faces.face_template(256)[0]
    mapped = to_photo @ np.array([left_eye[0], left_eye[1], 1.0])
    assert np.hypot(*(mapped[:2] - entry["five_points"][0])) < 6.0, (mapped, entry)
    np.testing.assert_allclose(to_face @ to_photo, np.eye(3), atol=1e-12)
    # a record of an earlier version (matrix = aligned -> photo, inverse = photo -> aligned)
    legacy = {**record, "faces": [{**{k: v for k, v in e.items()
                                      if k not in ("face_to_photo", "photo_to_face")},
                                   "matrix": e["face_to_photo"], "inverse": e["photo_to_face"]}
                                  for e in record["faces"]]}
    for new, old in zip(faces.faces_from_json(record), faces.faces_from_json(legacy)):
        assert np.array_equal(new.face_to_photo, old.face_to_photo)
        assert np.array_equal(new.photo_to_face, old.photo_to_face)
    # without photo_to_face, its inverse is computed
    only = {**record, "faces": [{k: v for k, v in e.items() if k != "photo_to_face"}
                                for e in record["faces"]]}
    np.testing.assert_allclose(faces.faces_from_json(only)[0].photo_to_face, to_face, atol=1e-12)
