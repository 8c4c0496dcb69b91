"""Finding, decoding and writing images, robust to whatever people keep in a photo folder.

The official code loads every input with ``Image.open(path).convert("RGB")``, which ignores EXIF
orientation, drops alpha without compositing and saturates 16-bit data at 255; it derives output
names with ``name[:-4]`` (PIPELINE_FACTS §1.1, B4, B15).  This module replaces that:

* :func:`list_inputs` picks the photos out of a folder (skipping hidden files, folders, sidecars
  and unknown extensions, each with a reason), names each output after the full stem
  (``os.path.splitext``) and refuses two photos that would share an output name.
* :func:`read_image` decodes one file to 8-bit RGB (+ alpha), with orientation applied and
  high-bit-depth data *scaled*; every failure, whatever the decoder raises, becomes one
  :class:`~oldphoto.errors.BadImageError` with a one-line reason.
* :func:`write_png`, :func:`write_bytes_atomic`, :func:`write_json` write through a temporary
  file in the destination folder and ``os.replace``, so a reader (or a resumed run) never sees a
  half-written file.

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
import json
import os
import re
import secrets
import struct
import unicodedata
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, Mapping, NamedTuple

import numpy as np

from oldphoto.errors import BadImageError, ConfigError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif"})
"""File extensions taken as photos (lower case, with the dot; matched case-insensitively)."""

SIDECAR_EXTENSIONS = frozenset({
    ".xmp", ".txt", ".json", ".xml", ".aae", ".thm", ".pp3", ".dop", ".csv", ".md", ".ini",
    ".db", ".log", ".yaml", ".yml",
})
"""Metadata files that commonly sit next to photos; skipped with a 'sidecar' reason."""

DEFAULT_MAX_PIXELS = 89_478_485
"""PIL's own default ``Image.MAX_IMAGE_PIXELS`` (about 9459 × 9459)."""

TEMP_PREFIX = ".tmp-"
"""Prefix of the temporary files of atomic writes (hidden, so list_inputs never picks one up)."""

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
# (see _Decoding): for a user a file PIL cannot decode is a bad image, whatever the exception.
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, struct.error, EOFError, zlib.error,
                  IndexError, KeyError, TypeError, ZeroDivisionError, OverflowError)


# ---------------------------------------------------------------------------------------------
# Discovery


class InputSet(NamedTuple):
    """The photos of an input folder.

    Attributes:
        images: output stem -> file, in sorted stem order.
        skipped: (entry, reason) for every other entry of the folder, in sorted name order.

    A NamedTuple, so ``images, skipped = list_inputs(folder)`` works too.
    """

    images: dict[str, Path]
    skipped: list[tuple[Path, str]]


def stem_problem(stem: str) -> str | None:
    """Why ``stem`` cannot name output files and be a Snakemake wildcard value, or None.

    Spaces, quotes, brackets, ``$``, ``%``, ``,``, non-ASCII letters and leading dashes are
    fine (checked with Snakemake 9 running ``script:`` jobs).  Refused, each for a reason seen
    in practice:

    * empty, ``.``/``..``, or containing ``/`` or NUL: not a file name;
    * ``{`` ``}``: Snakemake reads them as a wildcard in ``rule all``'s input, and the whole
      DAG fails to build ("Wildcards in input files cannot be determined");
    * ``<`` ``>``: Snakemake 9 expands ``<name>`` as a path variable (UndefinedPathvarException);
    * control characters (newline, tab, ...): the job's wildcards no longer match its output;
    * not encodable as UTF-8 (a Latin-1 name the OS hands over with surrogate escapes): breaks
      JSON and PNG text records downstream.
    """
    if not stem or stem in (".", ".."):
        return "empty output name"
    if "/" in stem or "\0" in stem:
        return "contains '/' or NUL"
    if any(ch in stem for ch in "{}<>"):
        return "contains { } < or >, which Snakemake reads as wildcards or path variables"
    if any(unicodedata.category(ch) == "Cc" for ch in stem):
        return "contains control characters (newline, tab, ...)"
    try:
        stem.encode("utf-8")
    except UnicodeEncodeError:
        return "not valid UTF-8 (rename the file)"
    return None


def safe_stem(stem: str) -> bool:
    """Whether ``stem`` can name output files and be a Snakemake wildcard (see stem_problem)."""
    return stem_problem(stem) is None


def _skip_reason(entry: os.DirEntry) -> str | None:
    """Why a folder entry is not a photo, or None if it is one."""
    name = entry.name
    if name.startswith("."):
        return "hidden file" if not entry.is_dir() else "hidden folder"
    if entry.is_dir():
        return "folder (subfolders are not searched)"
    if not entry.is_file():
        if entry.is_symlink():
            return "broken symbolic link"
        return "not a regular file"
    ext = os.path.splitext(name)[1].lower()
    if ext in IMAGE_EXTENSIONS:
        return None
    if ext in SIDECAR_EXTENSIONS:
        return f"sidecar/metadata file ({ext})"
    if not ext:
        return "no file extension"
    return f"unknown extension {ext!r} (photos: {', '.join(sorted(IMAGE_EXTENSIONS))})"


def _collision_key(stem: str) -> str:
    # Case-insensitive and normalisation-insensitive file systems (macOS, Windows) would write
    # "A.png" and "a.png", or a composed and a decomposed "é", to the same file.
    return unicodedata.normalize("NFC", stem).casefold()


def list_inputs(input_dir: str | Path) -> InputSet:
    """The photos directly inside ``input_dir``, keyed by output stem, and what was skipped.

    The stem is the name without its last extension (``a.jpeg`` → ``a``, ``a.b.png`` → ``a.b``).
    Extensions are matched case-insensitively against :data:`IMAGE_EXTENSIONS`.  Contents are not
    looked at here: a broken ``.jpg`` is listed and fails alone when decoded.

    Raises:
        ConfigError: ``input_dir`` is not a folder, or two photos would be written to the same
            output name (same stem, also after case folding and Unicode normalisation); the
            message names every file involved.  Raised before any work is done.
    """
    folder = Path(input_dir)
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        raise ConfigError(folder, "input folder does not exist or is not a folder") from None
    except OSError as err:
        raise ConfigError(folder, f"cannot list input folder: {err.strerror or err}") from None

    candidates: dict[str, list[Path]] = {}
    stems: dict[Path, str] = {}
    skipped: list[tuple[Path, str]] = []
    for entry in entries:
        path = Path(entry.path)
        try:
            reason = _skip_reason(entry)
        except OSError as err:
            reason = f"cannot inspect entry: {err.strerror or err}"
        stem = os.path.splitext(entry.name)[0]
        if reason is None and (problem := stem_problem(stem)) is not None:
            reason = f"name unusable for outputs: {problem}"
        if reason is not None:
            skipped.append((path, reason))
            continue
        candidates.setdefault(_collision_key(stem), []).append(path)
        stems[path] = stem

    clashes = [paths for paths in candidates.values() if len(paths) > 1]
    if clashes:
        described = "; ".join(
            " and ".join(repr(p.name) for p in paths)
            + f" would {'both' if len(paths) == 2 else 'all'} be written as "
            f"'{stems[paths[0]]}.png'"
            for paths in clashes
        )
        raise ConfigError(folder, f"photos with the same output name: {described}; "
                                  "rename all but one of each")

    images = {stems[paths[0]]: paths[0] for paths in candidates.values()}
    return InputSet(images=dict(sorted(images.items())), skipped=skipped)


# ---------------------------------------------------------------------------------------------
# Decoding


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


class _Decoding:
    """Context manager converting whatever a decoder raises into one BadImageError.

    ``phase`` is "header" while the file is being identified and "data" once pixels are being
    decoded, so the reason says which part of the file is broken.
    """

    def __init__(self, path: Path, what: str, max_pixels: int | None, data: bytes = b"",
                 sniffed: str | None = None) -> None:
        self.path, self.what, self.max_pixels = path, what, max_pixels
        self.data, self.sniffed = data, sniffed
        self.phase = "header"

    def __enter__(self) -> "_Decoding":
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


def _raw_mode(im) -> str:
    """The decoder's raw mode of the first tile (``"RGB;16B"`` for a 48-bit PNG), or ""."""
    try:
        args = im.tile[0][3]
    except (AttributeError, IndexError, TypeError):
        return ""
    if isinstance(args, tuple):
        args = args[0] if args else ""
    return args if isinstance(args, str) else ""


def _is_16bit_colour(im) -> bool:
    # PIL decodes 16-bit-per-channel RGB(A)/LA into 8-bit modes by dropping the low byte.
    return im.mode in ("RGB", "RGBA", "LA") and ";16" in _raw_mode(im)


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


def _exif_orientation(im, notes: list[str]) -> int:
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

    with _Decoding(path, what, max_pixels, data, sniffed) as decoding, \
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
            orientation = _exif_orientation(im, notes)
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
# Writing


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: some file systems refuse)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_atomic(path: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` through ``write(handle)`` on a temp file in the same folder, then rename.

    The temp file (``.tmp-<random>``) is created with mode 0o666 minus the umask, like a plain
    ``open``; it is fsynced before ``os.replace``, so ``path`` is always either the old complete
    file or the new complete file, and it is removed if ``write`` raises.
    """
    path = Path(path)
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{TEMP_PREFIX}{secrets.token_hex(6)}{path.suffix}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(folder)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file, fsync, ``os.replace``)."""
    _write_atomic(path, lambda handle: handle.write(data))


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented UTF-8 JSON to ``path`` atomically."""
    text = json.dumps(obj, indent=2, ensure_ascii=False) + "\n"
    write_bytes_atomic(path, text.encode("utf-8"))


def _check_image(rgb: np.ndarray, alpha: np.ndarray | None) -> None:
    if not (isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8 and rgb.ndim == 3
            and rgb.shape[2] == 3):
        raise ValueError(f"rgb must be a uint8 H×W×3 array, got {getattr(rgb, 'dtype', None)} "
                         f"{getattr(rgb, 'shape', None)}")
    if alpha is not None and not (isinstance(alpha, np.ndarray) and alpha.dtype == np.uint8
                                  and alpha.shape == rgb.shape[:2]):
        raise ValueError(f"alpha must be a uint8 H×W array matching rgb {rgb.shape[:2]}, got "
                         f"{getattr(alpha, 'dtype', None)} {getattr(alpha, 'shape', None)}")


def write_png(path: str | Path, rgb: np.ndarray, alpha: np.ndarray | None = None,
              text: Mapping[str, Any] | None = None) -> None:
    """Write an RGB (or, with ``alpha``, RGBA) PNG atomically, with ``text`` as text chunks.

    Args:
        path: destination; its folder is created if needed.
        rgb: uint8 H×W×3.
        alpha: uint8 H×W or None.
        text: key -> value, stored as PNG tEXt chunks (iTXt when the value is not Latin-1);
            values are converted with ``str``.  Read back with :func:`read_png_text`.
    """
    from PIL import Image, PngImagePlugin

    _check_image(rgb, alpha)
    pixels = apply_alpha(rgb, alpha) if alpha is not None else np.ascontiguousarray(rgb)
    image = Image.fromarray(pixels)
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_text(str(key), str(value))
    _write_atomic(path, lambda handle: image.save(handle, format="PNG", pnginfo=info))


def read_png_text(path: str | Path) -> dict[str, str]:
    """The text chunks (tEXt, zTXt, iTXt) of a PNG file."""
    from PIL import Image

    path = Path(path)
    with _Decoding(path, "cannot read PNG text", None), Image.open(path) as im:
        return {str(k): str(v) for k, v in getattr(im, "text", {}).items()}


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
