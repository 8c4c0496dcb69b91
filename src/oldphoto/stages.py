"""The four stages as whole-photo operations, for either backend.

Each function takes arrays (and, for the ``pretrained`` backend, loaded networks) and returns
arrays; the workflow's tasks (:mod:`oldphoto.jobs.tasks`) only read and write files around them.
Images are uint8 RGB H×W×3, masks uint8 H×W with 255 = scratch.  What a photo's
:class:`~oldphoto.mode.Mode` implies (networks, mask dilation, face size) is looked up there.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from oldphoto.mode import Mode
from oldphoto.restore import RestoredImages
from oldphoto.scratch import mask_to_rgb, read_mask  # noqa: F401 - the stage file formats

MIN_NETWORK_GRID = 8
"""Smallest side (px) of the quality path's network grid the pretrained networks can run on."""

DEFAULT_MEMORY_BUDGET_MB = 8000
"""Memory budget (MB) of one stage-1 job when none is given (config ``memory_budget_mb``)."""


# ---------------------------------------------------------------------------------------------
# Stage 1


def detect_scratches(rgb: np.ndarray, backend: str, unet: Any = None,
                     device: Any = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Scratch mask of a photo: ``(image the restoration will use, mask)``."""
    if backend == "pretrained":
        from oldphoto.scratch import detect_scratches as detect_with_unet

        return detect_with_unet(rgb, unet, device)
    from oldphoto import classical

    return rgb, classical.detect_scratches(rgb)


def restore_global(rgb: np.ndarray, mask: np.ndarray | None, backend: str, *,
                   mode: Mode | None = None, networks: Mapping[str, Any] | None = None,
                   device: Any = "cpu", test_mode: str | None = None, hr: bool | None = None,
                   stage1_stretch: str | None = None,
                   memory_budget_mb: int = DEFAULT_MEMORY_BUDGET_MB,
                   log: Callable[[str], None] = print, tiling: str = "auto") -> RestoredImages:
    """Global restoration of one photo, the function the workflow runs.

    Pretrained backend: the three networks become the stage-1 generator and
    :func:`oldphoto.restore.restore_image` — the function the golden tests check — runs it, on the
    whole photo (the exact official computation) whenever :mod:`oldphoto.tiling` estimates that
    the job stays within ``memory_budget_mb``, in overlapping tiles otherwise.  ``tiling`` forces
    ``"whole"`` or ``"tiled"`` (benchmarks, tests).

    Args:
        mode: the photo's mode; by default the scratch path when ``mask`` is given (``hr``
            chooses the HR scratch path, kept for callers that have no mode).
        test_mode: the quality path's geometry (``Full``, ``Scale``, ``Crop``); None: the
            official ``Full`` (the setting does not apply to the scratch path or the classical
            backend).
        stage1_stretch: how the network's output becomes 8 bits (``official``, ``clamp``);
            None: ``official``.
    """
    test_mode = test_mode or "Full"
    stage1_stretch = stage1_stretch or "official"
    if mode is None:
        mode = Mode(with_scratch=mask is not None, hr=bool(hr))
    if backend == "pretrained":
        from oldphoto import restore
        from oldphoto.tiling import ATTENTION_BUDGET_CAP

        assert networks is not None
        budget = memory_budget_mb * 2**20
        # Exact attention in query chunks: half the job's budget, at most 1 GiB, for the scores
        # (larger chunks are no faster; see oldphoto.tiling).
        attention_budget = min(budget // 2, ATTENTION_BUDGET_CAP)
        generator = restore.global_generator(networks["encoder"], networks["mapping"],
                                             networks["decoder"])
        if mask is None:
            origin = restore.prepare_quality_input(rgb, test_mode)
            if min(origin.shape[:2]) < MIN_NETWORK_GRID:
                from oldphoto.errors import BadImageError

                # The VAE encoder downsamples 4×; a latent side of 1 px makes its instance norm
                # or reflection padding raise an obscure error (e.g. 3×3 or 13×5 in Full mode).
                raise BadImageError(None, f"image too small: {rgb.shape[1]}×{rgb.shape[0]} px; "
                                          f"the restoration networks need a grid of at least "
                                          f"{MIN_NETWORK_GRID}×{MIN_NETWORK_GRID} px (both "
                                          "sides ≥ 6 px in test_mode Full)")
        return restore.restore_image(
            rgb, generator, device, mask=mask, test_mode=test_mode, hr=mode.hr,
            stretch=stage1_stretch, memory_budget=budget, attention_budget=attention_budget,
            log=log, tiling=tiling,
        )

    from oldphoto import classical

    if mask is None:
        return RestoredImages(rgb, rgb, classical.restore(rgb, None))
    holes = rgb.copy()
    holes[mask > 0] = 255
    return RestoredImages(rgb, holes, classical.restore(rgb, mask))


# ---------------------------------------------------------------------------------------------
# Stage 2


def detect_and_align_faces(rgb: np.ndarray, models: Any, face_size: int, options: Any = None):
    """Faces of the restored photo: ``(record for faces.json, list of aligned face images)``.

    ``models``: :func:`oldphoto.faces.load_face_models` (or the landmark model's path);
    ``options``: :class:`oldphoto.faces.FaceOptions` (default: the official stage 2, and the
    record has no ``options`` key, as before).
    """
    from oldphoto import faces

    if isinstance(models, (str, bytes)) or hasattr(models, "__fspath__"):
        models = faces.load_face_models(models)
    official = faces.FaceOptions()
    options = official if options is None else options
    aligned = faces.detect_and_align(rgb, models, face_size, options)
    record = faces.faces_to_json(rgb, aligned, face_size, None if options == official else options)
    return record, [face.image for face in aligned]


def no_faces_record(rgb: np.ndarray, face_size: int) -> dict[str, Any]:
    """The stage-2 record of a photo whose faces are left alone (``faces: no``)."""
    from oldphoto import faces

    record = faces.faces_to_json(rgb, [], face_size)
    record["detection"] = "off"
    return record


# ---------------------------------------------------------------------------------------------
# Stage 3


def enhance_face(face: np.ndarray, backend: str, generator: Any = None,
                 device: Any = "cpu") -> np.ndarray:
    if backend == "pretrained":
        from oldphoto.enhance import enhance_face as enhance_with_generator

        return enhance_with_generator(face, generator, device)
    from oldphoto import classical

    return classical.enhance_face(face)


# ---------------------------------------------------------------------------------------------
# Stage 4


def compose_final(restored: np.ndarray, record: Mapping[str, Any],
                  enhanced: Mapping[int, np.ndarray], *, face_blending: str,
                  original_size: tuple[int, int] | None = None,
                  log: Callable[[str], None] = print) -> np.ndarray:
    """Blend the enhanced faces into the restored photo (``face_blending``: ``official`` or
    ``adaptive``, :mod:`oldphoto.blend`); resize to ``original_size`` (w, h)."""
    from oldphoto import blend

    if record.get("faces"):
        final, notes = blend.paste_faces_from_record(restored, record, enhanced, face_blending)
        for note in notes:
            log(note)
    else:
        final = restored
    if original_size is not None and tuple(original_size) != (final.shape[1], final.shape[0]):
        from oldphoto.decode import resize_to

        final = resize_to(final, tuple(original_size))
    return final


# ---------------------------------------------------------------------------------------------
# The stage-2 record and stage-3 files


def record_path(path) -> str:
    """``faces.json`` given itself or the stage-2 folder of a photo."""
    from pathlib import Path

    path = Path(path)
    return str(path / "faces.json" if path.is_dir() else path)


def write_record(path, record: Mapping[str, Any]) -> None:
    from oldphoto.atomic import write_json

    write_json(path, record)


def read_record(path) -> dict[str, Any]:
    import json

    with open(record_path(path), encoding="utf-8") as handle:
        return json.load(handle)


def read_enhanced_faces(paths) -> dict[int, np.ndarray]:
    """Enhanced face files ``<image>_<k>.png`` -> {k: face}.

    ``paths`` holds files (``face_jobs: per_face``) or folders of such files (``per_image``).
    """
    from pathlib import Path

    from PIL import Image

    files = []
    for path in map(Path, paths):
        files.extend(sorted(path.glob("*.png")) if path.is_dir() else [path])
    faces = {}
    for path in files:
        index = int(path.stem.rsplit("_", 1)[1])
        with Image.open(path) as im:
            faces[index] = np.asarray(im.convert("RGB")).copy()
    return faces
