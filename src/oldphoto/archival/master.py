"""What a master file holds that its derivatives must carry over, read without touching it.

:func:`read_master` gathers, in one frozen :class:`Master`, everything the final output needs
from the input: its name and sha256, format, bit depth, ICC profile, resolution, EXIF
orientation, the raw EXIF / IPTC-IIM / XMP blocks, and the descriptive and rights fields as
exiftool reports them (the form :func:`oldphoto.archival.derivative.write_derivative` writes
back).  :func:`read_master_pixels16` decodes the pixels at full precision (float32 in [0, 1]),
oriented and composited exactly as :func:`oldphoto.decode.read_image` does for its 8-bit copy.

The master is only ever opened read-only (``open(path, "rb")``, exiftool in read mode): no
lock, no rename, no write, no change of its modification time.
"""

from __future__ import annotations

import io
import json
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from oldphoto.errors import BadImageError, ConfigError
from oldphoto.hashing import sha256_file

EXIFTOOL = "exiftool"
"""The exiftool command (Debian ``libimage-exiftool-perl``)."""

CARRIED_GROUPS = ("IFD0", "ExifIFD", "GPS", "InteropIFD", "IPTC")
"""exiftool family-1 groups copied to derivatives, besides every ``XMP-*`` group."""

STRUCTURAL_TAGS = frozenset({
    # Describe the master's pixel layout, not the photo: the derivative's encoder writes its own.
    "ImageWidth", "ImageHeight", "BitsPerSample", "Compression", "PhotometricInterpretation",
    "StripOffsets", "SamplesPerPixel", "RowsPerStrip", "StripByteCounts", "PlanarConfiguration",
    "Predictor", "ExtraSamples", "SampleFormat", "TileWidth", "TileLength", "TileOffsets",
    "TileByteCounts", "SubfileType", "OldSubfileType", "FillOrder", "ThumbnailOffset",
    "ThumbnailLength", "ExifImageWidth", "ExifImageHeight", "YCbCrSubSampling",
    "YCbCrPositioning", "JPEGTables", "SubIFD", "XMPToolkit",
})
"""Tags never copied from the master (set by the derivative's encoder, or no longer true)."""


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
        dpi: (x, y) resolution in pixels per inch, or None when the file does not say.
        exif: the raw EXIF block (TIFF structure, as Pillow reads it), or None.
        iptc: the raw IPTC-IIM records (as exiftool extracts them), or None.
        xmp: the raw XMP packet, or None.
        tags: exiftool's ``-G1 -n -struct`` values of the descriptive, rights and capture fields
            (groups :data:`CARRIED_GROUPS` and ``XMP-*``, without :data:`STRUCTURAL_TAGS`),
            keyed ``"Group:Tag"``; read-only.
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
    exif: bytes | None
    iptc: bytes | None
    xmp: bytes | None
    tags: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def tag(self, key: str, default: Any = None) -> Any:
        """One carried tag by ``"Group:Tag"``, e.g. ``master.tag("IFD0:Artist")``."""
        return self.tags.get(key, default)


def exiftool_path() -> str:
    """The exiftool executable, or a clear error when it is not installed."""
    found = shutil.which(EXIFTOOL)
    if found is None:
        raise ConfigError(None, "exiftool is not installed (Debian: apt-get install "
                                "libimage-exiftool-perl); it reads and writes the EXIF, "
                                "IPTC and XMP of archival derivatives")
    return found


def run_exiftool(args: list[str], path: str | Path | None, *, timeout: float = 120) -> bytes:
    """Run exiftool with ``args``; its stdout.

    ``path`` names the file in the error raised when exiftool fails.  Arguments go to this
    process's long-lived exiftool (:mod:`oldphoto.archival.exiftool`) one per line, so that no
    value is ever parsed by a shell or limited by the command-line length, and exiftool starts
    once per worker, not three times per photo.
    """
    from oldphoto.archival.exiftool import ExifToolError, session

    try:
        return session(exiftool_path()).run(args, timeout=timeout)
    except TimeoutError:
        raise BadImageError(path, f"exiftool did not finish within {timeout:g} s") from None
    except ExifToolError as err:
        message = " ".join(err.stderr.decode("utf-8", "replace").split())[:300]
        raise BadImageError(path, f"exiftool failed: {message or str(err)}") from None


def _carried(key: str) -> bool:
    group, _, name = key.partition(":")
    if not name or name in STRUCTURAL_TAGS:
        return False
    return group in CARRIED_GROUPS or group.startswith("XMP-")


def read_tags(path: str | Path) -> dict[str, Any]:
    """The carried fields of ``path`` as exiftool reports them (``-G1 -n -struct``)."""
    out = run_exiftool(["-j", "-a", "-G1", "-n", "-struct", "-charset", "filename=utf8",
                        str(path)], path)
    try:
        record = json.loads(out.decode("utf-8"))[0]
    except (ValueError, IndexError):
        raise BadImageError(path, "exiftool returned unreadable metadata") from None
    return {key: value for key, value in record.items() if _carried(key)}


def read_block(path: str | Path, block: str) -> bytes | None:
    """One raw metadata block (``"IPTC"``, ``"XMP"``, ``"EXIF"``) extracted by exiftool."""
    data = run_exiftool(["-b", f"-{block}", str(path)], path)
    return data or None


def _bit_depth(im) -> int:
    from oldphoto.decode import _raw_mode  # the decoder's own test for 16-bit colour

    if im.mode.startswith("I;16") or ";16" in _raw_mode(im):
        return 16
    if im.mode in ("I", "F"):
        return 32
    if im.mode == "1":
        return 1
    return 8


def _dpi(im) -> tuple[float, float] | None:
    dpi = im.info.get("dpi")
    if not dpi:
        return None
    try:
        x, y = float(dpi[0]), float(dpi[1])
    except (TypeError, ValueError, IndexError):
        return None
    # PNG stores pixels per metre: 47244 px/m reads back as 1199.9976 dpi.
    return (round(x, 2), round(y, 2)) if x > 0 and y > 0 else None


def read_icc_profile(path: str | Path) -> bytes | None:
    """The ICC profile embedded in ``path`` (PNG iCCP, TIFF tag 34675, JPEG APP2), or None.

    Reads the file's header only (read-only); the pixels are not decoded.

    Raises:
        BadImageError: the file cannot be read or identified.
    """
    from PIL import Image

    from oldphoto.decode import DecodingErrors as _Decoding

    with _Decoding(Path(path), "not a readable image", None), open(path, "rb") as handle, \
            warnings.catch_warnings(), Image.open(handle) as im:
        warnings.simplefilter("ignore", UserWarning)
        return im.info.get("icc_profile") or None


def read_master(path: str | Path, *, metadata: bool = True) -> Master:
    """Read everything a derivative carries over from the master ``path`` (read-only).

    ``metadata=False`` skips exiftool (``xmp``, ``iptc`` None, ``tags`` empty): the facts a
    provenance record needs without the fields a plain output does not carry.

    Raises:
        BadImageError: the file cannot be read or identified, or exiftool fails on it.
    """
    from PIL import Image

    from oldphoto.decode import DecodingErrors as _Decoding, _exif_orientation

    path = Path(path)
    try:
        digest = sha256_file(path)
        size = path.stat().st_size
    except FileNotFoundError:
        raise BadImageError(path, "file not found") from None
    except OSError as err:
        raise BadImageError(path, f"cannot read file: {err.strerror or err}") from None
    with _Decoding(path, "not a readable image", None), open(path, "rb") as handle, \
            warnings.catch_warnings(), Image.open(handle) as im:
        # PIL warns about the IPTC tag's TIFF type; exiftool reads IPTC below.
        warnings.simplefilter("ignore", UserWarning)
        notes: list[str] = []
        fmt = im.format or ""
        width, height = im.size
        bit_depth = _bit_depth(im)
        orientation = _exif_orientation(im, notes)
        icc = im.info.get("icc_profile") or None
        dpi = _dpi(im)
        exif_block = im.getexif().tobytes() if len(im.getexif()) else None
    xmp = read_block(path, "XMP") if metadata else None
    iptc = read_block(path, "IPTC") if metadata else None
    return Master(path=path, name=path.name, sha256=digest, size_bytes=size, format=fmt,
                  bit_depth=bit_depth, width=width, height=height, orientation=orientation,
                  icc_profile=icc, dpi=dpi, exif=exif_block, iptc=iptc, xmp=xmp,
                  tags=MappingProxyType(read_tags(path) if metadata else {}))


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

    from oldphoto.decode import DecodingErrors as _Decoding, _exif_orientation, orient

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise BadImageError(path, f"cannot read file: {err.strerror or err}") from None
    with _Decoding(path, "not a readable image", None), Image.open(io.BytesIO(data)) as im:
        mode = im.mode
        # As read_image does: the orientation left after a full load (PIL's TIFF loader applies
        # and removes the TIFF orientation, and OpenCV applies it to TIFFs too).
        im.load()
        orientation = _exif_orientation(im, [])
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
