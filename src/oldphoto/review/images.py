"""Files the review serves: paths that stay inside the output folder, thumbnails, and
browser-viewable renderings — made once, cached in the output folder, never next to an original.

* :func:`inside` resolves a path asked for by the page under the output folder and refuses
  anything that would leave it: ``..``, absolute paths, NUL bytes, backslashes, and symbolic
  links that point out (the resolved path must still lie under the resolved folder).
* :func:`thumbnail` (256 px JPEG) and :func:`screen_rendering` (at most 1600 px JPEG, what the
  page shows until the reviewer zooms in) are made from the final output on first request and
  kept under ``.oldphoto/review/`` by a hash of the source path; a cached file is used while it
  is newer than its source.
* :func:`viewable` gives a browser-viewable file for any photo: PNG and JPEG finals as they are,
  TIFF finals and every original as an 8-bit sRGB PNG rendering (EXIF orientation applied,
  16-bit scaled, an embedded ICC profile converted to sRGB), cached in the output folder.  An
  original is only ever opened for reading.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from oldphoto.atomic import write_bytes_atomic

THUMB_SIZE = 256
SCREEN_SIZE = 1600
BROWSER_NATIVE = {".png", ".jpg", ".jpeg"}


class OutsideFolder(ValueError):
    """A path that would leave the output folder."""


def inside(root: str | Path, relative: str) -> Path:
    """``root / relative`` when it is a file-system path under ``root`` after resolving every
    symbolic link; raises :class:`OutsideFolder` otherwise (nothing is opened)."""
    if not relative or "\x00" in relative or "\\" in relative or relative.startswith("/") \
            or Path(relative).is_absolute():
        raise OutsideFolder(relative)
    parts = Path(relative).parts
    if any(part in ("..", ".") for part in parts) or any(p.startswith("~") for p in parts[:1]):
        raise OutsideFolder(relative)
    base = Path(root).resolve()
    candidate = (base / relative).resolve()
    if candidate != base and base not in candidate.parents:
        raise OutsideFolder(relative)
    return candidate


def cache_path(cache_dir: Path, kind: str, source: Path, suffix: str) -> Path:
    """Where a derived file of ``source`` is cached (by a hash of its path)."""
    digest = hashlib.sha256(os.fsencode(str(source))).hexdigest()[:32]
    return cache_dir / kind / digest[:2] / f"{digest}{suffix}"


def _fresh(cached: Path, source: Path) -> bool:
    try:
        return cached.stat().st_mtime_ns >= source.stat().st_mtime_ns
    except OSError:
        return False


def _load_rgb(source: Path):
    """The photo as 8-bit sRGB pixels (a PIL image) as a colour-managed viewer shows it: as the
    restoration reads it (:func:`oldphoto.archival.master.read_original`)."""
    from PIL import Image

    from oldphoto.archival.master import read_original
    from oldphoto.decode import read_image
    from oldphoto.errors import OldPhotoError

    try:
        rgb = read_original(source).rgb
    except OldPhotoError:  # a broken profile: show the values as they are (a bad image raises)
        rgb = read_image(source).rgb
    return Image.fromarray(rgb)


def _write_image(image, target: Path, fmt: str, **options) -> None:
    import io

    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    write_bytes_atomic(target, buffer.getvalue())


def _reduced(source: Path, size: int):
    """The photo reduced to fit ``size`` px (JPEG decoded at a reduced scale when possible)."""
    from PIL import Image

    if source.suffix.lower() in BROWSER_NATIVE:
        try:
            with Image.open(source) as im:
                im.draft("RGB", (size, size))
                im = im.convert("RGB")
                im.thumbnail((size, size), Image.LANCZOS)
                return im
        except OSError:
            pass
    image = _load_rgb(source)
    image.thumbnail((size, size), Image.LANCZOS)
    return image


def thumbnail(source: Path, cache_dir: Path, size: int = THUMB_SIZE) -> Path:
    """A JPEG of at most ``size`` px of ``source``, made once (cached while fresh)."""
    target = cache_path(cache_dir, f"thumb{size}", source, ".jpg")
    if not _fresh(target, source):
        _write_image(_reduced(source, size), target, "JPEG", quality=85)
    return target


def screen_rendering(source: Path, cache_dir: Path, size: int = SCREEN_SIZE, *,
                     native_ok: bool = True) -> Path:
    """``source`` as shown before zooming: itself when ``native_ok``, it is browser-native and
    at most ``size`` px, else a JPEG (quality 92) of at most ``size`` px, cached."""
    from PIL import Image

    if native_ok and source.suffix.lower() in BROWSER_NATIVE:
        try:
            with Image.open(source) as im:
                if max(im.size) <= size:
                    return source
        except OSError:
            pass
    target = cache_path(cache_dir, f"screen{size}", source, ".jpg")
    if not _fresh(target, source):
        _write_image(_reduced(source, size), target, "JPEG", quality=92)
    return target


def viewable(source: Path, cache_dir: Path, *, native_ok: bool) -> Path:
    """A browser-viewable file of ``source`` at full resolution: ``source`` itself when
    ``native_ok`` and it is PNG or JPEG, else an sRGB PNG rendering (cached)."""
    if native_ok and source.suffix.lower() in BROWSER_NATIVE:
        return source
    target = cache_path(cache_dir, "full", source, ".png")
    if not _fresh(target, source):
        _write_image(_load_rgb(source), target, "PNG", compress_level=1)
    return target
