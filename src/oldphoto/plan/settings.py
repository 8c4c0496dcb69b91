"""Each photo's effective settings, and what ``with_scratch: auto`` means for it.

A photo's settings are its row of the photo sheet, else the run's config, else the defaults
(:func:`oldphoto.sheet.effective_settings`); photos without a row share one settings object.
This module is the one place that says which settings a photo has (the run plan, the run
summary and the review page ask it) and how ``with_scratch: auto`` reads: the photo is
configured on the scratch path (its detector runs) and its triage decides the path later
(:func:`configured_mode`, :func:`triage_decides`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

from oldphoto.inputs import InputSet
from oldphoto.mode import Mode
from oldphoto.sheet import PhotoSettings, effective_settings, read_sheet


def triage_decides(settings: Mapping[str, Any]) -> bool:
    """``with_scratch: auto``: the scratch triage picks the photo's stage-1 path at run time."""
    return settings["with_scratch"] == "auto"


def configured_mode(settings: Mapping[str, Any]) -> Mode:
    """The mode a photo's settings configure; ``with_scratch: auto`` counts as the scratch
    mode (its detector runs first), until its triage decides."""
    return Mode(with_scratch=settings["with_scratch"] in (True, "auto"), hr=bool(settings["hr"]))


def folder_sheet(config: Mapping[str, Any]) -> str | None:
    """The output folder's own photo sheet (``photo_sheet.tsv``, written by ``oldphoto review``)
    when it exists: the sheet of a run whose config names none (docs/review.md)."""
    from oldphoto.layout import Layout

    path = Layout(str(config["output_dir"])).folder_sheet
    return path if Path(path).is_file() else None


def settings_of(run_wide: Mapping[str, Any], rows: Mapping[str, Mapping[str, Any]],
                photos: Iterable[str]) -> dict[str, PhotoSettings]:
    """Each photo's effective settings from the run's values and the sheet's rows: the photos
    without a row (or with an empty one) share one object (a run of 100,000 photos builds
    one, not 100,000)."""
    shared = effective_settings(run_wide, {})
    return {stem: (effective_settings(run_wide, rows[stem]) if rows.get(stem) else shared)
            for stem in photos}


def photo_settings(config: Mapping[str, Any], inputs: InputSet,
                   folder: InputSet | None = None) -> dict[str, PhotoSettings]:
    """Every photo's effective settings: its row of the photo sheet (``photo_sheet``, else the
    folder's own sheet), else the run's config (:func:`settings_of`; each knows which of its
    values its sheet row set, for the summary and the report).

    Raises ConfigError (row, column, value) for a bad sheet, before any work.  The sheet is
    checked against the whole input ``folder`` (default: ``inputs``): a shard's run accepts the
    rows of the other shards' photos and uses its own.
    """
    rows: dict[str, dict[str, Any]] = {}
    sheet = config.get("photo_sheet") or folder_sheet(config)
    if sheet:
        rows = read_sheet(sheet, (folder or inputs).images, config["input_dir"])
    return settings_of(config, rows, inputs.images)
