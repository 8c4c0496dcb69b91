"""Decoding one photo to 8-bit RGB (+ alpha), robust to whatever people keep in a photo folder.

The official code loads every input with ``Image.open(path).convert("RGB")``, which ignores EXIF
orientation, drops alpha without compositing and saturates 16-bit data at 255
(``docs/reference_facts.md``, "Input handling").  :func:`read_image` replaces that: orientation
applied, high-bit-depth data *scaled*, and every failure, whatever the decoder raises, one
:class:`~oldphoto.errors.BadImageError` with a one-line reason.  :func:`resize_to` and
:func:`apply_alpha` are the conversions the final outputs need.

Conversion rules of :func:`read_image`, by PIL mode:

=================  ============================================================================
``RGB``            as is; 16-bit-per-channel PNG/TIFF (which PIL truncates to their high byte)
                   are re-decoded with OpenCV and scaled by ``round(v / 257)``.
``L``, ``1``       grey copied to R = G = B (``1`` → 0/255).
``P``              through the palette; a transparent palette becomes alpha (so does a PNG
                   colour key, tRNS, on ``RGB`` or ``L``).
``RGBA``, ``LA``,  ``rgb`` is composited onto white, ``alpha`` keeps the channel.  An alpha that
``PA``, ...        is 255 everywhere is dropped (``alpha`` is None) with a note.
``CMYK``           PIL's conversion (Adobe-inverted CMYK JPEGs handled by PIL); ICC ignored.
``YCbCr``, ``HSV`` PIL's conversion to RGB.
``I;16*``          16-bit grey: ``round(v / 257)`` (65535 → 255, 32896 → 128; no saturation).
``I``              32-bit integers: values within 0..65535 are taken as 16-bit data (``/257``);
                   any other range is stretched linearly from its min..max to 0..255 (note).
``F``              32-bit float: values within [0, 1] are scaled ``×255``; within [0, 255]
                   taken as 8-bit levels; any other range stretched min..max (note).  NaN → 0.
=================  ============================================================================
"""

from __future__ import annotations

import contextlib
import io
import re
import struct
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from oldphoto.errors import BadImageError

__all__ = ["DEFAULT_MAX_PIXELS", "DecodedImage", "DecodingErrors", "read_image", "orient",
           "exif_orientation", "raw_mode", "resize_to", "apply_alpha"]

DEFAULT_MAX_PIXELS = 89_478_485
"""PIL's own default ``Image.MAX_IMAGE_PIXELS`` (about 9459 × 9459)."""


_EXIF_ORIENTATION = 0x0112

# The first bytes of each format we accept: lets a bad file be called "corrupt PNG" rather than
# "not an image" when its header is recognisable but broken.
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),
    (b"MM\x00+", "TIFF"),
    (b"BM", "BMP"),
)

_FORMAT_EXTENSIONS = {
    "PNG": {".png"},
    "JPEG": {".jpg", ".jpeg"},
    "MPO": {".jpg", ".jpeg"},
    "GIF": {".gif"},
    "TIFF": {".tif", ".tiff"},
    "BMP": {".bmp"},
    "WEBP": {".webp"},
}

# What the decoders raise on bad data.  Anything else raised while PIL decodes is converted too
# (see DecodingErrors): for a user a file PIL cannot decode is a bad image, whatever it raised.
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, struct.error, EOFError, zlib.error,
                  IndexError, KeyError, TypeError, ZeroDivisionError, OverflowError)


@dataclass
class DecodedImage:
    """One decoded photo.

    Attributes:
        rgb: uint8 H×W×3, RGB; transparent areas composited onto white.
        alpha: uint8 H×W, or None when the file has no alpha (or a fully opaque one).
        mode: the file's PIL mode (``"RGB"``, ``"P"``, ``"I;16"``, ``"CMYK"``, ...).
        size: (width, height) after EXIF orientation, i.e. of ``rgb``.
        notes: what was done to get here, one line each, for the job log.
        format: the format PIL identified (``"PNG"``, ``"JPEG"``, ...).
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    mode: str
    size: tuple[int, int]
    notes: list[str] = field(default_factory=list)
    format: str = ""


def _one_line(text: object, limit: int = 200) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _sniff(head: bytes) -> str | None:
    for signature, name in _SIGNATURES:
        if head.startswith(signature):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return None


@contextlib.contextmanager
def _pixel_limit(max_pixels: int | None) -> Iterator[list[warnings.WarningMessage]]:
    """PIL's decompression-bomb guard set to ``max_pixels``, its warning turned into an error.

    PIL warns above ``MAX_IMAGE_PIXELS`` and raises only above twice that; we want one limit.
    Yields the list of the other warnings the decoder issues (e.g. "Corrupt EXIF data"), which
    become notes instead of going to stderr.
    """
    from PIL import Image

    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield caught
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def _declared_size(data: bytes, fmt: str | None) -> tuple[int, int] | None:
    """(width, height) from the header of a PNG, GIF or BMP, without PIL; None if unknown.

    Only used to explain a file PIL refused: PIL never opens a zero-sized image.
    """
    try:
        if fmt == "PNG" and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if fmt == "GIF":
            return struct.unpack("<HH", data[6:10])
        if fmt == "BMP":
            width, height = struct.unpack("<ii", data[18:26])
            return width, abs(height)
    except struct.error:
        return None
    return None


class DecodingErrors:
    """Context manager converting whatever a decoder raises into one BadImageError on ``path``.

    ``phase`` is "header" while the file is being identified and "data" once pixels are being
    decoded, so the reason says which part of the file is broken.
    """

    def __init__(self, path: Path, what: str, max_pixels: int | None, data: bytes = b"",
                 sniffed: str | None = None) -> None:
        self.path, self.what, self.max_pixels = path, what, max_pixels
        self.data, self.sniffed = data, sniffed
        self.phase = "header"

    def __enter__(self) -> "DecodingErrors":
        return self

    def __exit__(self, kind, err, _tb) -> bool:
        if err is None or isinstance(err, BadImageError) or not isinstance(err, Exception):
            return False  # success, our own error, or KeyboardInterrupt/SystemExit: unchanged
        raise BadImageError(self.path, self._reason(err)) from None

    def _reason(self, err: Exception) -> str:
        from PIL import Image, UnidentifiedImageError

        if isinstance(err, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
            # PIL's message quotes its own (doubled) limit; keep only the image's pixel count.
            found = re.search(r"\((\d+) pixels\)", str(err))
            pixels = f"{found.group(1)} pixels, " if found else ""
            return (f"image too large: {pixels}over the limit of {self.max_pixels} pixels "
                    "(max_image_pixels; decompression-bomb guard)")
        if isinstance(err, MemoryError):
            return "out of memory while decoding the image"
        if isinstance(err, FileNotFoundError):
            return "file not found"
        if isinstance(err, UnidentifiedImageError):
            size = _declared_size(self.data, self.sniffed)
            if size is not None and 0 in size:
                return f"image has zero width or height ({size[0]}x{size[1]})"
            if self.sniffed:
                return f"{self.what}: unreadable header"
            return f"{self.what}: the content is not a known image format"
        message = _one_line(err.strerror if isinstance(err, OSError) and err.strerror else err)
        if not isinstance(err, _DECODE_ERRORS):
            message = f"{type(err).__name__}: {message}"
        message = message or type(err).__name__
        if self.phase == "header":
            return f"{self.what}: unreadable header ({message})"
        if "truncated" in message.lower():
            return f"truncated image data ({message})"
        return f"{self.what}: {message}"


def _composite_on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """round(rgb·a + 255·(1 − a)) with a = alpha/255, in integers."""
    a = alpha.astype(np.uint32)[:, :, None]
    out = (rgb.astype(np.uint32) * a + 255 * (255 - a) + 127) // 255
    return out.astype(np.uint8)


def _scale_16(values: np.ndarray) -> np.ndarray:
    """16-bit levels to 8-bit by round(v / 257): 0 → 0, 32896 → 128, 65535 → 255.

    (v + 128) // 257 equals round(v / 257) for every integer v (no ties exist).
    """
    return ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _stretch(values: np.ndarray) -> np.ndarray:
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return np.zeros(values.shape, np.uint8)
    return np.rint((values.astype(np.float64) - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def _int32_to_8bit(values: np.ndarray, notes: list[str]) -> np.ndarray:
    if values.size == 0 or (values.min() >= 0 and values.max() <= 65535):
        notes.append("32-bit integer image with 16-bit values: scaled to 8-bit (v/257)")
        return _scale_16(values)
    notes.append(f"32-bit integer image with range {values.min()}..{values.max()}: "
                 "stretched to 0..255")
    return _stretch(values)


def _float_to_8bit(values: np.ndarray, notes: list[str]) -> np.ndarray:
    finite = np.isfinite(values)
    if not finite.all():
        notes.append("float image with NaN/infinite values: set to 0")
        values = np.where(finite, values, 0.0)
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if lo >= 0.0 and hi <= 1.0:
        notes.append("float image in [0, 1]: scaled ×255")
        return np.rint(values.astype(np.float64) * 255.0).astype(np.uint8)
    if lo >= 0.0 and hi <= 255.0:
        notes.append("float image in [0, 255]: taken as 8-bit levels")
        return np.rint(values).astype(np.uint8)
    notes.append(f"float image with range {lo:g}..{hi:g}: stretched to 0..255")
    return _stretch(values)


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[:, :, None], 3, axis=2)


def _split_alpha(rgba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.ascontiguousarray(rgba[:, :, :3]), np.ascontiguousarray(rgba[:, :, 3])


def _pil_to_arrays(im, path: Path, notes: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """A loaded PIL image (any mode) -> (uint8 rgb, uint8 alpha or None), before orientation."""
    mode = im.mode
    if mode in ("RGB", "L") and "transparency" in im.info:
        notes.append("PNG colour-key transparency (tRNS) turned into alpha")
        return _split_alpha(np.asarray(im.convert("RGBA"), dtype=np.uint8))
    if mode == "RGB":
        return np.asarray(im, dtype=np.uint8).copy(), None
    if mode == "L":
        return _gray_to_rgb(np.asarray(im, dtype=np.uint8)), None
    if mode == "1":
        return _gray_to_rgb(np.asarray(im.convert("L"), dtype=np.uint8)), None
    if mode == "P":
        has_alpha = "transparency" in im.info or (im.palette is not None
                                                   and im.palette.mode == "RGBA")
        if has_alpha:
            return _split_alpha(np.asarray(im.convert("RGBA"), dtype=np.uint8))
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy(), None
    if mode == "RGBA":
        return _split_alpha(np.asarray(im, dtype=np.uint8))
    if mode == "LA":
        la = np.asarray(im, dtype=np.uint8)
        return _gray_to_rgb(np.ascontiguousarray(la[:, :, 0])), np.ascontiguousarray(la[:, :, 1])
    if mode in ("PA", "La", "RGBa"):
        return _split_alpha(np.asarray(im.convert("RGBA"), dtype=np.uint8))
    if mode.startswith("I;16"):
        notes.append("16-bit grey scaled to 8-bit (v/257)")
        return _gray_to_rgb(_scale_16(np.asarray(im))), None
    if mode == "I":
        return _gray_to_rgb(_int32_to_8bit(np.asarray(im), notes)), None
    if mode == "F":
        return _gray_to_rgb(_float_to_8bit(np.asarray(im), notes)), None
    if mode == "CMYK":
        notes.append("CMYK converted to RGB (ICC profile, if any, ignored)")
    elif mode != "RGBX":
        notes.append(f"{mode} converted to RGB")
    try:
        converted = im.convert("RGB")
    except ValueError:
        raise BadImageError(path, f"unsupported colour mode {mode}") from None
    return np.asarray(converted, dtype=np.uint8).copy(), None


def raw_mode(im) -> str:
    """The decoder's raw mode of the first tile (``"RGB;16B"`` for a 48-bit PNG), or "".

    Read it before ``im.load()``, which clears the tiles.  A ``;16`` in it is how a 16-bit colour
    file shows through PIL's 8-bit modes (this module re-decodes those; the master record counts
    their bit depth).
    """
    try:
        args = im.tile[0][3]
    except (AttributeError, IndexError, TypeError):
        return ""
    if isinstance(args, tuple):
        args = args[0] if args else ""
    return args if isinstance(args, str) else ""


def _is_16bit_colour(im) -> bool:
    # PIL decodes 16-bit-per-channel RGB(A)/LA into 8-bit modes by dropping the low byte.
    return im.mode in ("RGB", "RGBA", "LA") and ";16" in raw_mode(im)


def _decode_16bit_colour(data: bytes, size: tuple[int, int],
                         notes: list[str]) -> tuple[np.ndarray, np.ndarray | None] | None:
    """16-bit colour PNG/TIFF through OpenCV (exact 16-bit samples), or None if it cannot."""
    import cv2

    array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None or array.dtype != np.uint16 or array.shape[:2] != (size[1], size[0]):
        return None
    if array.ndim == 2:
        rgb, alpha = _gray_to_rgb(_scale_16(array)), None
    elif array.shape[2] == 2:
        rgb, alpha = _gray_to_rgb(_scale_16(array[:, :, 0])), _scale_16(array[:, :, 1])
    elif array.shape[2] == 3:
        rgb, alpha = _scale_16(array[:, :, ::-1]), None
    elif array.shape[2] == 4:
        rgb, alpha = _scale_16(array[:, :, 2::-1]), _scale_16(array[:, :, 3])
    else:
        return None
    notes.append("16-bit per channel scaled to 8-bit (v/257)")
    return np.ascontiguousarray(rgb), alpha


def orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to an H×W(×C) array, as ImageOps.exif_transpose does."""
    if orientation == 2:
        out = array[:, ::-1]
    elif orientation == 3:
        out = array[::-1, ::-1]
    elif orientation == 4:
        out = array[::-1]
    elif orientation == 5:
        out = array.swapaxes(0, 1)
    elif orientation == 6:
        out = np.rot90(array, -1)
    elif orientation == 7:
        out = np.rot90(array, 2).swapaxes(0, 1)
    elif orientation == 8:
        out = np.rot90(array, 1)
    else:
        return array
    return np.ascontiguousarray(out)


def exif_orientation(im, notes: list[str]) -> int:
    """The EXIF orientation of an open PIL image (1..8), 1 when absent, invalid or unreadable.

    What was found is appended to ``notes`` (applied, invalid, unreadable EXIF); a broken EXIF
    block never makes a good image unusable.
    """
    try:
        value = im.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception as err:  # noqa: BLE001 - broken EXIF must not make a good image unusable
        notes.append(f"EXIF unreadable ({_one_line(err, 80)}): orientation not applied")
        return 1
    if not isinstance(value, int) or not 1 <= value <= 8:
        notes.append(f"EXIF orientation {value!r} invalid: ignored")
        return 1
    if value != 1:
        notes.append(f"EXIF orientation {value} applied")
    return value


def read_image(path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decode one photo to 8-bit RGB (+ alpha), fully, or fail with one clear reason.

    EXIF orientation is applied; alpha is composited onto white for ``rgb`` and kept in
    ``alpha``; 16-bit data is scaled (not clipped); multi-frame files give their first frame.
    See the module docstring for the rule per mode.

    Args:
        path: the image file.
        max_pixels: refuse images with more pixels than this (decompression-bomb guard,
            checked from the header before any pixel is decoded); None disables the check.

    Raises:
        BadImageError: for every failure (empty, truncated, corrupt, not an image, too large,
            zero-sized, unsupported mode, unreadable file) and never any other exception.
    """
    from PIL import Image

    path = Path(path)
    notes: list[str] = []
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BadImageError(path, "file not found") from None
    except IsADirectoryError:
        raise BadImageError(path, "is a folder, not an image file") from None
    except MemoryError:
        raise BadImageError(path, "out of memory while reading the file") from None
    except OSError as err:
        raise BadImageError(path, f"cannot read file: {_one_line(err.strerror or err)}") from None
    if not data:
        raise BadImageError(path, "empty file (0 bytes)")
    sniffed = _sniff(data[:16])
    what = f"corrupt {sniffed} file" if sniffed else "not a readable image"

    with DecodingErrors(path, what, max_pixels, data, sniffed) as decoding, \
            _pixel_limit(max_pixels) as decoder_warnings:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
            if width <= 0 or height <= 0:
                raise BadImageError(path, f"image has zero width or height ({width}x{height})")
            if max_pixels is not None and width * height > max_pixels:
                raise BadImageError(path, f"image too large: {width}x{height} = "
                                          f"{width * height} pixels, over the limit of "
                                          f"{max_pixels} pixels (max_image_pixels; "
                                          "decompression-bomb guard)")
            fmt = im.format or ""
            ext = path.suffix.lower()
            if fmt in _FORMAT_EXTENSIONS and ext not in _FORMAT_EXTENSIONS[fmt]:
                notes.append(f"content is {fmt} although the name ends in {path.suffix}")
            try:
                frames = int(getattr(im, "n_frames", 1))
            except Exception as err:  # noqa: BLE001 - later frames broken: frame 1 may be fine
                notes.append(f"could not count frames ({_one_line(err, 80)})")
                frames = 1
            if frames > 1:
                notes.append(f"multi-frame {fmt or 'image'}: used frame 1 of {frames}")
            if getattr(im, "tell", lambda: 0)() != 0:
                im.seek(0)
            decoding.phase = "data"
            mode = im.mode
            sixteen_bit_colour = _is_16bit_colour(im)  # before load(), which clears im.tile
            im.load()  # full decode: truncated or corrupt data fails here, not later
            orientation = exif_orientation(im, notes)
            decoded = None
            if sixteen_bit_colour:
                decoded = _decode_16bit_colour(data, im.size, notes)
                if decoded is None:
                    notes.append("16-bit colour data truncated to 8-bit (OpenCV could not "
                                 "decode it exactly)")
            if decoded is None:
                decoded = _pil_to_arrays(im, path, notes)
    rgb, alpha = decoded
    for message in dict.fromkeys(_one_line(w.message, 120) for w in decoder_warnings):
        notes.append(f"decoder warning: {message}")

    if alpha is not None:
        if alpha.min() == 255:
            notes.append("alpha channel fully opaque: ignored")
            alpha = None
        else:
            notes.append("transparent areas composited onto white; alpha kept")
            rgb = _composite_on_white(rgb, alpha)
    rgb = orient(rgb, orientation)
    if alpha is not None:
        alpha = orient(alpha, orientation)
    return DecodedImage(rgb=rgb, alpha=alpha, mode=mode, size=(rgb.shape[1], rgb.shape[0]),
                        notes=notes, format=fmt)


# ---------------------------------------------------------------------------------------------
# Final output helpers


def resize_to(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a uint8 H×W(×C) image to ``size`` = (width, height).

    PIL LANCZOS when either side shrinks (antialiased), BICUBIC when only enlarging; the input
    is returned unchanged when it already has that size.
    """
    from PIL import Image

    width, height = int(size[0]), int(size[1])
    if width <= 0 or height <= 0:
        raise ValueError(f"target size must be positive, got {size}")
    h0, w0 = image.shape[:2]
    if (w0, h0) == (width, height):
        return image
    resample = Image.LANCZOS if (width < w0 or height < h0) else Image.BICUBIC
    resized = Image.fromarray(np.ascontiguousarray(image)).resize((width, height), resample)
    return np.asarray(resized, dtype=np.uint8).copy()


def apply_alpha(rgb: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """``rgb`` with ``alpha`` as a 4th channel (uint8 H×W×4); ``rgb`` itself when alpha is None."""
    if alpha is None:
        return rgb
    if alpha.shape != rgb.shape[:2]:
        raise ValueError(f"alpha {alpha.shape} does not match image {rgb.shape[:2]}; "
                         "resize it first (resize_to)")
    return np.dstack([rgb, alpha]).astype(np.uint8, copy=False)
