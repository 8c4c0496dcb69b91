"""Write one archival derivative: pixels, ICC profile, resolution, master's metadata, provenance.

:func:`write_derivative` encodes the pixels (RGB or grey; PNG 8/16-bit through OpenCV, TIFF
8/16-bit with lossless deflate compression through tifffile, JPEG through Pillow), adds what the
encoder cannot (a PNG's ``iCCP``, ``pHYs`` and text chunks), then has libexiv2 write every
metadata field in memory (:mod:`oldphoto.archival.metadata`): the master's EXIF, IPTC-IIM and XMP
fields, Orientation 1 (the pixels are already oriented), the resolution when the master states
one, and the provenance and identity XMP (:func:`oldphoto.archival.provenance.provenance_xmp`).

The file appears atomically (:func:`oldphoto.atomic.write_bytes_atomic`: a hidden temporary in
the destination folder, fsynced and renamed over the destination).  The master is never opened
by the writer.  Library choices (libexiv2 over exiftool, tifffile, OpenCV for 16-bit PNG) and
their per-file cost: ``docs/archival.md``.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from fractions import Fraction
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from oldphoto.archival.depth import to_uint16, to_uint8
from oldphoto.archival.formats import EXTENSIONS, Format, output_format_for  # noqa: F401
from oldphoto.archival.master import Master
from oldphoto.archival.provenance import provenance_xmp, software_agent

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _samples(pixels: np.ndarray, alpha: np.ndarray | None, bits: int) -> np.ndarray:
    """Samples at ``bits`` (uint8 or uint16): H×W×3 (RGB) or H×W×1 (grey), plus alpha."""
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 3):
        raise ValueError(f"pixels must be H×W×3 (RGB) or H×W (grey), got shape {pixels.shape}")
    convert = to_uint16 if bits == 16 else to_uint8
    colour = convert(pixels)
    if alpha is None:
        return np.ascontiguousarray(colour)
    if alpha.shape != pixels.shape[:2]:
        raise ValueError(f"alpha {alpha.shape} does not match pixels {pixels.shape[:2]}")
    return np.ascontiguousarray(np.dstack([colour, convert(alpha)]))


def _chunk(kind: bytes, body: bytes) -> bytes:
    return (struct.pack(">I", len(body)) + kind + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))


def _encode_png(samples: np.ndarray) -> bytes:
    channels = samples.shape[2]
    if channels == 2:
        return _encode_png_grey_alpha(samples)
    import cv2

    order = {1: [0], 3: [2, 1, 0], 4: [2, 1, 0, 3]}[channels]
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(samples[:, :, order]),
                               [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise ValueError("OpenCV could not encode the PNG")
    return encoded.tobytes()


def _encode_png_grey_alpha(samples: np.ndarray) -> bytes:
    """Grey + alpha (PNG colour type 4), which OpenCV does not write: rows with the ``Up``
    filter, deflated."""
    height, width, _ = samples.shape
    bits = 16 if samples.dtype == np.uint16 else 8
    rows = samples.astype(">u2" if bits == 16 else np.uint8).view(np.uint8)
    rows = rows.reshape(height, -1)
    up = rows.copy()
    up[1:] = rows[1:] - rows[:-1]  # uint8 arithmetic wraps, as PNG's filter does
    raw = np.hstack([np.full((height, 1), 2, np.uint8), up]).tobytes()
    header = struct.pack(">IIBBBBB", width, height, bits, 4, 0, 0, 0)
    return (_PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 6))
            + _chunk(b"IEND", b""))


def _png_chunks(encoded: bytes, icc: bytes | None, dpi: tuple[float, float] | None,
                text: Mapping[str, str] | None) -> bytes:
    """``encoded`` (a PNG) with ``iCCP`` (the profile, named "ICC Profile"), ``pHYs`` (pixels
    per metre) and one iTXt chunk (UTF-8, uncompressed) per ``text`` entry, right after IHDR;
    Pillow reads the texts as ``Image.text``."""
    ihdr_end = 8 + 4 + 4 + 13 + 4  # signature, then the IHDR chunk (always 13 data bytes)
    if encoded[:8] != _PNG_SIGNATURE or encoded[12:16] != b"IHDR":
        raise ValueError("not a PNG stream")
    chunks = []
    if icc is not None:
        chunks.append(_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc, 9)))
    if dpi is not None:
        chunks.append(_chunk(b"pHYs", struct.pack(">IIB", round(dpi[0] / 0.0254),
                                                  round(dpi[1] / 0.0254), 1)))
    for key, value in (text or {}).items():
        keyword = str(key).encode("latin-1")
        if not 1 <= len(keyword) <= 79:
            raise ValueError(f"PNG text keyword must have 1..79 characters, got {key!r}")
        chunks.append(_chunk(b"iTXt", keyword + b"\x00\x00\x00\x00\x00"
                             + str(value).encode("utf-8")))
    return encoded[:ihdr_end] + b"".join(chunks) + encoded[ihdr_end:]


def _encode_tiff(samples: np.ndarray, dpi: tuple[float, float] | None,
                 icc: bytes | None) -> bytes:
    """Deflate-compressed TIFF.  Without ``dpi`` the resolution is ResolutionUnit 1 ("no
    absolute unit", X/YResolution 1): TIFF 6.0 requires the three fields in every baseline
    file, and this is its way of stating no physical size."""
    import tifffile

    buffer = io.BytesIO()
    extra: dict[str, Any] = {}
    if dpi is not None:
        extra.update(resolution=dpi, resolutionunit="INCH")
    else:
        extra.update(resolution=(1, 1), resolutionunit="NONE")
    channels = samples.shape[2]
    if channels in (2, 4):
        extra["extrasamples"] = ["unassalpha"]
    photometric = "minisblack" if channels <= 2 else "rgb"
    data = samples[:, :, 0] if channels == 1 else samples
    tifffile.imwrite(buffer, data, photometric=photometric, compression="zlib", predictor=True,
                     iccprofile=icc, metadata=None, software=False, **extra)
    return buffer.getvalue()


def _encode_jpeg(samples: np.ndarray, quality: int, dpi: tuple[float, float] | None,
                 icc: bytes | None) -> bytes:
    """Baseline JPEG, 4:4:4.  Without ``dpi`` the JFIF header states only the pixel aspect
    ratio (units 0, density 1:1), as JFIF defines for an unknown resolution."""
    from PIL import Image

    buffer = io.BytesIO()
    options: dict[str, Any] = {"quality": int(quality), "subsampling": 0, "optimize": True}
    if dpi is not None:
        options["dpi"] = dpi
    if icc is not None:
        options["icc_profile"] = icc
    grey = samples.shape[2] <= 2
    image = Image.fromarray(samples[:, :, 0] if grey else samples[:, :, :3], "L" if grey else "RGB")
    image.save(buffer, format="JPEG", **options)
    return buffer.getvalue()


def _rational(value: float) -> tuple[int, int]:
    fraction = Fraction(value).limit_denominator(1000)
    return fraction.numerator, fraction.denominator


def derivative_metadata(master: Master | None, provenance: Mapping[str, Any] | None,
                        dpi: tuple[float, float] | None, fmt: Format, size: tuple[int, int],
                        content_sha256: str, *, grey: bool = False):
    """The fields written into a derivative (:class:`oldphoto.archival.metadata.Carried`).

    The master's carried fields, then what is true of the derivative: Orientation 1 (the pixels
    are oriented), EXIF Software = oldphoto, the resolution (only ``dpi``: nothing when it is
    None), JPEG's YCbCrPositioning and ComponentsConfiguration (``grey``: one component), the
    pixel size of a PNG or JPEG whose EXIF has an Exif IFD,
    and the provenance and identity XMP.
    """
    from oldphoto.archival.metadata import empty, set_exif, set_xmp

    carried = master.carried.copy() if master is not None and master.carried is not None \
        else empty()
    set_exif(carried.exif, "Exif.Image.Orientation", 1)
    set_exif(carried.exif, "Exif.Image.Software", software_agent())
    if dpi is not None:
        set_exif(carried.exif, "Exif.Image.XResolution", _rational(dpi[0]))
        set_exif(carried.exif, "Exif.Image.YResolution", _rational(dpi[1]))
        set_exif(carried.exif, "Exif.Image.ResolutionUnit", 2)
    exif_ifd = any(d.key().startswith("Exif.Photo.") for d in carried.exif)
    if fmt == "jpeg":  # what EXIF requires of a JPEG: libjpeg centres chroma; Y Cb Cr or Y
        set_exif(carried.exif, "Exif.Image.YCbCrPositioning", 1)
        if exif_ifd:
            set_exif(carried.exif, "Exif.Photo.ComponentsConfiguration",
                     bytes([1, 0, 0, 0] if grey else [1, 2, 3, 0]))
    if fmt != "tiff" and exif_ifd:
        # The pixel size of compressed (PNG, JPEG) data; EXIF does not allow it in a TIFF.
        set_exif(carried.exif, "Exif.Photo.PixelXDimension", int(size[0]))
        set_exif(carried.exif, "Exif.Photo.PixelYDimension", int(size[1]))
    if provenance is not None:
        fields = provenance_xmp(provenance, master.tags if master is not None else None,
                                fmt=fmt, content_sha256=content_sha256)
        for key, value in fields.items():
            set_xmp(carried.xmp, key, value, append=key == "Xmp.xmpMM.History")
    return carried


def icc_for_output(master: Master | None, colour_model: str) -> bytes | None:
    """The master's ICC profile when it fits the derivative's colour model (an RGB profile for
    RGB, a GRAY one for grey); None otherwise: a profile of another colour space is invalid."""
    from oldphoto.archival.colour import profile_colour_space

    if master is None or master.icc_profile is None:
        return None
    wanted = "GRAY" if colour_model == "grey" else "RGB"
    return master.icc_profile if profile_colour_space(master.icc_profile) == wanted else None


def write_derivative(path: str | Path, pixels: np.ndarray, *, fmt: Format, bits: int = 8,
                     alpha: np.ndarray | None = None, master: Master | None = None,
                     provenance: Mapping[str, Any] | None = None, jpeg_quality: int = 95,
                     dpi: tuple[float, float] | None = None,
                     text: Mapping[str, str] | None = None) -> None:
    """Write a derivative with the master's metadata and the provenance, atomically.

    Args:
        path: destination file; its folder is created.
        pixels: H×W×3 RGB or H×W grey, float in [0, 1] or uint8/uint16, in the master's colour
            space (its ICC profile is embedded when it fits: :func:`icc_for_output`).
        fmt: ``png`` | ``tiff`` (deflate, lossless) | ``jpeg``.
        bits: 8 or 16 (PNG and TIFF); JPEG is always 8-bit.
        alpha: H×W alpha (same dtype rules), or None; JPEG has no alpha and ignores it (the
            pixels are already composited onto white).
        master: what to carry over (:func:`oldphoto.archival.master.read_master`), or None.
        provenance: :func:`oldphoto.archival.provenance.provenance_record`, or None.
        jpeg_quality: 1..100.
        dpi: resolution to state; default the master's (none when the master states none).
        text: PNG only: key -> value written as iTXt chunks (e.g. ``oldphoto:backend``).

    With neither ``master`` nor ``provenance`` the file is plain: the encoded pixels (with
    ``dpi`` when given) and ``text``, without EXIF, IPTC or XMP.

    Raises:
        BadImageError: libexiv2 could not write the metadata (naming ``path``).
        ValueError: bad arguments (format, bits, shapes).
    """
    from oldphoto.atomic import write_bytes_atomic

    if fmt not in EXTENSIONS:
        raise ValueError(f"fmt must be png, tiff or jpeg, got {fmt!r}")
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits!r}")
    if fmt == "jpeg":
        bits, alpha = 8, None
        if not 1 <= int(jpeg_quality) <= 100:
            raise ValueError(f"jpeg_quality must be within 1..100, got {jpeg_quality!r}")
    if dpi is None and master is not None:
        dpi = master.dpi
    samples = _samples(pixels, alpha, bits)
    icc = icc_for_output(master, "grey" if samples.shape[2] <= 2 else "rgb")
    if fmt == "png":
        encoded = _png_chunks(_encode_png(samples), icc, dpi, text)
    elif fmt == "tiff":
        encoded = _encode_tiff(samples, dpi, icc)
    else:
        encoded = _encode_jpeg(samples, jpeg_quality, dpi, icc)
    if master is not None or provenance is not None:
        from oldphoto.archival.metadata import write_metadata

        height, width = samples.shape[:2]
        content = hashlib.sha256(samples.tobytes()).hexdigest()
        carried = derivative_metadata(master, provenance, dpi, fmt, (width, height), content,
                                      grey=samples.shape[2] <= 2)
        encoded = write_metadata(encoded, carried, path=path)
    write_bytes_atomic(path, encoded)
