"""Atomic writes: a reader (or a resumed run) never sees a half-written file.

:func:`write_png`, :func:`write_bytes_atomic` and :func:`write_json` write through a temporary
file (:data:`TEMP_PREFIX`, hidden) in the destination folder, fsync it and ``os.replace`` it onto
the destination; :func:`read_png_text` reads back the text chunks :func:`write_png` stores.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Mapping

import numpy as np

from oldphoto.decode import DecodingErrors, apply_alpha

__all__ = ["TEMP_PREFIX", "fsync_dir", "temp_file_beside", "write_bytes_atomic", "write_json",
           "write_png", "read_png_text"]

TEMP_PREFIX = ".tmp-"
"""Prefix of the temporary files of atomic writes (hidden, so list_inputs never picks one up)."""


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



def temp_file_beside(target: Path) -> Path:
    """A new empty file ``.<name>.<random>.tmp`` in ``target``'s folder, for a write-then-rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    return Path(tmp)


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
    with DecodingErrors(path, "cannot read PNG text", None), Image.open(path) as im:
        return {str(k): str(v) for k, v in getattr(im, "text", {}).items()}
