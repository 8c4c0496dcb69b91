"""Archival derivatives: what a restoration of a master must keep, and say about itself.

One concern per module:

* :mod:`~oldphoto.archival.master` — :func:`read_master` (everything to carry over, read-only)
  and :func:`read_master_pixels16` (full-precision pixels).
* :mod:`~oldphoto.archival.colour` — the sRGB working space and back (littleCMS via ImageCms).
* :mod:`~oldphoto.archival.depth` — :func:`final_16bit`: a real 16-bit final from the 8-bit
  restoration.
* :mod:`~oldphoto.archival.derivative` — :func:`write_derivative` (PNG/TIFF/JPEG, ICC, dpi,
  EXIF/IPTC/XMP through exiftool, atomic).
* :mod:`~oldphoto.archival.provenance` — IPTC Digital Source Type, xmpMM DerivedFrom/History,
  the JSON sidecar.
* :mod:`~oldphoto.archival.changes` — :func:`change_map`.
* :mod:`~oldphoto.archival.tone` — ``tone: keep`` for greyscale and toned prints.

Only these modules import heavy libraries, inside the functions that need them.
"""

from oldphoto.archival.changes import change_map
from oldphoto.archival.colour import from_working_srgb, render_srgb, to_working_srgb
from oldphoto.archival.depth import final_16bit, level_count
from oldphoto.archival.derivative import output_format_for, write_derivative
from oldphoto.archival.master import Master, read_master, read_master_pixels16, sha256_file
from oldphoto.archival.provenance import (digital_source_type, provenance_record,
                                          provenance_xmp, write_sidecar)
from oldphoto.archival.tone import apply_tone_keep, is_monochrome

__all__ = [
    "Master", "apply_tone_keep", "change_map", "digital_source_type", "final_16bit",
    "from_working_srgb", "is_monochrome", "level_count", "output_format_for",
    "provenance_record", "provenance_xmp", "read_master", "read_master_pixels16",
    "render_srgb", "sha256_file", "to_working_srgb", "write_derivative", "write_sidecar",
]
