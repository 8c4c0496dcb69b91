"""Write one archival derivative: pixels, ICC profile, resolution, master's metadata, provenance.

:func:`write_derivative` encodes the pixels (PNG 8/16-bit through OpenCV, TIFF 8/16-bit with
lossless deflate compression through tifffile, JPEG through Pillow), then has exiftool write every
metadata field in one call: the master's EXIF, IPTC-IIM and XMP fields
(:attr:`Master.tags`), Orientation 1 (the pixels are already oriented), the resolution, the ICC
profile and the provenance XMP (:func:`oldphoto.archival.provenance.provenance_xmp`).

The file appears atomically: everything happens on a hidden temporary file (``.tmp-…``) in the
destination folder (exiftool too writes its own temporary next to it), which is fsynced and
renamed over the destination.  The master is never opened by the writer.  Library choices
(exiftool over pyexiv2, tifffile, OpenCV for 16-bit PNG) and their per-file cost:
``docs/archival.md``.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from oldphoto.archival.depth import to_uint16, to_uint8
from oldphoto.archival.formats import EXTENSIONS, Format, output_format_for  # noqa: F401
from oldphoto.archival.master import Master, run_exiftool
from oldphoto.archival.provenance import provenance_xmp, software_agent

_OVERRIDDEN = ("IFD0:Orientation", "IFD0:XResolution", "IFD0:YResolution",
               "IFD0:ResolutionUnit", "IFD0:Software", "XMP-tiff:Orientation",
               "XMP-tiff:XResolution", "XMP-tiff:YResolution", "XMP-tiff:ResolutionUnit")


def _samples(pixels: np.ndarray, alpha: np.ndarray | None, bits: int) -> np.ndarray:
    """RGB(A) samples at ``bits`` (uint8 or uint16), H×W×3 or ×4."""
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"pixels must be H×W×3, got shape {pixels.shape}")
    convert = to_uint16 if bits == 16 else to_uint8
    rgb = convert(pixels)
    if alpha is None:
        return np.ascontiguousarray(rgb)
    if alpha.shape != pixels.shape[:2]:
        raise ValueError(f"alpha {alpha.shape} does not match pixels {pixels.shape[:2]}")
    return np.ascontiguousarray(np.dstack([rgb, convert(alpha)]))


def _encode_png(samples: np.ndarray) -> bytes:
    import cv2

    order = [2, 1, 0, 3] if samples.shape[2] == 4 else [2, 1, 0]
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(samples[:, :, order]),
                               [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise ValueError("OpenCV could not encode the PNG")
    return encoded.tobytes()


def _png_text_chunks(encoded: bytes, text: Mapping[str, str]) -> bytes:
    """``encoded`` (a PNG) with one iTXt chunk (UTF-8, uncompressed) per ``text`` entry, placed
    right after IHDR; Pillow reads them as ``Image.text``."""
    import struct
    import zlib

    ihdr_end = 8 + 4 + 4 + 13 + 4  # signature, then the IHDR chunk (always 13 data bytes)
    if encoded[:8] != b"\x89PNG\r\n\x1a\n" or encoded[12:16] != b"IHDR":
        raise ValueError("not a PNG stream")
    chunks = []
    for key, value in text.items():
        keyword = str(key).encode("latin-1")
        if not 1 <= len(keyword) <= 79:
            raise ValueError(f"PNG text keyword must have 1..79 characters, got {key!r}")
        body = keyword + b"\x00\x00\x00\x00\x00" + str(value).encode("utf-8")
        chunks.append(struct.pack(">I", len(body)) + b"iTXt" + body
                      + struct.pack(">I", zlib.crc32(b"iTXt" + body) & 0xFFFFFFFF))
    return encoded[:ihdr_end] + b"".join(chunks) + encoded[ihdr_end:]


def _encode_tiff(samples: np.ndarray, dpi: tuple[float, float] | None,
                 icc: bytes | None) -> bytes:
    import tifffile

    buffer = io.BytesIO()
    extra: dict[str, Any] = {}
    if dpi is not None:
        extra.update(resolution=dpi, resolutionunit="INCH")
    if samples.shape[2] == 4:
        extra["extrasamples"] = ["unassalpha"]
    tifffile.imwrite(buffer, samples, photometric="rgb", compression="zlib", predictor=True,
                     iccprofile=icc, metadata=None, software=False, **extra)
    return buffer.getvalue()


def _encode_jpeg(samples: np.ndarray, quality: int, dpi: tuple[float, float] | None,
                 icc: bytes | None) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    options: dict[str, Any] = {"quality": int(quality), "subsampling": 0, "optimize": True}
    if dpi is not None:
        options["dpi"] = dpi
    if icc is not None:
        options["icc_profile"] = icc
    Image.fromarray(samples[:, :, :3], "RGB").save(buffer, format="JPEG", **options)
    return buffer.getvalue()


def derivative_tags(master: Master | None, provenance: Mapping[str, Any] | None,
                    dpi: tuple[float, float] | None, fmt: Format,
                    size: tuple[int, int]) -> dict[str, Any]:
    """The exiftool ``-G1 -n -struct`` JSON object written into a derivative.

    The master's carried tags, then what is true of the derivative: Orientation 1 (the pixels
    are oriented), the resolution, EXIF Software = oldphoto, and the provenance XMP.
    """
    tags: dict[str, Any] = copy.deepcopy(dict(master.tags)) if master is not None else {}
    for key in _OVERRIDDEN:
        tags.pop(key, None)
    tags["IFD0:Orientation"] = 1
    if master is not None and "XMP-tiff:Orientation" in master.tags:
        tags["XMP-tiff:Orientation"] = 1
    tags["IFD0:Software"] = software_agent()
    if dpi is not None:
        tags.update({"IFD0:XResolution": dpi[0], "IFD0:YResolution": dpi[1],
                     "IFD0:ResolutionUnit": 2})
        if fmt == "png":
            # pHYs counts pixels per metre.
            tags.update({"PNG-pHYs:PixelsPerUnitX": round(dpi[0] / 0.0254),
                         "PNG-pHYs:PixelsPerUnitY": round(dpi[1] / 0.0254),
                         "PNG-pHYs:PixelUnits": 1})
    if "ExifIFD:DateTimeOriginal" in tags or any(k.startswith("ExifIFD:") for k in tags):
        tags["ExifIFD:ExifImageWidth"], tags["ExifIFD:ExifImageHeight"] = size
    if provenance is not None:
        tags.update(provenance_xmp(provenance, master.tags if master is not None else None))
    tags["SourceFile"] = "*"
    return tags


def _icc_for_output(master: Master | None) -> bytes | None:
    from oldphoto.archival.colour import profile_colour_space

    if master is None or master.icc_profile is None:
        return None
    # An RGB derivative can only embed an RGB profile (a grey master's profile would be invalid).
    return master.icc_profile if profile_colour_space(master.icc_profile) == "RGB" else None


def _write_tags(target: Path, tags: Mapping[str, Any], png_icc: bytes | None,
                name: str | Path) -> None:
    """exiftool writes ``tags`` (and, for a PNG, the ICC profile) into ``target`` in place."""
    with tempfile.TemporaryDirectory(prefix="oldphoto-meta-") as scratch:
        tags_file = Path(scratch) / "tags.json"
        tags_file.write_text(json.dumps([dict(tags)], ensure_ascii=False), encoding="utf-8")
        args = ["-overwrite_original", "-n", "-struct", "-m", f"-j={tags_file}"]
        if png_icc is not None:
            icc_file = Path(scratch) / "profile.icc"
            icc_file.write_bytes(png_icc)
            args.append(f"-ICC_Profile<={icc_file}")
        run_exiftool([*args, str(target)], name)


def write_derivative(path: str | Path, pixels: np.ndarray, *, fmt: Format, bits: int = 8,
                     alpha: np.ndarray | None = None, master: Master | None = None,
                     provenance: Mapping[str, Any] | None = None, jpeg_quality: int = 95,
                     dpi: tuple[float, float] | None = None,
                     text: Mapping[str, str] | None = None) -> None:
    """Write a derivative with the master's metadata and the provenance, atomically.

    Args:
        path: destination file; its folder is created.
        pixels: H×W×3 RGB, float in [0, 1] or uint8/uint16, in the master's colour space (its
            ICC profile is embedded).
        fmt: ``png`` | ``tiff`` (deflate, lossless) | ``jpeg``.
        bits: 8 or 16 (PNG and TIFF); JPEG is always 8-bit.
        alpha: H×W alpha (same dtype rules), or None; JPEG has no alpha and ignores it (the
            pixels are already composited onto white).
        master: what to carry over (:func:`oldphoto.archival.master.read_master`), or None.
        provenance: :func:`oldphoto.archival.provenance.provenance_record`, or None.
        jpeg_quality: 1..100.
        dpi: resolution to state; default the master's.
        text: PNG only: key -> value written as iTXt chunks (e.g. ``oldphoto:backend``).

    With neither ``master`` nor ``provenance`` the file is plain: the encoded pixels (TIFF and
    JPEG with ``dpi`` when given) and ``text``, without EXIF, IPTC or XMP, and exiftool is not
    run.

    Raises:
        BadImageError: exiftool failed on the derivative (naming ``path``).
        ValueError: bad arguments (format, bits, shapes).
    """
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
    icc = _icc_for_output(master)
    samples = _samples(pixels, alpha, bits)
    if fmt == "png":
        encoded = _encode_png(samples)
        if text:
            encoded = _png_text_chunks(encoded, text)
    elif fmt == "tiff":
        encoded = _encode_tiff(samples, dpi, icc)
    else:
        encoded = _encode_jpeg(samples, jpeg_quality, dpi, icc)
    height, width = samples.shape[:2]
    plain = master is None and provenance is None
    tags = None if plain else derivative_tags(master, provenance, dpi, fmt, (width, height))

    from oldphoto.atomic import TEMP_PREFIX, fsync_dir

    path = Path(path)
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{TEMP_PREFIX}{secrets.token_hex(6)}{path.suffix or EXTENSIONS[fmt]}"
    exiftool_tmp = tmp.with_name(tmp.name + "_exiftool_tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as handle:
            handle.write(encoded)
        if tags is not None:
            _write_tags(tmp, tags, icc if fmt == "png" else None, path)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        for leftover in (tmp, exiftool_tmp):
            with contextlib.suppress(OSError):
                os.unlink(leftover)
        raise
    fsync_dir(folder)

