"""What an output folder holds for review: one :class:`PhotoEntry` per photo of the run.

Read once when the review opens, and again after a rerun, from files the run already writes
(no image is opened): ``run_summary.json`` (status, failure reasons, mode, faces, triage,
effective settings), the input manifest ``.oldphoto/inputs.json`` (where each original is), the
``final_output/`` listing and the provenance sidecars ``provenance/<photo>.json`` (the change
statistics: ``changes.changed_fraction`` sorts "most changed first").

The review's own files live in the output folder too: the record :data:`DB_NAME` at its top
(it is part of the delivery) and the caches (thumbnails, renderings, rerun logs) under
:data:`CACHE_DIR`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from oldphoto.layout import FINAL, FINAL_EXTENSIONS, Layout

DB_NAME = "review.sqlite"
"""The record of decisions, at the top of the output folder."""

CACHE_DIR = ".oldphoto/review"
"""Thumbnails, browser renderings and rerun logs (made by the review, safe to delete)."""

MANIFEST = ".oldphoto/inputs.json"
"""The run's input discovery (written by the workflow's main process)."""


@dataclass
class PhotoEntry:
    """One photo of the run, as the review shows and filters it.

    Attributes:
        index: position in the folder's order (by name); the id the web pages use.
        stem: the photo's name without extension (the run's wildcard).
        status: the run's status: ``restored``, ``failed`` or ``not run``.
        reasons: why it failed (one line per failed job), from ``run_summary.json``.
        mode: ``quality``, ``scratch``, ``quality_hr``, ``scratch_hr`` or None (unknown).
        faces: faces found, None when unknown.
        changed_fraction: share of pixels the restoration changed (sidecar), None if unknown.
        final: the final output, None when there is none.
        original: the input file (outside the folder; only ever read), None when unknown.
        triage: the ``with_scratch: auto`` decision, None when the photo had none.
        run_settings: the effective settings ``run_summary.json`` records for the photo.
        from_sheet: which of them the photo's sheet row set.
    """

    index: int
    stem: str
    status: str
    reasons: list[str] = field(default_factory=list)
    mode: str | None = None
    faces: int | None = None
    changed_fraction: float | None = None
    final: Path | None = None
    original: Path | None = None
    triage: dict[str, Any] | None = None
    run_settings: dict[str, Any] | None = None
    from_sheet: list[str] = field(default_factory=list)


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def read_summary(output_dir: str | Path) -> dict[str, Any]:
    """``run_summary.json`` of the folder, or ``{}`` when it has none (yet) or it is unreadable."""
    data = _read_json(Path(Layout(str(output_dir)).summary))
    return data if isinstance(data, dict) else {}


def read_manifest(output_dir: str | Path) -> dict[str, Any]:
    """The run's input manifest (``input_dir``, ``images``: stem -> file), or ``{}``."""
    data = _read_json(Path(output_dir) / MANIFEST)
    return data if isinstance(data, dict) else {}


def _finals(output_dir: Path) -> dict[str, list[Path]]:
    """stem -> the final outputs of that stem (one listing of ``final_output/``)."""
    found: dict[str, list[Path]] = {}
    try:
        entries = list(os.scandir(output_dir / FINAL))
    except OSError:
        return found
    for entry in entries:
        stem, dot, ext = entry.name.rpartition(".")
        if dot and ext in FINAL_EXTENSIONS and not entry.name.startswith("."):
            found.setdefault(stem, []).append(Path(entry.path))
    return found


def _pick_final(candidates: list[Path], sidecar: Mapping[str, Any] | None) -> Path | None:
    """The photo's final output: the one its sidecar names, else the newest."""
    if not candidates:
        return None
    named = ((sidecar or {}).get("output") or {}).get("file")
    for path in candidates:
        if path.name == named:
            return path
    return max(candidates, key=lambda p: p.stat().st_mtime_ns if p.exists() else 0)


def _changed_fraction(sidecar: Mapping[str, Any] | None) -> float | None:
    value = ((sidecar or {}).get("changes") or {}).get("changed_fraction")
    return float(value) if isinstance(value, (int, float)) else None


def load_index(output_dir: str | Path) -> list[PhotoEntry]:
    """Every photo of the run in ``output_dir``, in name order.

    The photos are those of ``run_summary.json``, plus any of the input manifest it does not
    list (a run still going, or killed before its summary); a photo without a summary entry is
    ``failed`` when a job log names its failure (only read without a summary), ``restored``
    when it has a final output, else ``not run``.
    """
    out = Path(output_dir)
    layout = Layout(str(out))
    summary_photos = read_summary(out).get("photos") or {}
    manifest = read_manifest(out)
    images = manifest.get("images") or {}
    input_dir = manifest.get("input_dir")
    finals = _finals(out)
    stems = sorted(set(summary_photos) | set(images))
    logged: dict[str, list[str]] = {}
    if not summary_photos and (out / "logs").is_dir():
        # no summary (a run still going, or killed): the failures its job logs name
        from oldphoto.summary import failure_reasons

        logged = failure_reasons(out / "logs")
    entries = []
    for index, stem in enumerate(stems):
        info = summary_photos.get(stem) or {}
        sidecar = _read_json(Path(layout.sidecar(stem)))
        final = _pick_final(finals.get(stem, []), sidecar)
        status = info.get("status") or ("failed" if stem in logged else
                                         "restored" if final else "not run")
        if status == "restored" and final is None:
            status = "not run"  # the summary is older than the folder: the final is gone
        original = images.get(stem) or info.get("input")
        if original and not Path(original).is_absolute() and input_dir:
            original = str(Path(input_dir) / Path(original).name)
        entries.append(PhotoEntry(
            index=index, stem=stem, status=status,
            reasons=list(info.get("reasons") or logged.get(stem) or []),
            mode=info.get("mode") or ((sidecar or {}).get("settings") or {}).get("mode"),
            faces=info.get("faces") if isinstance(info.get("faces"), int)
            else ((sidecar or {}).get("changes") or {}).get("faces"),
            changed_fraction=_changed_fraction(sidecar),
            final=final,
            original=Path(original) if original else None,
            triage=info.get("triage") if isinstance(info.get("triage"), dict) else None,
            run_settings=info.get("settings") if isinstance(info.get("settings"), dict) else None,
            from_sheet=list(info.get("from_sheet") or []),
        ))
    return entries


def sidecar(output_dir: str | Path, stem: str) -> dict[str, Any] | None:
    """The photo's provenance sidecar (``provenance/<photo>.json``), None when absent."""
    data = _read_json(Path(Layout(str(output_dir)).sidecar(stem)))
    return data if isinstance(data, dict) else None


def draw_sample(stems: Iterable[str], percent: float, seed: int) -> set[str]:
    """A reproducible random share of the photos: ``ceil(N × percent / 100)`` of them.

    Each photo gets the rank ``sha256("<seed>:<stem>")``; the sample is the photos with the
    smallest ranks.  The same photos, percent and seed always give the same sample (on any
    machine and Python version), and a photo added to the folder never pushes out one that the
    same-sized sample held.
    """
    if not 0 < percent <= 100:
        raise ValueError(f"sample percent must be in (0, 100], not {percent}")
    names = sorted(set(stems))
    size = math.ceil(len(names) * percent / 100)
    ranked = sorted(names, key=lambda s: hashlib.sha256(f"{seed}:{s}".encode(
        "utf-8", "surrogateescape")).hexdigest())
    return set(ranked[:size])


def run_operator(output_dir: str | Path) -> str | None:
    """Who ran the workflow: ``operator`` in ``run_summary.json`` when the run records one, else
    the owner of ``run_summary.json`` (the account whose run wrote it); None without a summary.
    """
    layout = Layout(str(output_dir))
    operator = read_summary(output_dir).get("operator")
    if isinstance(operator, str) and operator:
        return operator
    try:
        import pwd

        return pwd.getpwuid(Path(layout.summary).stat().st_uid).pw_name
    except (OSError, KeyError, ImportError):
        return None
