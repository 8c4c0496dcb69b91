"""The Snakemake report's captions and tables: what ``snakemake --report`` shows beside the views.

The table functions read what a run left behind (``run_summary.json``, the benchmark TSVs) and
return rows whose text is already escaped for reStructuredText, ready for the Jinja templates of
``workflow/report/*.rst``; the landing page's thumbnails are an rst directive registered here.
The images themselves are made by the jobs (:mod:`oldphoto.views`).
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from oldphoto.views import encode_jpeg, fit_width

THUMBNAIL_WIDTH = 360
"""Width (px) of the report's landing-page thumbnails: they are shown at most 8rem (128 CSS px)
high, so a before/after pair is about 180 CSS px wide, 360 device px on a 2x screen."""

THUMBNAIL_QUALITY = 80
"""JPEG quality of the landing-page thumbnails (embedded in the page, at most nine)."""


def thumbnail_data_uri(path: str | Path, max_width: int = THUMBNAIL_WIDTH) -> str:
    """An image file as a ``data:image/jpeg;base64,...`` URI, scaled to at most ``max_width``."""
    import base64

    from PIL import Image

    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"))
    payload = base64.b64encode(encode_jpeg(fit_width(rgb, max_width),
                                           THUMBNAIL_QUALITY)).decode("ascii")
    return f"data:image/jpeg;base64,{payload}"


def thumbnail_grid_html(paths: Sequence[str | Path], columns: int = 3, suffix: str = "",
                        max_width: int = THUMBNAIL_WIDTH) -> str:
    """A grid of embedded thumbnails (HTML), each captioned with its file name minus ``suffix``.

    Every image is inlined as a JPEG data URI (:func:`thumbnail_data_uri`), so the page needs no
    other file; each ``<img>`` has the class ``oldphoto-gallery``.
    """
    import html

    cells = []
    for path in paths:
        name = Path(path).name
        if suffix and name.endswith(suffix):
            name = name[: -len(suffix)]
        label = html.escape(name, quote=True)
        cells.append(
            '<figure style="margin:0">'
            f'<img class="oldphoto-gallery" src="{thumbnail_data_uri(path, max_width)}" '
            f'alt="{label}: before and after" title="{label}" '
            'style="width:100%;max-height:8rem;object-fit:contain;margin:0">'
            f'<figcaption style="margin:0;font-size:0.75rem">{label}</figcaption></figure>'
        )
    return (f'<div class="oldphoto-thumbnails" style="display:grid;gap:0.5rem;'
            f'grid-template-columns:repeat({int(columns)},minmax(0,1fr))">{"".join(cells)}</div>')


def register_thumbnail_directive(max_width: int = THUMBNAIL_WIDTH) -> None:
    """Register the rst directive ``oldphoto-thumbnails`` (idempotent).

    Its content is one percent-encoded image path per line (Jinja's ``urlencode``, so that any
    file name survives rst); it becomes :func:`thumbnail_grid_html` (options ``:columns:`` and
    ``:suffix:``).  The images are inlined, so the report stays self-contained
    when it is moved or mailed: Snakemake's own ``embeddedfigure`` leaves the local path in the
    page (in 9.x its mixin's ``run`` is shadowed by ``Figure.run``).
    """
    from urllib.parse import unquote

    from docutils import nodes
    from docutils.parsers.rst import Directive, directives

    class Thumbnails(Directive):
        has_content = True
        option_spec = {"columns": directives.positive_int, "suffix": directives.unchanged}

        def run(self):
            paths = [unquote(line.strip()) for line in self.content if line.strip()]
            grid = thumbnail_grid_html(paths, self.options.get("columns", 3),
                                       self.options.get("suffix", ""), max_width)
            return [nodes.raw("", grid, format="html")]

    directives.register_directive("oldphoto-thumbnails", Thumbnails)


def halt_on_rst_errors(config_file: str | Path) -> None:
    """Make an error in the report's reStructuredText stop ``snakemake --report`` (idempotent).

    Snakemake renders every caption and the landing page with docutils' defaults, which turn
    markup errors into "System Message: ERROR/3" boxes in the page and a line on the console,
    then print "Report created."  docutils reads its settings from the config files named in
    ``DOCUTILSCONFIG`` (default: ``/etc/docutils.conf``, ``./docutils.conf``, ``~/.docutils``);
    this adds ``config_file`` (``workflow/report/docutils.conf``: ``halt_level: 3``) after them,
    so a user's own settings still apply and an error raises instead: the report command fails
    and names the line.  Warnings (level 2) are still shown, not fatal: Snakemake's own link
    targets warn for a file name that starts with ``_``.
    """
    import os

    from docutils.frontend import OptionParser

    current = os.environ.get("DOCUTILSCONFIG")
    files = (current.split(os.pathsep) if current is not None
             else list(OptionParser.standard_config_files))
    if str(config_file) not in files:
        os.environ["DOCUTILSCONFIG"] = os.pathsep.join(files + [str(config_file)])


# ---------------------------------------------------------------------------------------------
# Tables for the report's captions


_RST_SPECIAL = re.compile(r"([^\w\s]|_)")


def rst_text(value: Any) -> str:
    """``value`` as one line of literal reStructuredText: markup characters backslash-escaped.

    Control characters and newlines become spaces, so a reason can sit in a table cell.
    """
    text = "".join(ch if ch.isprintable() else " " for ch in str(value))
    return _RST_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def runtime_table(benchmark_dir: str | Path) -> list[dict[str, Any]]:
    """Per-rule runtimes aggregated from Snakemake's benchmark files ``<dir>/<rule>/*.tsv``.

    One row per rule, slowest total first: ``rule``, ``jobs``, ``total_s``, ``mean_s``,
    ``max_s`` (wall-clock seconds) and ``max_rss_mb`` (largest resident set of a job, ``None``
    when Snakemake could not measure it, as for jobs shorter than its sampling interval).
    Unreadable or empty files are skipped.
    """
    folder = Path(benchmark_dir)
    rows = []
    for rule_dir in sorted(p for p in folder.glob("*") if p.is_dir()):
        seconds: list[float] = []
        rss: list[float] = []
        for tsv in sorted(rule_dir.glob("*.tsv")):
            try:
                with open(tsv, encoding="utf-8", newline="") as handle:
                    records = list(csv.DictReader(handle, delimiter="\t"))
            except (OSError, UnicodeDecodeError, csv.Error):
                continue
            for record in records:
                wall = _number(record.get("s"))
                if wall is None:
                    continue
                seconds.append(wall)
                peak = _number(record.get("max_rss"))
                if peak is not None:
                    rss.append(peak)
        if seconds:
            rows.append({
                "rule": rule_dir.name,
                "jobs": len(seconds),
                "total_s": round(sum(seconds), 2),
                "mean_s": round(sum(seconds) / len(seconds), 2),
                "max_s": round(max(seconds), 2),
                "max_rss_mb": round(max(rss), 1) if rss else None,
            })
    rows.sort(key=lambda row: (-row["total_s"], row["rule"]))
    return rows


STAGE_RULES = ("detect_scratches", "restore_global", "detect_faces", "detect_and_enhance_faces",
               "enhance_face", "blend_faces")
"""The per-photo rules whose benchmark files :func:`stage_timings` reads, in pipeline order."""


def _benchmark_seconds(tsv: Path) -> float | None:
    try:
        with open(tsv, encoding="utf-8", newline="") as handle:
            records = list(csv.DictReader(handle, delimiter="\t"))
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    values = [v for v in (_number(r.get("s")) for r in records) if v is not None]
    return sum(values) if values else None


def stage_timings(benchmark_dir: str | Path, image: str) -> dict[str, float]:
    """One photo's wall-clock seconds per rule, from Snakemake's benchmark files.

    ``<dir>/<rule>/<image>.tsv`` for each of :data:`STAGE_RULES`; the per-face rule
    ``enhance_face`` sums ``<image>_<k>.tsv`` over the photo's faces.  Rules that did not run
    for the photo (or whose file is unreadable) are left out.
    """
    folder = Path(benchmark_dir)
    timings: dict[str, float] = {}
    for rule in STAGE_RULES:
        if rule == "enhance_face":
            pattern = re.compile(re.escape(image) + r"_\d+\.tsv")
            files = [p for p in (folder / rule).glob("*.tsv") if pattern.fullmatch(p.name)] \
                if (folder / rule).is_dir() else []
        else:
            files = [folder / rule / f"{image}.tsv"]
        seconds = [s for s in (_benchmark_seconds(f) for f in files if f.is_file())
                   if s is not None]
        if seconds:
            timings[rule] = round(sum(seconds), 3)
    return timings


def load_summary(path: str | Path) -> dict[str, Any] | None:
    """``run_summary.json`` as written at the end of a run, or None if absent or unreadable."""
    try:
        with open(path, encoding="utf-8") as handle:
            summary = json.load(handle)
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


def summary_rows(summary: dict[str, Any] | None) -> list[dict[str, str]]:
    """One rst-safe row per photo: ``photo``, ``status``, ``faces``, ``reasons``."""
    rows = []
    for stem, entry in sorted(((summary or {}).get("photos") or {}).items()):
        faces = entry.get("faces")
        rows.append({
            "photo": rst_text(stem),
            "status": rst_text(entry.get("status", "unknown")),
            "faces": "" if faces is None else str(faces),
            "reasons": rst_text("; ".join(entry.get("reasons", []))),
        })
    return rows


def _yes_no(value: Any) -> str:
    return "yes" if value is True else "no" if value is False else str(value)


def _scratch_cell(given: Any, triage: Mapping[str, Any] | None, decided: bool) -> str:
    """``with_scratch`` as given, and for ``auto`` the triage's decision: ``auto → yes``."""
    if given != "auto":
        return _yes_no(given)
    if not decided:
        return "auto → not decided yet"
    if not isinstance(triage, Mapping) or "with_scratch" not in triage:
        return "auto → decision unreadable"
    return f"auto → {_yes_no(bool(triage['with_scratch']))}"


def _triage_cell(triage: Any) -> str:
    """The triage's one-sentence reason (it states the figures and thresholds that decided), or
    its figures when a record has no reason."""
    if not isinstance(triage, Mapping):
        return ""
    if triage.get("reason"):
        return str(triage["reason"])
    figures = []
    for key, shown in (("line_score", "line score {:.3f}"), ("coverage", "coverage {:.2%}"),
                       ("components", "{} component(s)")):
        value = triage.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            figures.append(shown.format(value))
    return ", ".join(figures)


def _faces_cell(settings: Mapping[str, Any]) -> str:
    """Face enhancement and the detector's options: ``yes: hog, upsample 1, at most 3``."""
    if not settings.get("faces", True):
        return "no"
    options = [str(settings.get("face_detector", "hog")),
               f"upsample {int(settings.get('face_upsample') or 0)}"]
    if settings.get("only_center_face"):
        options.append("centre face only")
    max_faces = settings.get("max_faces")
    options.append("every face" if max_faces is None else f"at most {int(max_faces)}")
    return "yes: " + ", ".join(options)


def _output_cell(settings: Mapping[str, Any], source: str | Path | None) -> str:
    """The output format as set, the file extension it gives, and the JPEG quality if used."""
    from oldphoto.layout import final_extension

    output_format = str(settings.get("output_format", "png"))
    text = output_format
    try:
        extension = final_extension(output_format, source or "")
    except (KeyError, ValueError):
        return text
    if output_format == "same":
        text += f" (.{extension})"
    if extension == "jpg":
        text += f", quality {settings.get('jpeg_quality', 95)}"
    return text


def settings_rows(summary: Mapping[str, Any] | None) -> list[dict[str, str]]:
    """One rst-safe row per photo whose effective settings the summary records.

    ``photo``; ``mode`` (the path it was restored in, after the triage); ``with_scratch`` as
    given, with the triage's decision for ``auto`` (``auto → yes``); ``triage`` (its reason,
    which states its figures); ``faces`` (with the detector's options); ``blending``; ``output`` (format, the
    extension of ``same``, the JPEG quality when it is a JPEG); ``tone``; ``from_sheet`` (the
    settings the photo's sheet row set, ``—`` when none: every value is the run's).
    """
    rows = []
    for stem, entry in sorted(((summary or {}).get("photos") or {}).items()):
        settings = entry.get("settings")
        if not isinstance(settings, Mapping):
            continue
        decided = "triage" in entry
        rows.append({key: rst_text(value) for key, value in {
            "photo": stem,
            "mode": entry.get("mode", ""),
            "with_scratch": _scratch_cell(settings.get("with_scratch"), entry.get("triage"),
                                          decided),
            "triage": _triage_cell(entry.get("triage")),
            "faces": _faces_cell(settings),
            "blending": settings.get("face_blending", ""),
            "output": _output_cell(settings, entry.get("input")),
            "tone": settings.get("tone", ""),
            "from_sheet": (", ".join(entry["from_sheet"]) or "—") if "from_sheet" in entry
                          else "",
        }.items()})
    return rows


MODE_ORDER = ("quality", "quality+hr", "scratch", "scratch+hr")


def modes_sentence(summary: Mapping[str, Any] | None) -> str:
    """The paths the photos took, counted, as rst text: ``9 quality, 3 scratch (2 of them
    chosen by the scratch triage)``; photos set to ``auto`` whose triage has not decided (they
    failed before it) are counted apart, not given a path."""
    counts: dict[str, int] = {}
    by_triage = undecided = 0
    for entry in ((summary or {}).get("photos") or {}).values():
        settings = entry.get("settings") if isinstance(entry.get("settings"), Mapping) else {}
        if settings.get("with_scratch") == "auto":
            triage = entry.get("triage")
            if not isinstance(triage, Mapping) or "with_scratch" not in triage:
                undecided += 1
                continue
            by_triage += 1
        mode = entry.get("mode")
        if mode:
            counts[str(mode)] = counts.get(str(mode), 0) + 1
    order = list(MODE_ORDER) + sorted(set(counts) - set(MODE_ORDER))
    parts = [f"{counts[mode]} {mode}" for mode in order if counts.get(mode)]
    text = ", ".join(parts) or "none recorded"
    if by_triage:
        text += f" ({by_triage} of them chosen by the scratch triage, with_scratch: auto)"
    if undecided:
        text += f"; {undecided} set to auto and not decided (the photo failed before the triage)"
    return rst_text(text)


def report_tables(summary_path: str | Path, benchmark_dir: str | Path) -> dict[str, Any]:
    """Everything the run-summary caption and the landing page show, computed when the report
    is built."""
    summary = load_summary(summary_path)
    counts = (summary or {}).get("counts", {})
    return {
        "found": summary is not None,
        "modes": modes_sentence(summary),
        "backend": rst_text((summary or {}).get("backend", "unknown")),
        "finished": rst_text((summary or {}).get("finished", "unknown")),
        "counts": {key: int(value) for key, value in counts.items()},
        "photos": summary_rows(summary),
        "settings": settings_rows(summary),
        "skipped": [{"path": rst_text(item.get("path", "")),
                     "reason": rst_text(item.get("reason", ""))}
                    for item in (summary or {}).get("skipped", [])],
        "runtimes": runtime_table(benchmark_dir),
    }


def finished_photos(stems: Iterable[str], final_dir: str | Path,
                    extensions: Mapping[str, str] | None = None) -> list[str]:
    """The photos whose final output exists (what a report can show), sorted.

    ``extensions``: stem -> extension of its final output (``output_format``; default png).
    """
    folder = Path(final_dir)
    extensions = extensions or {}
    return sorted(stem for stem in stems
                  if (folder / f"{stem}.{extensions.get(stem, 'png')}").is_file())
