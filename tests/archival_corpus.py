"""A generated, tagged corpus of archival masters for the archival-derivative tests.

Every master carries the same descriptive and rights fields (EXIF, IPTC-IIM, XMP; written with
exiftool, the archivists' tool), a resolution, and, for the colour ones, the wide-gamut Adobe RGB
(1998)-compatible profile of Debian's icc-profiles-free (``tests/data/icc/``):

================  =======  ======  ====  ===========  ==========================================
file              format   bits    dpi   orientation  content
================  =======  ======  ====  ===========  ==========================================
colour16.tif      TIFF     16      600   6            smooth colour gradients, Adobe RGB profile
colour16.png      PNG      16      1200  1            the same, Adobe RGB profile (iCCP)
grey_print.tif    TIFF     16      600   1            a greyscale print (R = G = B), no profile
sepia_print.png   PNG      8       1200  1            a sepia print, no profile
================  =======  ======  ====  ===========  ==========================================

:func:`make_clean_photo` adds ``clean.tif`` (16-bit, 600 dpi, Adobe RGB, the same fields): a
photo the classical backend leaves unchanged.

:func:`make_grey_masters` writes greyscale masters (one colour channel), each with the same
fields, in every format, with and without a resolution and a grey ICC profile
(:func:`grey_icc_profile`, built here), one of them with XMP Media Management identifiers:

================  =======  ====  ====  ========  =============================================
file              format   bits  dpi   profile   also
================  =======  ====  ====  ========  =============================================
grey8.png         PNG      8     300   grey
grey16.png        PNG      16    none  none      xmpMM DocumentID, InstanceID, a History event
grey16.tif        TIFF     16    600   grey
grey8.jpg         JPEG     8     none  grey      EXIF without a resolution (Pillow reads 72)
================  =======  ====  ====  ========  =============================================
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

ICC_PATH = Path(__file__).parent / "data" / "icc" / "compatibleWithAdobeRGB1998.icc"

FIELDS: dict[str, object] = {
    "IFD0:Artist": "Zoë Ångström",
    "IFD0:Copyright": "© 1931 Ångström family; CC BY-NC 4.0",
    "IFD0:ImageDescription": "Wedding of Anna and Jörg, village square",
    "IFD0:Make": "Epson",
    "IFD0:Model": "Perfection V850 Pro",
    "ExifIFD:DateTimeOriginal": "1931:05:02 11:30:00",
    "IPTC:By-line": "Zoe Angstrom",
    "IPTC:CopyrightNotice": "(c) 1931 Angstrom family",
    "IPTC:Caption-Abstract": "Wedding of Anna and Jorg, village square",
    "IPTC:Credit": "Angstrom family archive",
    "IPTC:ObjectName": "Wedding 1931",
    "XMP-dc:Creator": ["Zoë Ångström"],
    "XMP-dc:Rights": "© 1931 Ångström family; CC BY-NC 4.0",
    "XMP-dc:Description": "Wedding of Anna and Jörg, village square",
    "XMP-dc:Title": "Wedding 1931",
    "XMP-photoshop:Credit": "Ångström family archive",
    "XMP-iptcCore:ExtDescrAccessibility": "A couple in front of a church, guests around them",
}
"""The fields every master carries, as exiftool ``-G1 -n -struct`` reports them."""


@dataclass(frozen=True)
class CorpusPhoto:
    """One generated master and what it was made with."""

    path: Path
    bits: int
    dpi: float
    orientation: int
    icc: bytes | None
    pixels: np.ndarray  # as stored (before orientation), uint8 or uint16 H×W×3


def exiftool(*args: str) -> bytes:
    """Run exiftool (arguments through an argument file) and return its stdout."""
    proc = subprocess.run(["exiftool", "-@", "-"], input="\n".join(args).encode() + b"\n",
                          capture_output=True, check=True)
    return proc.stdout


def require_exiftool() -> None:
    """Skip the calling test module when exiftool is missing; under CI, fail instead."""
    if shutil.which("exiftool") is None:
        if os.environ.get("CI"):
            raise RuntimeError("exiftool is required under CI "
                               "(apt-get install libimage-exiftool-perl)")
        pytest.skip("exiftool not installed (apt-get install libimage-exiftool-perl)",
                    allow_module_level=True)


def read_tags(path: Path) -> dict:
    """Every tag of ``path`` (duplicates too), keyed ``Group:Tag``, numbers as numbers."""
    return json.loads(exiftool("-j", "-a", "-G1", "-n", "-struct", str(path)))[0]


def icc_of(path: Path) -> bytes:
    """The ICC profile embedded in ``path`` (empty when there is none)."""
    return exiftool("-b", "-ICC_Profile", str(path))


def _colour_scene(height: int, width: int) -> np.ndarray:
    """Float RGB in [0, 1]: smooth gradients (thousands of 16-bit levels) and saturated patches."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    red = x / (width - 1)
    green = y / (height - 1)
    blue = 0.5 + 0.4 * np.sin(x / 9.0) * np.cos(y / 13.0)
    rgb = np.stack([red, green, blue], axis=2)
    rgb[4:14, 4:14] = (0.05, 0.85, 0.1)   # a saturated green, outside sRGB in Adobe RGB
    rgb[4:14, 20:30] = (0.9, 0.1, 0.15)
    return rgb


def _print_scene(height: int, width: int) -> np.ndarray:
    """Float luminance in [0, 1]: a faded portrait-like print (vignette, soft shapes)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    cy, cx = height / 2, width / 2
    radius = np.hypot((y - cy) / height, (x - cx) / width)
    lum = 0.25 + 0.55 * np.clip(1.0 - 1.4 * radius, 0, 1)
    lum += 0.12 * np.sin(x / 7.0) * np.sin(y / 11.0)
    return np.clip(lum, 0.05, 0.95)


def _sepia(lum: np.ndarray) -> np.ndarray:
    """A sepia toning: dark brown shadows to cream highlights (chroma a function of luminance)."""
    shadow, highlight = np.array([0.32, 0.2, 0.1]), np.array([1.0, 0.94, 0.8])
    return np.clip(shadow + (highlight - shadow) * lum[:, :, None], 0, 1)


def _tag(path: Path, dpi: float | None, orientation: int, icc: bytes | None,
         extra: tuple[str, ...] = ()) -> None:
    """exiftool writes FIELDS, the orientation and the resolution (``dpi`` None: none at all,
    also not the 72 dpi exiftool adds to a new EXIF IFD0) into ``path``; and a PNG's profile."""
    args = ["-overwrite_original", "-n", "-m"]
    for key, value in FIELDS.items():
        for item in (value if isinstance(value, list) else [value]):
            args.append(f"-{key}={item}")
    if dpi is None:
        args += ["-IFD0:XResolution=", "-IFD0:YResolution=", "-IFD0:ResolutionUnit="]
    else:
        args += [f"-IFD0:XResolution={dpi}", f"-IFD0:YResolution={dpi}",
                 "-IFD0:ResolutionUnit=2"]
    args.append(f"-IFD0:Orientation={orientation}")
    if path.suffix == ".png":
        if dpi is not None:
            ppm = round(dpi / 0.0254)
            args += [f"-PNG-pHYs:PixelsPerUnitX={ppm}", f"-PNG-pHYs:PixelsPerUnitY={ppm}",
                     "-PNG-pHYs:PixelUnits=1"]
        if icc is not None:
            profile = path.with_name(f".{path.name}.icc")
            profile.write_bytes(icc)
            args.append(f"-ICC_Profile<={profile}")
    args += list(extra)
    try:
        exiftool(*args, str(path))
    finally:
        if path.suffix == ".png" and icc is not None:
            path.with_name(f".{path.name}.icc").unlink()


def _write(path: Path, pixels: np.ndarray, dpi: float, icc: bytes | None) -> None:
    import cv2
    import tifffile

    if path.suffix == ".tif":
        tifffile.imwrite(path, pixels, photometric="rgb", compression="zlib",
                         resolution=(dpi, dpi), resolutionunit="INCH", iccprofile=icc,
                         metadata=None)
    else:
        cv2.imwrite(str(path), np.ascontiguousarray(pixels[:, :, ::-1]))


def make_corpus(folder: Path, height: int = 48, width: int = 64) -> dict[str, CorpusPhoto]:
    """Write the corpus into ``folder``; name -> CorpusPhoto."""
    folder.mkdir(parents=True, exist_ok=True)
    icc = ICC_PATH.read_bytes()
    colour = np.rint(_colour_scene(height, width) * 65535).astype(np.uint16)
    lum = _print_scene(height, width)
    grey = np.rint(np.repeat(lum[:, :, None], 3, axis=2) * 65535).astype(np.uint16)
    sepia = np.rint(_sepia(lum) * 255).astype(np.uint8)
    specs = [
        ("colour16.tif", colour, 16, 600.0, 6, icc),
        ("colour16.png", colour, 16, 1200.0, 1, icc),
        ("grey_print.tif", grey, 16, 600.0, 1, None),
        ("sepia_print.png", sepia, 8, 1200.0, 1, None),
    ]
    corpus = {}
    for name, pixels, bits, dpi, orientation, profile in specs:
        path = folder / name
        _write(path, pixels, dpi, profile)
        _tag(path, dpi, orientation, profile)
        corpus[name] = CorpusPhoto(path=path, bits=bits, dpi=dpi, orientation=orientation,
                                   icc=profile, pixels=pixels)
    return corpus


def make_clean_photo(folder: Path, name: str = "clean.tif", height: int = 48,
                     width: int = 64) -> CorpusPhoto:
    """A clean 16-bit TIFF master with the Adobe RGB profile and every corpus field: sharp,
    noiseless blocks of full-contrast, balanced colours, which the classical backend leaves
    unchanged (no fading, cast, noise, blur or JPEG blocking to correct) — the photo for the
    colour-managed rendering check of the whole workflow."""
    palette = np.array([[0, 0, 0], [255, 255, 255], [200, 40, 40], [40, 160, 60], [50, 70, 200],
                        [230, 210, 60], [128, 128, 128], [90, 60, 40]], np.uint16)
    rng = np.random.default_rng(0)
    block = 8
    index = rng.integers(0, len(palette), (height // block, width // block))
    pixels = palette[np.kron(index, np.ones((block, block), int))] * 257
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    icc = ICC_PATH.read_bytes()
    _write(path, pixels, 600.0, icc)
    _tag(path, 600.0, 1, icc)
    return CorpusPhoto(path=path, bits=16, dpi=600.0, orientation=1, icc=icc, pixels=pixels)


def grey_icc_profile() -> bytes:
    """A minimal ICC v2 monitor profile of colour space GRAY (gamma 2.2 grey, D50 white point),
    as a scanner embeds in a greyscale master: header, ``desc``, ``wtpt``, ``kTRC``, ``cprt``."""
    def s15(value: float) -> bytes:
        return struct.pack(">i", round(value * 65536))

    def padded(data: bytes) -> bytes:
        return data + b"\0" * (-len(data) % 4)

    text = b"Grey gamma 2.2 (oldphoto test profile)"
    tags = [
        (b"desc", padded(b"desc" + bytes(4) + struct.pack(">I", len(text) + 1) + text + b"\0"
                         + bytes(8) + bytes(3) + bytes(67))),
        (b"wtpt", b"XYZ " + bytes(4) + s15(0.9642) + s15(1.0) + s15(0.8249)),
        (b"kTRC", padded(b"curv" + bytes(4) + struct.pack(">IH", 1, round(2.2 * 256)))),
        (b"cprt", padded(b"text" + bytes(4) + b"Public domain.\0")),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for signature, data in tags:
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = (struct.pack(">I", size) + b"lcms" + struct.pack(">I", 0x02100000) + b"mntr"
              + b"GRAY" + b"XYZ " + struct.pack(">6H", 2024, 1, 1, 0, 0, 0) + b"acsp"
              + bytes(4) + bytes(4) + bytes(4) + bytes(4) + bytes(8) + struct.pack(">I", 0)
              + s15(0.9642) + s15(1.0) + s15(0.8249) + bytes(4) + bytes(16) + bytes(28))
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body


GREY_IDENTITY = {"DocumentID": "uuid:abc", "InstanceID": "uuid:abc-instance-7"}
"""The XMP Media Management identifiers of ``grey16.png``."""


def make_grey_masters(folder: Path, height: int = 48, width: int = 64) -> dict[str, CorpusPhoto]:
    """Write the greyscale masters (table in the module docstring) into ``folder``."""
    import cv2
    import tifffile
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    icc = grey_icc_profile()
    lum = _print_scene(height, width)
    grey8 = np.rint(lum * 255).astype(np.uint8)
    grey16 = np.rint(lum * 65535).astype(np.uint16)
    photos = {}
    path = folder / "grey8.png"
    Image.fromarray(grey8, "L").save(path)
    _tag(path, 300.0, 1, icc)
    photos[path.name] = CorpusPhoto(path, 8, 300.0, 1, icc, grey8)
    path = folder / "grey16.png"
    cv2.imwrite(str(path), grey16)
    _tag(path, None, 1, None, (f"-XMP-xmpMM:DocumentID={GREY_IDENTITY['DocumentID']}",
                               f"-XMP-xmpMM:InstanceID={GREY_IDENTITY['InstanceID']}",
                               "-XMP-xmpMM:HistoryAction=created",
                               "-XMP-xmpMM:HistoryWhen=2019:04:01 09:30:00+02:00",
                               "-XMP-xmpMM:HistorySoftwareAgent=Epson Scan 2"))
    photos[path.name] = CorpusPhoto(path, 16, None, 1, None, grey16)
    path = folder / "grey16.tif"
    tifffile.imwrite(path, grey16, photometric="minisblack", compression="zlib",
                     resolution=(600.0, 600.0), resolutionunit="INCH", iccprofile=icc,
                     metadata=None)
    _tag(path, 600.0, 1, icc)
    photos[path.name] = CorpusPhoto(path, 16, 600.0, 1, icc, grey16)
    path = folder / "grey8.jpg"
    Image.fromarray(grey8, "L").save(path, quality=98, icc_profile=icc)
    _tag(path, None, 1, icc)
    with Image.open(path) as im:  # JPEG stores its own (lossy) values
        photos[path.name] = CorpusPhoto(path, 8, None, 1, icc, np.asarray(im).copy())
    return photos


def shown_srgb(pixels: np.ndarray, icc: bytes | None) -> np.ndarray:
    """How a colour-managed viewer shows ``pixels`` (uint8, or float in [0, 1]) tagged with
    ``icc``: their 8-bit sRGB values (``icc`` None: the values taken as sRGB)."""
    from oldphoto.archival.colour import to_working_srgb
    from oldphoto.archival.depth import to_uint8

    return to_working_srgb(to_uint8(pixels), icc)


def tone_stats(rgb: np.ndarray) -> dict[str, float]:
    """The mean chroma of a uint8 RGB photo, BT.601 full range on 8-bit levels:
    ``mean_cb`` (B - Y) x 0.564 and ``mean_cr`` (R - Y) x 0.713, Y = 0.299 R + 0.587 G + 0.114 B.
    A sepia print has a clearly negative Cb (yellow-brown); a neutral grey has none."""
    values = rgb.astype(np.float64)
    y = values @ np.array([0.299, 0.587, 0.114])
    return {"mean_cb": float((0.564 * (values[..., 2] - y)).mean()),
            "mean_cr": float((0.713 * (values[..., 0] - y)).mean())}
