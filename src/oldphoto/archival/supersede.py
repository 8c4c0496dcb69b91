"""One derivative per photo in ``final_output/``: a final the photo no longer has is moved aside.

A photo's final output is ``final_output/<photo>.<ext>``, its extension following its
``output_format``.  When that setting changes (one row of a photo sheet, or the run's), stage 4
writes the photo's new final under the new extension; the final written before is then *stale*:
no setting asks for it and no sidecar describes it.  Two inputs never share a stem
(:mod:`oldphoto.inputs` refuses ``a.png`` beside ``a.jpg``), so another final with the photo's
stem is always such a stale one.

An archive keeps what it was given, so the stale final is not deleted: once the new final is
written, :func:`supersede_other_finals` moves it into ``<output_dir>/superseded/`` as
``<photo>.<UTC time>.<ext>`` (its bytes, and so its own XMP provenance, unchanged) and writes
beside it ``<photo>.<UTC time>.<ext>.json``: which file it was, its sha256 and size, when and by
which final it was superseded.  :func:`superseded_history` reads those records back for the
photo's sidecar (``superseded``), so the sidecar lists every final the photo's current one
replaced, across runs.  ``docs/archival.md`` (One derivative per photo) gives the reasons.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any

from oldphoto.layout import FINAL_EXTENSIONS

SUPERSEDED = "superseded"
"""The folder, beside ``final_output/``, that keeps the finals a photo no longer has."""
RECORD_SUFFIX = ".json"


def superseded_dir(final: str | Path) -> Path:
    """``<output_dir>/superseded`` for a final output ``<output_dir>/final_output/<photo>.<ext>``."""
    return Path(final).parent.parent / SUPERSEDED


def other_finals(final: str | Path) -> list[Path]:
    """The photo's finals with another extension than ``final``'s (files that exist)."""
    final = Path(final)
    stem, ext = final.name.rsplit(".", 1)
    return [final.with_name(f"{stem}.{other}") for other in FINAL_EXTENSIONS
            if other != ext and final.with_name(f"{stem}.{other}").is_file()]


def _stamp(when: _dt.datetime) -> str:
    return when.strftime("%Y%m%dT%H%M%SZ")


def _free_name(folder: Path, stem: str, stamp: str, ext: str) -> Path:
    target = folder / f"{stem}.{stamp}.{ext}"
    count = 1
    while target.exists() or target.with_name(target.name + RECORD_SUFFIX).exists():
        count += 1
        target = folder / f"{stem}.{stamp}-{count}.{ext}"
    return target


def supersede_other_finals(final: str | Path,
                           now: _dt.datetime | None = None) -> list[dict[str, Any]]:
    """Move every other final of ``final``'s photo (:func:`other_finals`) into
    :func:`superseded_dir`, each with its record; returns the records (oldest file first).

    Call it after ``final`` is written: until then the photo's previous final stays in place.
    Each record: ``photo``, ``file`` (its name in ``final_output/``), ``moved_to`` (path relative
    to the output folder), ``sha256``, ``size_bytes``, ``superseded_at`` (UTC, ISO 8601 to the microsecond, so records sort in order) and
    ``superseded_by`` (the new final's name).  The record is written before the move: a record
    whose file is not (yet) in ``superseded/`` does not count (:func:`superseded_history`).
    """
    from oldphoto.archival.master import sha256_file
    from oldphoto.atomic import fsync_dir, write_json

    final = Path(final)
    stale = other_finals(final)
    if not stale:
        return []
    when = (now or _dt.datetime.now(_dt.timezone.utc)).astimezone(_dt.timezone.utc)
    folder = superseded_dir(final)
    folder.mkdir(parents=True, exist_ok=True)
    stem = final.name.rsplit(".", 1)[0]
    records = []
    for old in sorted(stale, key=lambda p: p.stat().st_mtime_ns):
        target = _free_name(folder, stem, _stamp(when), old.name.rsplit(".", 1)[1])
        record = {"photo": stem, "file": old.name,
                  "moved_to": f"{SUPERSEDED}/{target.name}",
                  "sha256": sha256_file(old), "size_bytes": old.stat().st_size,
                  "superseded_at": when.isoformat(), "superseded_by": final.name}
        write_json(target.with_name(target.name + RECORD_SUFFIX), record)
        os.replace(old, target)
        records.append(record)
    fsync_dir(folder)
    fsync_dir(final.parent)
    return records


def superseded_history(final: str | Path) -> list[dict[str, Any]]:
    """Every record of a final of ``final``'s photo moved into :func:`superseded_dir`, oldest
    first; a record whose file is missing, or that is unreadable, is left out."""
    final = Path(final)
    folder = superseded_dir(final)
    if not folder.is_dir():
        return []
    stem = final.name.rsplit(".", 1)[0]
    found = []
    prefix = f"{stem}."
    for entry in os.scandir(folder):
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(RECORD_SUFFIX)):
            continue
        try:
            record = json.loads(Path(entry.path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict) or record.get("photo") != stem:
            continue  # another photo whose name starts with this one's
        if not (folder.parent / str(record.get("moved_to", ""))).is_file():
            continue
        found.append(record)
    return sorted(found, key=lambda r: (str(r.get("superseded_at")), str(r.get("moved_to"))))
