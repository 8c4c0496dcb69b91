"""A generated corpus of the inputs a photo folder really contains, good and bad.

``make_hostile_corpus(folder)`` writes every case into ``folder`` (nothing binary lives in git)
and returns ``{file name: Expected}``.  ``Expected`` is a ``str`` — ``"ok"``, ``"skipped"`` or
``"bad:<substring of the reason>"`` — so ``expected == "ok"`` and
``expected.startswith("bad:")`` work; it also carries what the decoded result must be:

* ``.size``: (width, height) after EXIF orientation, for ok files;
* ``.rgb`` / ``.alpha``: the expected decoded pixels (alpha None = no alpha);
* ``.tol``: the largest acceptable mean absolute difference from ``.rgb`` (0 = exact; lossy
  formats get a few levels);
* ``.note``: a substring that must appear in one of the decoder's notes, or None;
* ``.stem``: the output stem the pipeline will use.

Pictures are a small "photo" (sky gradient, sun, house, tree, texture) so that later stages
(scratch detection, restoration) see something image-like, not flat noise.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path
from typing import Iterable

import numpy as np

WIDTH, HEIGHT = 96, 64
"""Size of most corpus pictures (width, height)."""

JPEG_TOL = 8.0
"""Mean absolute error allowed for lossy files (q≈90 on a grainy picture gives about 5)."""


class Expected(str):
    """An expected outcome (``"ok"``, ``"skipped"``, ``"bad:<reason substring>"``) plus details."""

    size: tuple[int, int] | None
    rgb: np.ndarray | None
    alpha: np.ndarray | None
    tol: float
    note: str | None
    stem: str

    def __new__(cls, outcome: str, name: str, *, rgb: np.ndarray | None = None,
                alpha: np.ndarray | None = None, tol: float = 0.0, note: str | None = None):
        self = super().__new__(cls, outcome)
        self.rgb = rgb
        self.alpha = alpha
        self.size = None if rgb is None else (rgb.shape[1], rgb.shape[0])
        self.tol = tol
        self.note = note
        self.stem = os.path.splitext(name)[0]
        return self

    @property
    def reason(self) -> str | None:
        """The substring the BadImageError reason must contain (bad files only)."""
        return self[4:] if self.startswith("bad:") else None


def photo(width: int = WIDTH, height: int = HEIGHT, seed: int = 0) -> np.ndarray:
    """A deterministic photo-like uint8 H×W×3 picture: sky, sun, ground, house, tree, grain."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = x / max(width - 1, 1), y / max(height - 1, 1)
    img = np.empty((height, width, 3))
    horizon = 0.6
    sky = v < horizon
    img[..., 0] = np.where(sky, 90 + 120 * v, 70 + 60 * u)
    img[..., 1] = np.where(sky, 140 + 90 * v, 110 - 40 * v)
    img[..., 2] = np.where(sky, 230 - 60 * v, 50 + 20 * u)
    sun = (u - 0.78) ** 2 + ((v - 0.2) * height / width) ** 2 < 0.008
    img[sun] = (250, 230, 120)
    house = (u > 0.15) & (u < 0.42) & (v > 0.42) & (v < 0.85)
    img[house] = (150, 60, 50)
    roof = (v > 0.25) & (v <= 0.42) & (np.abs(u - 0.285) < (v - 0.25) * 0.8)
    img[roof] = (60, 40, 35)
    door = (u > 0.26) & (u < 0.31) & (v > 0.62) & (v < 0.85)
    img[door] = (40, 30, 20)
    trunk = (u > 0.6) & (u < 0.64) & (v > 0.5) & (v < 0.9)
    img[trunk] = (80, 55, 30)
    crown = (u - 0.62) ** 2 + ((v - 0.42) * height / width) ** 2 < 0.006
    img[crown] = (40, 120, 45)
    grain = np.random.default_rng(seed).normal(0, 4, img.shape)
    return np.clip(np.rint(img + grain), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# Hand-made PNG bytes for headers PIL will not write


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(width: int, height: int, idat: bytes, bit_depth: int = 8,
              colour_type: int = 2) -> bytes:
    """A PNG with the given IHDR and IDAT payload (not checked against each other)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat)
            + png_chunk(b"IEND", b""))


def bomb_png(width: int, height: int) -> bytes:
    """A tiny file declaring a huge grey image (its data is one compressed empty row)."""
    return png_bytes(width, height, zlib.compress(b"\x00" * (width + 1), 9), colour_type=0)


# ---------------------------------------------------------------------------------------------


def _encode(image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def _transpose(rgb: np.ndarray, method) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(rgb).transpose(method)).copy()


def _composite(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha.astype(np.float64)[..., None] / 255.0
    return np.rint(rgb * a + 255.0 * (1.0 - a)).astype(np.uint8)


def make_hostile_corpus(folder: str | Path,
                        only: Iterable[str] | None = None) -> dict[str, Expected]:
    """Write the corpus into ``folder`` (created) and return {file name: Expected}.

    ``only``: write just these file names (e.g. a few cases for a slower workflow test).
    """
    import cv2
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cases: dict[str, Expected] = {}
    base = photo()
    pil = Image.fromarray(base)

    wanted = None if only is None else set(only)

    def put(name: str, data: bytes, outcome: str = "ok", **expected) -> None:
        if wanted is None or name in wanted:
            (folder / name).write_bytes(data)
            cases[name] = Expected(outcome, name, **expected)

    # --- colour modes ------------------------------------------------------------------------
    put("plain.png", _encode(pil, "PNG"), rgb=base)
    gray = np.asarray(pil.convert("L"))
    put("gray.png", _encode(Image.fromarray(gray), "PNG"), rgb=np.dstack([gray] * 3))
    bilevel = pil.convert("1")
    bilevel_rgb = np.asarray(bilevel.convert("RGB")).copy()
    put("bilevel.png", _encode(bilevel, "PNG"), rgb=bilevel_rgb)
    palette = pil.quantize(64)
    palette_rgb = np.asarray(palette.convert("RGB")).copy()
    put("palette.png", _encode(palette, "PNG"), rgb=palette_rgb)
    # Palette + transparency: the most frequent index becomes transparent.
    indices = np.asarray(palette)
    clear = int(np.bincount(indices.ravel()).argmax())
    palette_alpha = np.where(indices == clear, 0, 255).astype(np.uint8)
    put("palette_transparent.png", _encode(palette, "PNG", transparency=clear),
        rgb=_composite(palette_rgb, palette_alpha), alpha=palette_alpha, note="alpha kept")
    ramp = np.tile(np.linspace(0, 255, WIDTH).round().astype(np.uint8), (HEIGHT, 1))
    put("rgba.png", _encode(Image.fromarray(np.dstack([base, ramp])), "PNG"),
        rgb=_composite(base, ramp), alpha=ramp, note="composited onto white")
    put("opaque_rgba.png", _encode(Image.fromarray(np.dstack([base, np.full_like(ramp, 255)])),
                                   "PNG"), rgb=base, note="fully opaque")
    keyed = base.copy()
    keyed[10:30, 40:70] = (1, 2, 3)  # a colour the grainy picture never has elsewhere
    key_alpha = np.where((keyed == (1, 2, 3)).all(axis=2), 0, 255).astype(np.uint8)
    put("colour_key.png", _encode(Image.fromarray(keyed), "PNG", transparency=(1, 2, 3)),
        rgb=_composite(keyed, key_alpha), alpha=key_alpha, note="colour-key")
    la = Image.merge("LA", [Image.fromarray(gray), Image.fromarray(ramp[:, ::-1])])
    put("gray_alpha.png", _encode(la, "PNG"),
        rgb=_composite(np.dstack([gray] * 3), ramp[:, ::-1]), alpha=ramp[:, ::-1].copy())

    # --- high bit depth ----------------------------------------------------------------------
    # Every row holds the landmarks 0, 255, 256, 32896 (→128), 65535 (→255) then a smooth ramp.
    levels = np.tile(np.linspace(0, 65535, WIDTH).round().astype(np.uint16), (HEIGHT, 1))
    levels[:, :5] = [0, 255, 256, 32896, 65535]
    levels8 = np.rint(levels / 257.0).astype(np.uint8)
    put("gray16.png", _encode(Image.fromarray(levels), "PNG"), rgb=np.dstack([levels8] * 3),
        note="16-bit")
    put("gray16_tiff.tif", _encode(Image.fromarray(levels), "TIFF"), rgb=np.dstack([levels8] * 3),
        note="16-bit")
    rgb16 = np.dstack([levels, levels[::-1], levels[:, ::-1]])
    rgb16_8 = np.rint(rgb16 / 257.0).astype(np.uint8)
    put("rgb16.png", cv2.imencode(".png", rgb16[:, :, ::-1])[1].tobytes(), rgb=rgb16_8,
        note="16-bit")
    put("rgb16_tiff.tif", cv2.imencode(".tiff", rgb16[:, :, ::-1])[1].tobytes(), rgb=rgb16_8,
        note="16-bit")
    alpha16 = np.tile(np.linspace(0, 65535, WIDTH).round().astype(np.uint16), (HEIGHT, 1))
    rgba16 = np.dstack([rgb16[:, :, ::-1], alpha16])
    alpha16_8 = np.rint(alpha16 / 257.0).astype(np.uint8)
    put("rgba16.png", cv2.imencode(".png", rgba16)[1].tobytes(),
        rgb=_composite(rgb16_8, alpha16_8), alpha=alpha16_8, tol=0.5, note="16-bit")
    unit = levels.astype(np.float32) / 65535.0
    put("float.tif", _encode(Image.fromarray(unit), "TIFF"),  # mode F
        rgb=np.dstack([np.rint(unit.astype(np.float64) * 255).astype(np.uint8)] * 3),
        note="[0, 1]")
    put("int32.tif", _encode(Image.fromarray(levels.astype(np.int32)), "TIFF"),
        rgb=np.dstack([levels8] * 3), note="16-bit values")

    # --- JPEG variants -----------------------------------------------------------------------
    put("photo.jpg", _encode(pil, "JPEG", quality=92), rgb=base, tol=JPEG_TOL)
    put("progressive.jpg", _encode(pil, "JPEG", quality=92, progressive=True), rgb=base,
        tol=JPEG_TOL)
    # PIL writes CMYK JPEGs Adobe-style (inverted, with an APP14 marker), like Photoshop.
    put("cmyk.jpg", _encode(pil.convert("CMYK"), "JPEG", quality=95), rgb=base, tol=JPEG_TOL,
        note="CMYK")
    exif = Image.Exif()
    exif[0x0112] = 6
    put("exif_rot6.jpg", _encode(pil, "JPEG", quality=92, exif=exif),
        rgb=_transpose(base, Image.Transpose.ROTATE_270), tol=JPEG_TOL, note="orientation 6")
    exif[0x0112] = 3
    put("exif_rot3.jpg", _encode(pil, "JPEG", quality=92, exif=exif),
        rgb=_transpose(base, Image.Transpose.ROTATE_180), tol=JPEG_TOL, note="orientation 3")

    # --- other formats, multi-frame ----------------------------------------------------------
    put("photo_webp.webp", _encode(pil, "WEBP", quality=90), rgb=base, tol=JPEG_TOL)
    put("alpha.webp", _encode(Image.fromarray(np.dstack([base, ramp])), "WEBP", lossless=True),
        rgb=_composite(base, ramp), alpha=ramp, tol=0.5)
    put("photo_bmp.bmp", _encode(pil, "BMP"), rgb=base)
    frames = [palette] + [Image.fromarray(photo(seed=s)).quantize(64) for s in (1, 2, 3)]
    put("animated.gif", _encode(frames[0], "GIF", save_all=True, append_images=frames[1:],
                                duration=100, loop=0),
        rgb=palette_rgb, note="used frame 1 of 4")
    pages = [pil, Image.fromarray(photo(seed=5))]
    put("multipage.tif", _encode(pages[0], "TIFF", save_all=True, append_images=pages[1:]),
        rgb=base, note="used frame 1 of 2")
    tiny = photo(8, 8)
    put("tiny.png", _encode(Image.fromarray(tiny), "PNG"), rgb=tiny)

    # --- awkward names (and one name that lies about its format) -----------------------------
    for name in ("with space.png", "brackets [1] (copy).png", "quote's \"q\".png",
                 "café 写真 ünï.png", "-leading-dash.png", "UPPER.JPG", "multi.dot.name.jpeg",
                 "it's a $HOME `x`, 100%.png", "back\\slash ~1.png"):
        fmt = "JPEG" if name.lower().endswith((".jpg", ".jpeg")) else "PNG"
        put(name, _encode(pil, fmt, quality=92), rgb=base, tol=JPEG_TOL if fmt == "JPEG" else 0)
    put("png_inside.jpg", _encode(pil, "PNG"), rgb=base, note="content is PNG")

    # --- bad files ---------------------------------------------------------------------------
    good_png, good_jpg = _encode(pil, "PNG"), _encode(pil, "JPEG", quality=92)
    put("truncated.png", good_png[: len(good_png) // 2], "bad:truncated")
    put("truncated_jpeg.jpg", good_jpg[: len(good_jpg) // 2], "bad:truncated")
    put("empty.jpg", b"", "bad:empty file")
    put("corrupt_header.png", b"\x89PNG\r\n\x1a\n" + b"\x00garbage!" * 20, "bad:corrupt PNG")
    put("text_named.jpg", b"These are my holiday notes, not a photo.\n" * 4,
        "bad:not a readable image")
    broken = bytearray(good_png)
    start = good_png.index(b"IDAT") + 4
    broken[start + 2: start + 400] = bytes(398)  # zeroed compressed data, CRC now wrong too
    put("corrupt_data.png", bytes(broken), "bad:corrupt PNG")
    put("bomb.png", bomb_png(30000, 30000), "bad:over the limit")  # above PIL's 2× error
    put("bomb_warn.png", bomb_png(10000, 9000), "bad:over the limit")  # PIL would only warn
    put("zero_height.png", png_bytes(16, 0, zlib.compress(b"")), "bad:zero width or height")

    # --- entries that are not photos ---------------------------------------------------------
    for name, data in ((".DS_Store", b"\x00\x00\x00\x01Bud1"), (".hidden.png", good_png),
                       ("._IMG_0001.JPG", b"\x00\x05\x16\x07AppleDouble"),
                       ("photo.xmp", b"<x:xmpmeta/>"), ("notes.txt", b"notes"),
                       ("meta.json", b"{}"), ("data.xyz", good_png), ("README", b"readme")):
        put(name, data, "skipped")
    # Valid file names that Snakemake cannot carry as a wildcard value (see stem_problem).
    for name in ("{braces}.png", "x<y>.png", "new\nline.png", "tab\there.jpg"):
        put(name, good_png, "skipped")
    if wanted is None or "folder.png" in wanted:
        (folder / "folder.png").mkdir()
        (folder / "folder.png" / "inside.png").write_bytes(good_png)
        cases["folder.png"] = Expected("skipped", "folder.png")
    if wanted is None or "dangling.png" in wanted:
        os.symlink(folder / "does-not-exist.png", folder / "dangling.png")
        cases["dangling.png"] = Expected("skipped", "dangling.png")
    latin1 = os.fsdecode(b"caf\xe9.png")  # a Latin-1 name, not UTF-8 (old Windows archives)
    if wanted is None or latin1 in wanted:
        try:  # some file systems refuse such names
            with open(os.fsencode(folder) + b"/caf\xe9.png", "wb") as handle:
                handle.write(good_png)
            cases[latin1] = Expected("skipped", latin1)
        except (OSError, UnicodeError):
            pass
    return cases
