"""Archival derivatives: what a restoration of a master must keep, and say about itself.

One concern per module:

* :mod:`~oldphoto.archival.master` — reading an original: :func:`read_original` (the photo as
  the restoration sees it, in the sRGB working space), :func:`read_master` (everything to carry
  over, read-only) and :func:`read_master_pixels16` (full-precision pixels).
* :mod:`~oldphoto.archival.colour` — the sRGB working space and back (littleCMS via ImageCms).
* :mod:`~oldphoto.archival.depth` — :func:`final_16bit`: a real 16-bit final from the 8-bit
  restoration.
* :mod:`~oldphoto.archival.derivative` — :func:`write_derivative` (PNG/TIFF/JPEG, RGB or grey,
  ICC, dpi, EXIF/IPTC/XMP, atomic).
* :mod:`~oldphoto.archival.metadata` — EXIF, IPTC-IIM and XMP read and written in memory through
  libexiv2.
* :mod:`~oldphoto.archival.provenance` — IPTC Digital Source Type, xmpMM identity, DerivedFrom
  and History, the JSON sidecar.
* :mod:`~oldphoto.archival.changes` — :func:`change_map`.
* :mod:`~oldphoto.archival.tone` — ``tone: keep`` for greyscale and toned prints.
* :mod:`~oldphoto.archival.formats` — output formats and extensions (standard library only).
* :mod:`~oldphoto.archival.final` — the final-output job: all of the above for one photo.
* :mod:`~oldphoto.archival.settings` — what the record says was done: the path the photo took,
  its settings typed.
* :mod:`~oldphoto.archival.supersede` — one final per photo: a stale one is moved aside.

Names are imported on first use (PEP 562), so ``oldphoto.archival.formats`` stays importable
where numpy is not wanted (building the workflow's DAG).
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "change_map": "changes", "replaced_face_boxes": "changes",
    "from_working_srgb": "colour", "grey_from_rgb": "colour", "to_working_srgb": "colour",
    "working_profile": "colour",
    "final_16bit": "depth",
    "write_derivative": "derivative",
    "output_format_for": "formats", "output_format_for_file": "formats",
    "Master": "master", "read_master": "master", "read_master_pixels16": "master",
    "read_original": "master",
    "sha256_file": "master",
    "digital_source_type": "provenance", "provenance_record": "provenance",
    "provenance_xmp": "provenance", "write_sidecar": "provenance",
    "apply_tone_keep": "tone", "is_monochrome": "tone",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'oldphoto.archival' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"oldphoto.archival.{_HOMES[name]}"), name)
    globals()[name] = value
    return value
