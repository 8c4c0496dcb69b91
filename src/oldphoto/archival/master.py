"""Reading an original (the master file), without touching it: its record, and its pixels.

:func:`read_original` is the photo as the restoration sees it: :func:`oldphoto.decode.read_image`
(8-bit RGB, oriented, alpha composited onto white) with its values converted to the sRGB working
space when the file embeds an RGB ICC profile; every job reads originals and finals through it.
:func:`read_master` gathers, in one frozen :class:`Master`, everything the final output needs
from the input: its name and sha256, format, colour model, bit depth, ICC profile, resolution,
EXIF orientation, and the EXIF / IPTC-IIM / XMP fields a derivative carries
(:class:`oldphoto.archival.metadata.Carried`, read by libexiv2 from the bytes in memory).
:func:`read_master_pixels16` decodes the pixels at full precision (float32 in [0, 1]), oriented
and composited exactly as :func:`oldphoto.decode.read_image` does for its 8-bit copy.

The master is only ever opened read-only (``open(path, "rb")``); libexiv2 parses a copy of its
bytes in memory: no lock, no rename, no write, no change of its modification time.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from oldphoto.decode import DEFAULT_MAX_PIXELS, DecodedImage
from oldphoto.errors import BadImageError, OldPhotoError
from oldphoto.hashing import sha256_file  # noqa: F401 - oldphoto.archival.sha256_file

if TYPE_CHECKING:
    from oldphoto.archival.metadata import Carried

GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"})
"""Pillow modes of a greyscale master (one colour channel; ``LA``: with alpha)."""


@dataclass(frozen=True)
class Master:
    """Everything a derivative carries over from its master file.

    Attributes:
        path: the master file (only its name goes into derivatives).
        name: the file name.
        sha256: hex digest of the file's bytes.
        size_bytes: file size.
        format: container as PIL names it (``"TIFF"``, ``"PNG"``, ``"JPEG"``, ...).
        bit_depth: bits per sample of the colour data (8 or 16; 32 for float/int TIFFs).
        width, height: pixel size as stored (before orientation).
        orientation: the EXIF orientation (1..8; 1 when absent or invalid); the decoders apply
            it to the pixels, derivatives are written with 1.
        icc_profile: the embedded ICC profile, or None.
        dpi: (x, y) resolution in pixels per inch, or None when the file does not state one
            (:func:`stated_dpi`: no default is ever assumed).
        colour_model: ``"grey"`` (one colour channel: Pillow modes :data:`GREY_MODES`) or
            ``"rgb"`` (everything else: RGB, palette, CMYK, ...).
        xmp: the raw XMP packet, or None.
        tags: every carried EXIF, IPTC and XMP field as libexiv2 names and prints it
            (``"Exif.Image.Artist"``, ``"Iptc.Application2.Credit"``, ``"Xmp.dc.title"``);
            read-only.  Empty with ``metadata=False``.
        carried: the same fields as libexiv2 containers, which
            :func:`oldphoto.archival.derivative.write_derivative` copies; None with
            ``metadata=False``.
    """

    path: Path
    name: str
    sha256: str
    size_bytes: int
    format: str
    bit_depth: int
    width: int
    height: int
    orientation: int
    icc_profile: bytes | None
    dpi: tuple[float, float] | None
    colour_model: str = "rgb"
    xmp: bytes | None = None
    tags: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    carried: "Carried | None" = field(default=None, compare=False, repr=False)


def _bit_depth(im) -> int:
    from oldphoto.decode import raw_mode  # the decoder's own test for 16-bit colour

    if im.mode.startswith("I;16") or ";16" in raw_mode(im):
        return 16
    if im.mode == "I" and im.format == "PNG":  # older Pillow: a 16-bit grey PNG reads as "I"
        return 16
    if im.mode in ("I", "F"):
        return 32
    if im.mode == "1":
        return 1
    return 8


def _per_inch(x: Any, y: Any, unit: Any) -> tuple[float, float] | None:
    """(x, y) in pixels per inch from a resolution and its unit (2 inch, 3 cm); None when the
    unit is not absolute or the values are not positive numbers."""
    try:
        x, y = float(x), float(y)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if not (x > 0 and y > 0) or x != x or y != y:
        return None
    if unit == 3:
        x, y = x * 2.54, y * 2.54
    elif unit != 2:
        return None
    # PNG stores pixels per metre: 47244 px/m reads back as 1199.9976 dpi.
    return round(x, 2), round(y, 2)


def stated_dpi(im) -> tuple[float, float] | None:
    """The resolution the file states, in pixels per inch, or None.

    Only what the file says: a TIFF's XResolution/YResolution with an inch or centimetre
    ResolutionUnit (absent unit: inch, as TIFF 6.0 defines it); a PNG's ``pHYs`` in pixels per
    metre; a JPEG's JFIF density in dots per inch or cm; otherwise the EXIF IFD0 resolution when
    the file has one.  Pillow's defaults are not taken: it reports 1 dpi for a TIFF without
    resolution tags and 72 dpi for a JPEG whose EXIF has none.
    """
    fmt = im.format or ""
    if fmt == "TIFF":
        tags = getattr(im, "tag_v2", {})
        if 282 in tags and 283 in tags:
            return _per_inch(tags[282], tags[283], tags.get(296, 2))
        return None
    if fmt == "PNG" and "dpi" in im.info:  # pHYs in metres (aspect-only pHYs gives no "dpi")
        dpi = im.info["dpi"]
        return _per_inch(dpi[0], dpi[1], 2)
    if fmt == "JPEG" and im.info.get("jfif_unit") in (1, 2):
        density = im.info.get("jfif_density", (0, 0))
        return _per_inch(density[0], density[1], {1: 2, 2: 3}[im.info["jfif_unit"]])
    if fmt not in ("TIFF", "PNG", "JPEG") and im.info.get("dpi"):
        dpi = im.info["dpi"]
        return _per_inch(dpi[0], dpi[1], 2)
    try:
        exif = im.getexif()
    except Exception:  # noqa: BLE001 - broken EXIF states no resolution
        return None
    if 0x011A in exif and 0x011B in exif:
        return _per_inch(exif[0x011A], exif[0x011B], exif.get(0x0128, 2))
    return None


def read_icc_profile(path: str | Path) -> bytes | None:
    """The ICC profile embedded in ``path`` (PNG iCCP, TIFF tag 34675, JPEG APP2), or None.

    Reads the file's header only (read-only); the pixels are not decoded.

    Raises:
        BadImageError: the file cannot be read or identified.
    """
    from PIL import Image

    from oldphoto.decode import DecodingErrors

    with DecodingErrors(Path(path), "not a readable image", None), open(path, "rb") as handle, \
            warnings.catch_warnings(), Image.open(handle) as im:
        warnings.simplefilter("ignore", UserWarning)
        return im.info.get("icc_profile") or None


def read_original(path: str | Path,
                  max_pixels: int | None = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """A photo as the restoration sees it: decoded, its values in the sRGB working space.

    :func:`oldphoto.decode.read_image` (``max_pixels`` is its decompression-bomb guard), then,
    when the file embeds an RGB ICC profile (:func:`~oldphoto.archival.colour.working_profile`),
    :func:`~oldphoto.archival.colour.to_working_srgb`, which adds the note "converted from its
    ICC profile to sRGB".  A grey profile, or none, leaves the values as decoded
    (``docs/archival.md``, Colour).

    Raises:
        BadImageError: the file cannot be decoded, or its ICC profile is unreadable (the reason
            names this file).
    """
    import dataclasses

    from oldphoto.archival.colour import to_working_srgb, working_profile
    from oldphoto.decode import read_image

    photo = read_image(path, max_pixels=max_pixels)
    try:
        icc = working_profile(read_icc_profile(path))
    except OldPhotoError as err:  # the profile's reason, with this file's name
        raise type(err)(path, err.reason) from None
    if icc is None:
        return photo
    return dataclasses.replace(photo, rgb=to_working_srgb(photo.rgb, icc),
                               notes=[*photo.notes, "converted from its ICC profile to sRGB"])


def read_master(path: str | Path, *, metadata: bool = True) -> Master:
    """Read everything a derivative carries over from the master ``path`` (read-only).

    ``metadata=False`` skips the EXIF/IPTC/XMP fields (``xmp``, ``carried`` None, ``tags``
    empty): the facts a provenance record needs without the fields a plain output does not
    carry.

    Raises:
        BadImageError: the file cannot be read or identified, or its metadata is unreadable.
    """
    from PIL import Image

    from oldphoto.archival.metadata import read_carried
    from oldphoto.decode import DecodingErrors, exif_orientation

    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BadImageError(path, "file not found") from None
    except OSError as err:
        raise BadImageError(path, f"cannot read file: {err.strerror or err}") from None
    with DecodingErrors(path, "not a readable image", None), warnings.catch_warnings(), \
            Image.open(io.BytesIO(data)) as im:
        # PIL warns about the IPTC tag's TIFF type; libexiv2 reads IPTC below.
        warnings.simplefilter("ignore", UserWarning)
        notes: list[str] = []
        fmt = im.format or ""
        width, height = im.size
        bit_depth = _bit_depth(im)
        colour_model = "grey" if im.mode in GREY_MODES else "rgb"
        orientation = exif_orientation(im, notes)
        icc = im.info.get("icc_profile") or None
        dpi = stated_dpi(im)
    carried = read_carried(data, path) if metadata else None
    return Master(path=path, name=path.name, sha256=hashlib.sha256(data).hexdigest(),
                  size_bytes=len(data), format=fmt, bit_depth=bit_depth, width=width,
                  height=height, orientation=orientation, icc_profile=icc, dpi=dpi,
                  colour_model=colour_model,
                  xmp=carried.xmp_packet if carried is not None else None,
                  tags=MappingProxyType(carried.texts() if carried is not None else {}),
                  carried=carried)


def read_master_pixels16(path: str | Path) -> np.ndarray:
    """The master's pixels at full precision: float32 H×W×3 in [0, 1], RGB, oriented.

    16-bit samples are divided by 65535 and 8-bit ones by 255; grey is copied to R = G = B; an
    alpha channel is composited onto white (as :func:`oldphoto.decode.read_image` does for its
    8-bit copy, so ``round(read_master_pixels16(p) * 255)`` is that copy within one level) and
    the EXIF orientation is applied.  The alpha itself is read by ``read_image``.

    Raises:
        BadImageError: the file cannot be decoded.
    """
    import cv2
    from PIL import Image

    from oldphoto.decode import DecodingErrors, exif_orientation, orient

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise BadImageError(path, f"cannot read file: {err.strerror or err}") from None
    with DecodingErrors(path, "not a readable image", None), Image.open(io.BytesIO(data)) as im:
        mode = im.mode
        # As read_image does: the orientation left after a full load (PIL's TIFF loader applies
        # and removes the TIFF orientation, and OpenCV applies it to TIFFs too).
        im.load()
        orientation = exif_orientation(im, [])
        array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if array is None or array.dtype not in (np.uint8, np.uint16):
            # Formats or modes OpenCV does not decode exactly: PIL's 8-bit RGB(A).
            im.load()
            has_alpha = "A" in mode or "transparency" in im.info
            array = np.asarray(im.convert("RGBA" if has_alpha else "RGB"))
            array = array[:, :, [2, 1, 0, 3] if has_alpha else [2, 1, 0]]
    scale = 65535.0 if array.dtype == np.uint16 else 255.0
    values = array.astype(np.float32) / np.float32(scale)
    if values.ndim == 2:
        values = values[:, :, None]
    channels = values.shape[2]
    if channels in (1, 2):
        rgb, alpha = np.repeat(values[:, :, :1], 3, axis=2), values[:, :, 1] if channels == 2 \
            else None
    else:
        rgb = values[:, :, 2::-1]
        alpha = values[:, :, 3] if channels == 4 else None
    if alpha is not None:
        rgb = rgb * alpha[:, :, None] + (1.0 - alpha[:, :, None])
    return np.ascontiguousarray(orient(np.clip(rgb, 0.0, 1.0), orientation), dtype=np.float32)
