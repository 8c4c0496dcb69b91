"""The four stages as whole-photo operations, for either backend.

Each function takes arrays (and, for the ``pretrained`` backend, loaded networks) and returns
arrays; the workflow scripts only read and write files around them.  Images are uint8 RGB
H×W×3, masks uint8 H×W with 255 = scratch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from oldphoto.errors import BadImageError


@dataclass
class Stage1Result:
    """The three stage-1 images of the official layout."""

    origin: np.ndarray  # the photo as the network saw it (resized to the network grid)
    input_image: np.ndarray  # the network input, de-normalised (holes painted in scratch mode)
    restored: np.ndarray  # the restored photo: input of stages 2-4


MIN_NETWORK_GRID = 8
"""Smallest side (px) of the quality path's network grid the pretrained networks can run on."""


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
                   networks: Mapping[str, Any] | None = None, device: Any = "cpu",
                   test_mode: str = "Full", hr: bool = False,
                   stretch: str = "official", memory_budget_mb: int = 8000,
                   log: Callable[[str], None] = print, tiling: str = "auto") -> Stage1Result:
    """Global restoration of one photo (quality path, scratch path, or HR scratch path).

    Pretrained backend: the whole photo at once (the exact official computation) whenever
    ``oldphoto.tiling`` estimates that the job stays within ``memory_budget_mb``; larger photos
    run in overlapping tiles with feathered seams (approximate; logged).  ``tiling`` forces
    ``"whole"`` or ``"tiled"`` (benchmarks, tests).
    """
    if backend == "pretrained":
        from oldphoto import nets, restore
        from oldphoto.tiling import ATTENTION_BUDGET_CAP

        budget = memory_budget_mb * 2**20
        # Exact attention in query chunks: half the job's budget, at most 1 GiB, for the scores
        # (larger chunks are no faster; see oldphoto.tiling).
        attention_budget = min(budget // 2, ATTENTION_BUDGET_CAP)
        nets.set_attention_budget(attention_budget)

        assert networks is not None
        generator = restore.global_generator(networks["encoder"], networks["mapping"],
                                             networks["decoder"])
        if mask is None:
            origin = restore.prepare_quality_input(rgb, test_mode)
            if min(origin.shape[:2]) < MIN_NETWORK_GRID:
                # The VAE encoder downsamples 4×; a latent side of 1 px makes its instance norm
                # or reflection padding raise an obscure error (e.g. 3×3 or 13×5 in Full mode).
                raise BadImageError(None, f"image too small: {rgb.shape[1]}×{rgb.shape[0]} px; "
                                          f"the restoration networks need a grid of at least "
                                          f"{MIN_NETWORK_GRID}×{MIN_NETWORK_GRID} px (both "
                                          "sides ≥ 6 px in test_mode Full)")
        else:
            origin = rgb
        plan = restore.plan_stage1(origin, mask, hr, budget, attention_budget, force=tiling)
        log(f"stage 1: {plan.describe()}")
        if plan.tile is not None and not plan.fits:
            log("warning: the smallest tile's estimate exceeds memory_budget_mb; running anyway")
        if mask is None:
            input_image, restored = restore.restore_quality(origin, generator, device,
                                                            tile=plan.tile, log=log)
        else:
            input_image, restored = restore.restore_scratch(rgb, mask, generator, hr, device,
                                                            tile=plan.tile, log=log)
        return Stage1Result(origin, input_image, restore.save_restored(restored, stretch))

    from oldphoto import classical

    if mask is None:
        return Stage1Result(rgb, rgb, classical.restore(rgb, None))
    holes = rgb.copy()
    holes[mask > 0] = 255
    return Stage1Result(rgb, holes, classical.restore(rgb, mask))


# ---------------------------------------------------------------------------------------------
# Stage 2


def detect_and_align_faces(rgb: np.ndarray, landmarks: str, face_size: int):
    """Faces of the restored photo: ``(record for faces.json, list of aligned face images)``."""
    from oldphoto import faces

    models = faces.load_face_models(landmarks)
    aligned = faces.detect_and_align(rgb, models, face_size)
    record = faces.faces_to_json(rgb, aligned, face_size)
    return record, [face.image for face in aligned]


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
                  enhanced: Mapping[int, np.ndarray], *, blending: str = "official",
                  original_size: tuple[int, int] | None = None,
                  log: Callable[[str], None] = print) -> np.ndarray:
    """Blend the enhanced faces into the restored photo; resize to ``original_size`` (w, h)."""
    from oldphoto import blend

    if record.get("faces"):
        final, notes = blend.paste_faces_from_record(restored, record, enhanced, blending)
        for note in notes:
            log(note)
    else:
        final = restored
    if original_size is not None and tuple(original_size) != (final.shape[1], final.shape[0]):
        from oldphoto.imageio import resize_to

        final = resize_to(final, tuple(original_size))
    return final


def require_size(rgb: np.ndarray, minimum: int, path: str) -> None:
    if min(rgb.shape[:2]) < minimum:
        raise BadImageError(path, f"image too small ({rgb.shape[1]}x{rgb.shape[0]}); "
                                  f"at least {minimum} px per side is needed")


# ---------------------------------------------------------------------------------------------
# File formats shared by the stages


def stage1_network_names(with_scratch: bool, hr: bool) -> tuple[str, str, str]:
    """(encoder, mapping, decoder) checkpoint names of the stage-1 path."""
    if not with_scratch:
        return "VAE_A_quality", "mapping_quality", "VAE_B_quality"
    mapping = "mapping_Patch_Attention" if hr else "mapping_scratch"
    return "VAE_A_quality", mapping, "VAE_B_scratch"


def face_network_name(hr: bool) -> str:
    return "FaceSR_512" if hr else "Setting_9_epoch_100"


def mask_to_rgb(mask: np.ndarray) -> np.ndarray:
    """A mask as the official code writes it: 3-channel 0/255 (our fix: all-ones stays 255)."""
    binary = np.where(mask > 0, 255, 0).astype(np.uint8)
    return np.repeat(binary[:, :, None], 3, axis=2)


def read_mask(path: str) -> np.ndarray:
    """A mask PNG (1 or 3 channels) -> uint8 H×W {0, 255} from its first channel."""
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"))
    return np.where(arr[:, :, 0] > 0, 255, 0).astype(np.uint8)


def write_record(path, record: Mapping[str, Any]) -> None:
    from oldphoto.imageio import write_json

    write_json(path, record)


def read_record(path) -> dict[str, Any]:
    import json

    with open(path, encoding="utf-8") as handle:
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
