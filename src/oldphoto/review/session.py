"""One review of one output folder: the photo index, the record, the run's settings and the
sample together, and the rules that join them.

* A photo's **review status** is ``failed`` (the run failed it or did not run it: it has no
  final output), ``pending`` (restored, no decision in force), ``accepted`` or ``rejected``.
  A decision stays in force only while the photo's final output is the one it judged (same
  sha256): a rerun that replaced the final makes the photo ``pending`` again
  (:meth:`Review.status`).
* A rejected photo is **due for a rerun** when its effective settings now (config + sheet
  row) differ from the settings in force when it was judged; one rejected without new settings
  stays rejected: the same settings give the same result (docs/review.md).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from oldphoto.hashing import sha256_file
from oldphoto.layout import final_extension
from oldphoto.review.folder import (DB_NAME, PhotoEntry, draw_sample, load_index, read_summary,
                                    run_operator, sidecar)
from oldphoto.review.settings import RunContext, photo_settings, run_context
from oldphoto.review.store import Decision, ReviewStore
from oldphoto.sheet import SETTINGS

STATUSES = ("pending", "accepted", "rejected", "failed")


@dataclass(frozen=True)
class Sample:
    """A reproducible random share of the photos (:func:`oldphoto.review.folder.draw_sample`)."""

    percent: float
    seed: int
    population: int
    photos: frozenset[str]

    def describe(self) -> str:
        return (f"{self.percent:g}% of {self.population} photos = {len(self.photos)} photos, "
                f"seed {self.seed} (oldphoto review --sample {self.percent:g} --seed "
                f"{self.seed})")


class FinalChanged(Exception):
    """The final output changed since the reviewer loaded it (a rerun replaced it)."""


class Review:
    """The review of ``output_dir`` by ``reviewer``.

    Args:
        output_dir: the run's output folder.
        reviewer: who decides (recorded with every decision).
        context: the run's configuration and sheet (default :func:`run_context` of the folder).
        sample: restrict the review to a sample (``(percent, seed)``); None reviews every photo.
        record_sample: record the sample in the record (a review starts; an export does not).
    """

    def __init__(self, output_dir: str | Path, reviewer: str, *,
                 context: RunContext | None = None,
                 sample: tuple[float, int] | None = None, record_sample: bool = True) -> None:
        self.output_dir = Path(output_dir).resolve()
        self.reviewer = reviewer
        self.summary = read_summary(self.output_dir)
        self.context = context or run_context(self.output_dir, summary=self.summary)
        self.store = ReviewStore(self.output_dir / DB_NAME)
        self.operator = run_operator(self.output_dir)
        self._hashes: dict[str, tuple[int, int, str]] = {}
        self._lock = threading.RLock()
        self.entries: list[PhotoEntry] = []
        self.by_stem: dict[str, PhotoEntry] = {}
        self.decisions: dict[str, Decision] = {}
        self.sample: Sample | None = None
        self.refresh()
        if sample is not None:
            percent, seed = sample
            stems = [e.stem for e in self.entries]
            self.sample = Sample(percent, seed, len(stems),
                                 frozenset(draw_sample(stems, percent, seed)))
            if record_sample:
                self.store.record_sample(percent=percent, seed=seed, population=len(stems),
                                         size=len(self.sample.photos), reviewer=reviewer)

    # -- the folder ---------------------------------------------------------------------------
    def refresh(self) -> None:
        """Read the folder again (after a rerun): index, summary, current decisions."""
        with self._lock:
            self.summary = read_summary(self.output_dir)
            self.entries = load_index(self.output_dir)
            self.by_stem = {entry.stem: entry for entry in self.entries}
            self.decisions = self.store.current()

    @property
    def operator_is_reviewer(self) -> bool:
        """True when the reviewer is the account that ran the workflow (archives ask for a
        second person)."""
        return bool(self.operator) and self.operator == self.reviewer

    def in_scope(self, entry: PhotoEntry) -> bool:
        """Whether the photo is reviewed: every photo, or the sample's."""
        return self.sample is None or entry.stem in self.sample.photos

    def sha256(self, path: Path) -> str:
        """sha256 of a file, cached by (size, mtime)."""
        stat = path.stat()
        key = str(path)
        cached = self._hashes.get(key)
        if cached and cached[:2] == (stat.st_size, stat.st_mtime_ns):
            return cached[2]
        digest = sha256_file(path)
        self._hashes[key] = (stat.st_size, stat.st_mtime_ns, digest)
        return digest

    def final_version(self, entry: PhotoEntry) -> str | None:
        """``<size>-<mtime_ns>`` of the final output (what the page shows; None without one)."""
        if entry.final is None:
            return None
        try:
            stat = entry.final.stat()
        except OSError:
            return None
        return f"{stat.st_size}-{stat.st_mtime_ns}"

    def decision_in_force(self, entry: PhotoEntry) -> Decision | None:
        """The photo's current decision if it judged the final output the folder holds now."""
        decision = self.decisions.get(entry.stem)
        if decision is None or entry.final is None:
            return None
        try:
            stat = entry.final.stat()
        except OSError:
            return None
        if (decision.derivative == entry.final.name and decision.derivative_size == stat.st_size
                and decision.derivative_mtime_ns == stat.st_mtime_ns):
            return decision
        return decision if self.sha256(entry.final) == decision.derivative_sha256 else None

    def status(self, entry: PhotoEntry) -> str:
        """``failed``, ``pending``, ``accepted`` or ``rejected`` (module docstring)."""
        if entry.status != "restored" or entry.final is None:
            return "failed"
        decision = self.decision_in_force(entry)
        return decision.action if decision else "pending"

    def settings(self, entry: PhotoEntry) -> dict[str, Any]:
        """The photo's effective settings (:func:`oldphoto.review.settings.photo_settings`)."""
        return dict(photo_settings(self.context, entry.stem, self.summary.get("photos")))

    # -- lists ----------------------------------------------------------------------------------
    def select(self, *, status: str = "all", mode: str = "any", faces: bool = False,
               order: str = "name") -> list[PhotoEntry]:
        """The photos a filter shows, in order (``name``, or ``changed``: most changed first).

        ``status`` ``failed`` lists every failed photo of the folder (also outside a sample);
        the other statuses list the photos under review."""
        chosen = []
        for entry in self.entries:
            current = self.status(entry)
            if status == "failed":
                if current != "failed":
                    continue
            elif not self.in_scope(entry) or (status != "all" and current != status):
                continue
            if mode != "any" and entry.mode != mode:
                continue
            if faces and not entry.faces:
                continue
            chosen.append(entry)
        if order == "changed":
            chosen.sort(key=lambda e: (-(e.changed_fraction or 0.0), e.index))
        return chosen

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for entry in self.entries:
            current = self.status(entry)
            if current == "failed" or self.in_scope(entry):
                counts[current] += 1
        counts["in_review"] = sum(1 for e in self.entries if self.in_scope(e))
        return counts

    def modes(self) -> list[str]:
        return sorted({e.mode for e in self.entries if e.mode})

    # -- decisions ------------------------------------------------------------------------------
    def decide(self, entry: PhotoEntry, action: str, *, reason: str | None = None,
               note: str | None = None, seen_version: str | None = None,
               new_row: Mapping[str, Any] | None = None) -> Decision:
        """Record ``action`` (``accepted``/``rejected``) on the photo's current final output.

        ``seen_version`` is the :meth:`final_version` the reviewer looked at: when the final
        changed since, :class:`FinalChanged` is raised and nothing is recorded.  ``new_row``
        (rejections) is the photo's new sheet row, written to the run's photo sheet before the
        decision is recorded (validated; other rows untouched; atomic).
        """
        from oldphoto.archival.provenance import software_agent
        from oldphoto.errors import ConfigError
        from oldphoto.sheet import sheet_cell, write_sheet_row

        with self._lock:
            if entry.final is None or entry.status != "restored":
                raise ValueError(f"{entry.stem}: no final output to judge (the run failed it)")
            if seen_version is not None and seen_version != self.final_version(entry):
                raise FinalChanged(entry.stem)
            stat = entry.final.stat()
            digest = self.sha256(entry.final)
            settings = self.settings(entry)
            changed: dict[str, Any] | None = None
            if action == "rejected" and new_row is not None:
                row = {k: sheet_cell(k, v) for k, v in new_row.items()}
                row = {k: v for k, v in row.items() if v}
                current_row = {k: sheet_cell(k, v) for k, v in
                               self.context.sheet_rows().get(entry.stem, {}).items()}
                if row != {k: v for k, v in current_row.items() if v}:
                    if self.context.sheet is None:
                        raise ConfigError(None, self.context.sheet_problem or
                                          "no photo sheet can be written for this run")
                    source = self.context.images.get(entry.stem) or entry.original
                    if source is None:
                        raise ConfigError(None, f"{entry.stem}: the original's file name is "
                                                "unknown (no input manifest)")
                    write_sheet_row(self.context.sheet, source.name, row)
                    changed = row
            side = sidecar(self.output_dir, entry.stem) or {}
            master = side.get("source") or {}
            decision = self.store.record(
                photo=entry.stem, action=action, reviewer=self.reviewer, reason=reason,
                note=note, derivative=entry.final.name, derivative_sha256=digest,
                derivative_size=stat.st_size, derivative_mtime_ns=stat.st_mtime_ns,
                master=master.get("file_name") or (entry.original.name if entry.original
                                                   else None),
                master_sha256=master.get("sha256"), settings=settings, new_settings=changed,
                software=software_agent())
            self.decisions[entry.stem] = decision
            return decision

    def undo(self) -> Decision | None:
        """Take back this reviewer's latest decision in force; returns it."""
        with self._lock:
            undone = self.store.undo_last(self.reviewer)
            self.decisions = self.store.current()
            return undone

    # -- reruns ---------------------------------------------------------------------------------
    def due_for_rerun(self) -> list[PhotoEntry]:
        """Rejected photos whose effective settings differ from those they were judged with."""
        due = []
        for entry in self.entries:
            if self.status(entry) != "rejected":
                continue
            judged = self.decisions[entry.stem].settings
            now = self.settings(entry)
            if any(judged.get(key) != now.get(key) for key in SETTINGS):
                due.append(entry)
        return due

    def rejected_without_new_settings(self) -> list[PhotoEntry]:
        due = {e.stem for e in self.due_for_rerun()}
        return [e for e in self.entries
                if self.status(e) == "rejected" and e.stem not in due]

    def rerun_targets(self, entries: Iterable[PhotoEntry]) -> list[str]:
        """The final outputs (as the workflow names them) that rerun these photos."""
        output_dir = str(self.context.config.get("output_dir") or self.output_dir)
        out = Path(output_dir)
        if not out.is_absolute():
            out = self.context.workdir / out
        targets = []
        for entry in entries:
            settings = self.settings(entry)
            source = self.context.images.get(entry.stem) or entry.original or Path(entry.stem)
            ext = final_extension(settings.get("output_format", "png"), source)
            targets.append(str(out / "final_output" / f"{entry.stem}.{ext}"))
        return targets
