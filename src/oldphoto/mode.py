"""The run mode of one photo: which networks, face size, mask dilation and stage-1 path it gets.

The official ``run.py`` has two switches, ``--with_scratch`` and ``--HR``.  Everything they imply
is written here once and looked up everywhere else (run plan, job tasks, CLI, tiling):

============  =================  ======================  ================  =========  ========
mode          scratch detection  mapping                 decoder           mask dil.  faces
============  =================  ======================  ================  =========  ========
quality       no                 mapping_quality         VAE_B_quality     –          256 px
quality+hr    no                 mapping_quality         VAE_B_quality     –          512 px
scratch       yes                mapping_scratch         VAE_B_scratch     none       256 px
scratch+hr    yes                mapping_Patch_Attention VAE_B_scratch     3 × (3×3)  512 px
============  =================  ======================  ================  =========  ========

The encoder is always ``VAE_A_quality``; the face generator is ``Setting_9_epoch_100`` (256 px) or
``FaceSR_512`` (512 px).  ``--HR`` without scratches changes only the faces, as in the official
code.  A mode belongs to a photo, not to a run: a photo sheet can give every photo its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

Stage1Path = Literal["quality", "scratch", "hr"]

ENCODER = "VAE_A_quality"
DETECTOR = "detection"
HR_MASK_DILATION = 3
"""Dilations (3×3 kernel) of the scratch mask in HR mode: together a 7×7 square dilation."""


class StageNetworks(NamedTuple):
    """The official checkpoints each stage of a photo runs, in pipeline order."""

    detector: tuple[str, ...]
    """Stage 1, scratch detection (the scratch modes)."""
    stage1: tuple[str, ...]
    """Stage 1, global restoration: encoder, mapping, decoder (of both paths when the triage
    picks one at run time)."""
    face: tuple[str, ...]
    """Stage 3, face enhancement."""

    def group(self, group: str) -> tuple[str, ...]:
        """The networks of one group of official checkpoints (they come in separate zips):
        ``global`` (detector and stage 1) or ``face``."""
        if group == "global":
            return self.detector + self.stage1
        if group == "face":
            return self.face
        raise ValueError(f"unknown checkpoint group {group!r}; expected global or face")

    @property
    def all(self) -> tuple[str, ...]:
        return self.detector + self.stage1 + self.face


@dataclass(frozen=True)
class Mode:
    """How one photo is restored (the official ``--with_scratch`` and ``--HR`` switches).

    Args:
        with_scratch: detect scratches and restore with the mask-aware mapping.
        hr: high-resolution mode: patch-attention mapping on a dilated mask (with scratches) and
            512-px faces.
    """

    with_scratch: bool = False
    hr: bool = False

    # -- stage 1 ------------------------------------------------------------------------------
    @property
    def stage1_path(self) -> Stage1Path:
        """``quality``, ``scratch`` or ``hr``: the network path of stage 1."""
        if not self.with_scratch:
            return "quality"
        return "hr" if self.hr else "scratch"

    @property
    def mapping(self) -> str:
        return {"quality": "mapping_quality", "scratch": "mapping_scratch",
                "hr": "mapping_Patch_Attention"}[self.stage1_path]

    @property
    def decoder(self) -> str:
        return "VAE_B_scratch" if self.with_scratch else "VAE_B_quality"

    @property
    def stage1_networks(self) -> tuple[str, str, str]:
        """``(encoder, mapping, decoder)`` checkpoint names of stage 1."""
        return ENCODER, self.mapping, self.decoder

    @property
    def mask_dilation(self) -> int:
        """3×3 dilations applied to the scratch mask before restoration (HR only)."""
        return HR_MASK_DILATION if self.stage1_path == "hr" else 0

    # -- faces --------------------------------------------------------------------------------
    @property
    def face_size(self) -> int:
        return 512 if self.hr else 256

    @property
    def face_network(self) -> str:
        return "FaceSR_512" if self.hr else "Setting_9_epoch_100"

    # -- all of it ------------------------------------------------------------------------------
    def networks(self, *, either_path: bool = False) -> StageNetworks:
        """Every checkpoint this mode runs, per stage: the one place that says which networks a
        photo needs (the run plan asks it with the photo's backend).

        ``either_path``: the photo's scratch triage picks its stage-1 path at run time
        (``with_scratch: auto``), so its stage 1 is ready for both: this mode's networks and
        the quality path's.
        """
        stage1 = list(self.stage1_networks)
        if either_path:
            stage1 += [n for n in Mode(False, self.hr).stage1_networks if n not in stage1]
        return StageNetworks((DETECTOR,) if self.with_scratch else (), tuple(stage1),
                             (self.face_network,))

    @property
    def key(self) -> str:
        """Short stable name: ``quality``, ``quality+hr``, ``scratch``, ``scratch+hr``."""
        return ("scratch" if self.with_scratch else "quality") + ("+hr" if self.hr else "")

    @classmethod
    def from_key(cls, key: str) -> "Mode":
        base, _, hr = key.partition("+")
        if base not in ("quality", "scratch") or hr not in ("", "hr"):
            raise ValueError(f"unknown mode {key!r}; expected quality, quality+hr, scratch or "
                             "scratch+hr")
        return cls(with_scratch=base == "scratch", hr=hr == "hr")

    def __str__(self) -> str:
        return self.key


ALL_MODES = tuple(Mode(s, h) for s in (False, True) for h in (False, True))
