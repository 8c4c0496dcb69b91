"""Downloading the official release zips (only the explicit download rule calls this)."""

from __future__ import annotations

import os
import shutil
import sys
import zipfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path, PurePosixPath

from oldphoto.atomic import temp_file_beside
from oldphoto.checkpoints.files import (OFFICIAL_FILES, OFFICIAL_ZIPS, known_name,
                                        missing_checkpoints, missing_message, official_path,
                                        zip_of)
from oldphoto.checkpoints.official import read_official
from oldphoto.errors import CheckpointError

__all__ = ["download_official"]

_CHUNK = 8 << 20


def _safe_member(name: str) -> PurePosixPath | None:
    """The relative path of a zip member, or None for folders and macOS metadata."""
    path = PurePosixPath(name.replace("\\", "/"))
    if name.endswith("/") or not path.parts or path.parts[0] == "__MACOSX":
        return None
    if path.is_absolute() or ".." in path.parts or ":" in path.parts[0]:
        raise ValueError(name)
    return path


def _download(url: str, target: Path, log: Callable[[str], None]) -> None:
    import urllib.request

    part = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(part, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            next_report = 0.0
            while chunk := response.read(1 << 20):
                out.write(chunk)
                done += len(chunk)
                if total and done / total >= next_report:
                    log(f"{target.name}: {done >> 20} / {total >> 20} MiB")
                    next_report += 0.1
        os.replace(part, target)
    except Exception as err:
        part.unlink(missing_ok=True)
        raise CheckpointError(url, f"download failed: {type(err).__name__}: {err}") from None


def _unpack(archive: Path, folder: Path) -> None:
    """Unzip ``archive`` into ``folder`` like ``unzip``, refusing members that escape it."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = []
            for info in zf.infolist():
                try:
                    rel = _safe_member(info.filename)
                except ValueError:
                    raise CheckpointError(
                        archive, f"refused: member {info.filename!r} would be written outside "
                        f"{folder}"
                    ) from None
                if rel is not None:
                    members.append((info, rel))
            for info, rel in members:
                target = folder.joinpath(*rel.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = temp_file_beside(target)
                try:
                    with zf.open(info) as src, open(tmp, "wb") as dst:
                        shutil.copyfileobj(src, dst, _CHUNK)
                    os.replace(tmp, target)
                finally:
                    tmp.unlink(missing_ok=True)
    except (zipfile.BadZipFile, OSError) as err:
        raise CheckpointError(archive, f"cannot be unpacked: {err}") from None


def download_official(
    checkpoints_dir: str | Path,
    names: Iterable[str] | None = None,
    *,
    urls: Mapping[str, str] | None = None,
    log: Callable[[str], None] | None = None,
) -> list[Path]:
    """Download the official release zips, unpack them, and verify every checkpoint file.

    Only the zips that hold a missing file of ``names`` (default: all nine) are fetched, with
    ``urllib``, unpacked like ``unzip`` into ``Global/`` and ``Face_Enhancement/`` of
    ``checkpoints_dir`` and deleted. Every file of ``names`` is then checked with
    :func:`read_official`. ``urls`` overrides the URL of a zip (tests use ``file://``). Returns the
    verified paths.
    """
    root = Path(checkpoints_dir)
    names = list(OFFICIAL_FILES) if names is None else [known_name(n) for n in names]
    log = log or (lambda line: print(line, file=sys.stderr))
    urls = {**{z: url for z, (_, url) in OFFICIAL_ZIPS.items()}, **(urls or {})}
    missing = {p: n for n in names if not (p := official_path(root, n)).is_file()}
    for zip_name, (folder, _) in OFFICIAL_ZIPS.items():
        if not any(zip_of(n) == zip_name for n in missing.values()):
            continue
        (root / folder).mkdir(parents=True, exist_ok=True)
        archive = root / folder / zip_name
        log(f"downloading {urls[zip_name]}")
        _download(urls[zip_name], archive, log)
        try:
            _unpack(archive, root / folder)
        finally:
            archive.unlink(missing_ok=True)
    still_missing = missing_checkpoints(root, names)
    if still_missing:
        raise CheckpointError(
            root, "the downloaded zips did not provide every file:\n"
            + missing_message(root, still_missing)
        )
    verified = []
    for name in names:
        path = official_path(root, name)
        read_official(path, name)
        log(f"verified {path}")
        verified.append(path)
    return verified
