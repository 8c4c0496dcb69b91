"""Where the nine official checkpoints live, which network each one is, and their manifests.

:data:`OFFICIAL_CHECKPOINTS` is the one table of the official checkpoints: per registry name, the
file (relative to a clone of the official repository after unpacking its two release zips), the
bundled manifest (``oldphoto/data/manifests/<manifest>.json``: every state-dict key in order with
its shape and dtype) and the constructor with that checkpoint's inference options (the class name
in :mod:`oldphoto.nets` and its keyword arguments; :mod:`oldphoto.checkpoints.registry` builds
the networks from it).
Everything else here is looked up in that table. Nothing in this module imports torch.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any

from oldphoto.errors import CheckpointError

__all__ = [
    "OfficialCheckpoint",
    "OFFICIAL_CHECKPOINTS",
    "OFFICIAL_FILES",
    "OFFICIAL_ZIPS",
    "MANIFEST_DIR",
    "manifest",
    "manifest_of",
    "expected_layout",
    "known_name",
    "official_path",
    "missing_checkpoints",
    "missing_message",
    "zip_of",
]

MANIFEST_DIR = Path(__file__).resolve().parent.parent / "data" / "manifests"


@dataclass(frozen=True)
class OfficialCheckpoint:
    """One official checkpoint file and the network it holds.

    Attributes:
        file: path relative to ``checkpoints_dir`` (POSIX separators).
        arch: class name of the network in :mod:`oldphoto.nets`.
        options: keyword arguments of that class for this checkpoint (its inference options).
    """

    name: str
    file: str
    arch: str
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def manifest(self) -> str:
        """Stem of the bundled manifest: ``detection`` -> ``detection_FT_Epoch_latest``."""
        return f"{self.name}_{PurePosixPath(self.file).stem}"


_RESTORATION = "Global/checkpoints/restoration"
_FACE = "Face_Enhancement/checkpoints"
_VAE = {"input_nc": 3, "output_nc": 3, "ngf": 64, "k_size": 4, "n_downsampling": 3}

#: registry name -> official checkpoint, in stage order. ``Global/`` is where
#: ``global_checkpoints.zip`` is unpacked, ``Face_Enhancement/`` where ``face_checkpoints.zip`` is.
#: Each file equals its manifest's ``checkpoint`` field (checked by the tests).
OFFICIAL_CHECKPOINTS: dict[str, OfficialCheckpoint] = {
    c.name: c
    for c in (
        OfficialCheckpoint("detection", "Global/checkpoints/detection/FT_Epoch_latest.pt",
                           "UNet", {"in_channels": 1, "out_channels": 1, "depth": 4, "wf": 6,
                                    "conv_num": 2}),
        OfficialCheckpoint("VAE_A_quality", f"{_RESTORATION}/VAE_A_quality/latest_net_G.pth",
                           "GlobalGenerator_DCDCv2", _VAE),
        OfficialCheckpoint("VAE_B_quality", f"{_RESTORATION}/VAE_B_quality/latest_net_G.pth",
                           "GlobalGenerator_DCDCv2", _VAE),
        OfficialCheckpoint("VAE_B_scratch", f"{_RESTORATION}/VAE_B_scratch/latest_net_G.pth",
                           "GlobalGenerator_DCDCv2", _VAE),
        OfficialCheckpoint("mapping_quality",
                           f"{_RESTORATION}/mapping_quality/latest_net_mapping_net.pth",
                           "Mapping_Model", {"nc": 64, "mc": 512, "n_blocks": 6}),
        OfficialCheckpoint("mapping_scratch",
                           f"{_RESTORATION}/mapping_scratch/latest_net_mapping_net.pth",
                           "Mapping_Model_with_mask", {"nc": 64, "mc": 512, "n_blocks": 6}),
        OfficialCheckpoint("mapping_Patch_Attention",
                           f"{_RESTORATION}/mapping_Patch_Attention/latest_net_mapping_net.pth",
                           "Mapping_Model_with_mask_2",
                           {"nc": 64, "mc": 512, "patch_sizes": (8, 4, 2)}),
        OfficialCheckpoint("Setting_9_epoch_100", f"{_FACE}/Setting_9_epoch_100/latest_net_G.pth",
                           "SPADEGenerator", {"load_size": 256, "ngf": 64}),
        OfficialCheckpoint("FaceSR_512", f"{_FACE}/FaceSR_512/latest_net_G.pth",
                           "SPADEGenerator", {"load_size": 512, "ngf": 64}),
    )
}

#: registry name -> path relative to ``checkpoints_dir`` (a view of :data:`OFFICIAL_CHECKPOINTS`).
OFFICIAL_FILES: dict[str, str] = {name: c.file for name, c in OFFICIAL_CHECKPOINTS.items()}

_RELEASE = "https://github.com/microsoft/Bringing-Old-Photos-Back-to-Life/releases/download/v1.0"

#: release zip -> (folder of the official repository it is unpacked into, download URL)
OFFICIAL_ZIPS: dict[str, tuple[str, str]] = {
    "global_checkpoints.zip": ("Global", f"{_RELEASE}/global_checkpoints.zip"),
    "face_checkpoints.zip": ("Face_Enhancement", f"{_RELEASE}/face_checkpoints.zip"),
}

def known_name(name: str, path: str | Path | None = None) -> str:
    """``name`` when it is an official checkpoint, else :class:`CheckpointError` on ``path``."""
    if name not in OFFICIAL_CHECKPOINTS:
        raise CheckpointError(
            path, f"unknown network {name!r}; known: {', '.join(OFFICIAL_CHECKPOINTS)}"
        )
    return name


# -- manifests --------------------------------------------------------------------------------


def manifest(stem: str) -> dict[str, Any]:
    """The bundled manifest ``data/manifests/<stem>.json`` (e.g. ``"detection_FT_Epoch_latest"``).

    Its ``entries`` list the official state dict in order as ``[key, shape, dtype]``; its
    ``recipe_salt`` distinguishes checkpoints that share a layout (used by the test weights).
    """
    path = MANIFEST_DIR / f"{stem}.json"
    if not path.is_file():
        known = sorted(p.stem for p in MANIFEST_DIR.glob("*.json"))
        raise KeyError(f"no manifest {stem!r}; known: {known}")
    return json.loads(path.read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def manifest_of(name: str) -> dict[str, Any]:
    """The bundled manifest of official checkpoint ``name`` (cached; do not modify it)."""
    return manifest(OFFICIAL_CHECKPOINTS[known_name(name)].manifest)


def expected_layout(name: str) -> dict[str, tuple[list[int], str]]:
    """key -> (shape, dtype) of the state dict of ``name``, in manifest order."""
    return {key: (list(shape), dtype) for key, shape, dtype in manifest_of(name)["entries"]}


# -- where the files live ---------------------------------------------------------------------


def official_path(checkpoints_dir: str | Path, name: str) -> Path:
    """Where the official file of network ``name`` lies under ``checkpoints_dir``."""
    return Path(checkpoints_dir) / OFFICIAL_FILES[known_name(name, checkpoints_dir)]


def missing_checkpoints(checkpoints_dir: str | Path, names: Iterable[str]) -> list[Path]:
    """The official files of ``names`` that are not regular files under ``checkpoints_dir``."""
    paths = dict.fromkeys(official_path(checkpoints_dir, n) for n in names)  # ordered, unique
    return [p for p in paths if not p.is_file()]


def zip_of(name: str) -> str:
    """The release zip that holds the official file of ``name``."""
    top = OFFICIAL_FILES[name].split("/", 1)[0]
    return next(z for z, (folder, _) in OFFICIAL_ZIPS.items() if folder == top)


def missing_message(checkpoints_dir: str | Path, missing: Iterable[str | Path]) -> str:
    """A message that says exactly which files to put where, and where to get them."""
    root = Path(checkpoints_dir)
    missing = [Path(p) for p in missing]
    by_path = {official_path(root, n): n for n in OFFICIAL_FILES}
    lines = [
        f"{len(missing)} official checkpoint file(s) missing under {root}:",
        *(f"  {p}" for p in missing),
    ]
    zips = []
    for p in missing:
        name = by_path.get(p)
        if name is not None and zip_of(name) not in zips:
            zips.append(zip_of(name))
    zips = zips or list(OFFICIAL_ZIPS)
    lines.append(
        "They come from release v1.0 of the official repository "
        "(microsoft/Bringing-Old-Photos-Back-to-Life):"
    )
    for z in zips:
        folder, url = OFFICIAL_ZIPS[z]
        lines.append(f"  {url}  -> unzip into {root / folder}/")
    lines.append(
        "(an existing clone of the official repository with its checkpoints unpacked works as "
        "checkpoints_dir as is; or set allow_download: true to let the download rule fetch them)"
    )
    return "\n".join(lines)
