"""What a run prints on the console: the news, one line per photo, not every job's details.

Snakemake logs each job as a block of ten lines (rule, files, log, reasons, resources), its
shell line with ``--printshellcmds``, a progress line and, for a failed job, an error block, a
``CalledProcessError`` and a closing ``WorkflowError``.  For a photo that failed for a reason
the run summary states (``FAILED <photo>: <reason>``) that is noise, and at archive scale it
buries the news.  :class:`RunConsole` sits on Snakemake's logger (installed by the Snakefile,
``workflow/rules/common.smk``) and, on the console only, shows instead:

* one line per photo when its last job ends: ``oldphoto: [3/12] scan 03.tif restored`` or
  ``oldphoto: [4/12] broken.png failed (restore_global)`` — the reason follows in the summary;
* Snakemake's own lines that are not about single photos (the job table, errors of other
  rules such as a checkpoint conversion, ``Complete log(s): ...``).

Snakemake's log file under ``.snakemake/log/`` keeps everything.  With ``--printshellcmds``
(``snakemake -p``, ``oldphoto --verbose``) or ``--verbose`` nothing is hidden.  A dry run is
shown as Snakemake prints it (listing the jobs is what it is for).

The console also notices what Snakemake has no hook for: "Nothing to be done" (every photo is up
to date: the run summary is rewritten and says so, :func:`oldphoto.summary.finish_run`) and the
start of a dry run's plan (the opening line and the skipped files, :func:`oldphoto.summary.
announce`).  Records are matched by Snakemake's log events (``snakemake_interface_logger_plugins
.common.LogEvent``, compared by value) and, for a few lines without an event (the scheduler's
rounds, the report's "Adding <file> (<size>)." per file), by their text.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Mapping, TextIO

FINAL_RULES = frozenset({"blend_faces", "blend_faces_tif", "blend_faces_jpg"})
"""The last job of every photo: stage 4, one rule per extension of the final output
(``workflow/rules/stage4.smk``)."""

IMAGE_RULES = frozenset({"detect_scratches", "triage_scratches", "restore_global",
                         "detect_faces", "detect_and_enhance_faces", "enhance_face"}) | FINAL_RULES
"""The per-photo rules: a failure of one of them is the photo's, and the run summary names it
with its reason (or, for a job killed without one, says so)."""

QUIET_ENV = "OLDPHOTO_CONSOLE"
"""``quiet``: a job does not repeat its ``FAILED`` line on stderr (:mod:`oldphoto.jobs.entry`)."""

INTERRUPTED = "Terminating processes on user request"
"""The start of Snakemake's line on Ctrl-C (SIGINT): the jobs it stops then end in errors."""

NOTHING_TO_BE_DONE = "Nothing to be done (all requested files are present and up to date)."
"""Snakemake's line when every target is up to date (``snakemake.common.NOTHING_TO_BE_DONE_MSG``)."""

_SCHEDULER_CHATTER = re.compile(r"Select jobs to execute\.\.\.|Execute \d+ jobs?\.\.\."
                                r"|DAG of jobs will be updated after completion\."
                                r"|Adding .+ \([\d.]+ [KMGT]?B\)\.")  # the last: --report, per file
_JOB_COMMAND = re.compile(r"-m oldphoto\.jobs \S+ rule=(\w+)")
_JOB_FAILED = ("Exiting because a job execution failed. Look above for error messages",
               "At least one job did not complete successfully.")
_HIDDEN_EVENTS = {"workflow_started", "job_info", "group_info", "shellcmd", "job_finished",
                  "progress", "resources_info"}


def _event(record: logging.LogRecord) -> str | None:
    event = getattr(record, "event", None)
    return None if event is None else str(getattr(event, "value", event))


class RunConsole:
    """Snakemake's console output for a run of ``photos`` (stem -> input file).

    Args:
        photos: the run's photos, stem -> input file (the progress lines name the file).
        is_dry_run: whether this is a dry run; asked when the first record arrives (Snakemake
            knows it only once it executes, after the Snakefile was read).
        on_nothing_to_do: called once, with ``is_dry_run()``, when Snakemake finds every
            target up to date.
        on_dry_run: called once when a dry run starts listing its plan.
        verbose: show everything Snakemake prints (``--printshellcmds``, ``--verbose``).
        progress: print the per-photo lines (not with ``--quiet progress`` or ``--quiet all``:
            :func:`progress_wanted`).
        stream: where the per-photo lines go (Snakemake's console is stderr).
    """

    def __init__(self, photos: Mapping[str, str | Path], *, is_dry_run: Callable[[], bool],
                 on_nothing_to_do: Callable[[bool], None], on_dry_run: Callable[[], None],
                 verbose: bool = False, progress: bool = True,
                 stream: TextIO | None = None) -> None:
        self.photos = photos
        self.is_dry_run = is_dry_run
        self.on_nothing_to_do = on_nothing_to_do
        self.on_dry_run = on_dry_run
        self.verbose = verbose
        self.progress = progress
        self.stream = stream
        self.jobs: dict[int, tuple[str, str | None]] = {}  # jobid -> (rule, photo)
        self.to_finish: int | None = None  # photos whose last job is in this run's DAG
        self.finished = 0
        self.failed_photos: set[str] = set()
        self.hidden_errors = 0  # job failures of photos (their reasons are in the summary)
        self.shown_errors = 0  # job failures of other rules: Snakemake's report stays
        self.interrupted = False  # Ctrl-C: the jobs Snakemake stops are not photos that failed
        self._planned = False
        self._nothing = False
        self._lock = threading.Lock()  # Snakemake logs from its scheduler and job threads

    # -- what happens -----------------------------------------------------------------------
    def _line(self, text: str) -> None:
        print(f"oldphoto: {text}", file=self.stream or sys.stderr, flush=True)

    def _progress(self, photo: str, outcome: str) -> None:
        name = Path(self.photos[photo]).name if photo in self.photos else photo
        total = self.to_finish if self.to_finish else "?"
        with self._lock:
            self.finished += 1
            self._line(f"[{self.finished}/{total}] {name} {outcome}")

    def _shows_progress(self) -> bool:
        """One line per photo, instead of Snakemake's job blocks (not when those are shown)."""
        return self.progress and not (self.verbose or self.is_dry_run())

    def observe(self, record: logging.LogRecord) -> bool:
        """Logger-level filter: notes jobs and outcomes, runs the hooks; never drops a record."""
        event = _event(record)
        if event == "job_info":
            wildcards = getattr(record, "wildcards", None) or {}
            self.jobs[getattr(record, "jobid", -1)] = (getattr(record, "rule_name", ""),
                                                       wildcards.get("image"))
        elif event == "run_info" and self.to_finish is None:
            stats = getattr(record, "stats", None) or {}
            self.to_finish = sum(int(stats.get(rule, 0)) for rule in FINAL_RULES)
            if self.is_dry_run() and not self._planned:
                self._planned = True
                self.on_dry_run()
        elif event == "job_finished":
            rule, photo = self.jobs.pop(getattr(record, "job_id", -1), ("", None))
            if rule in FINAL_RULES and photo is not None and self._shows_progress():
                self._progress(photo, "restored")
        elif event == "job_error":
            rule = getattr(record, "rule_name", "")
            photo = self.jobs.get(getattr(record, "jobid", -1), ("", None))[1]
            if rule in IMAGE_RULES:
                self.hidden_errors += 1
                if photo is not None and photo not in self.failed_photos:
                    self.failed_photos.add(photo)
                    if self._shows_progress() and not self.interrupted:
                        self._progress(photo, f"failed ({rule})")
            else:
                self.shown_errors += 1
        elif record.getMessage().startswith(INTERRUPTED):
            self.interrupted = True
        elif record.getMessage() == NOTHING_TO_BE_DONE and not self._nothing:
            self._nothing = True
            dry = self.is_dry_run()
            if dry and not self._planned:
                self._planned = True
                self.on_dry_run()
            self.on_nothing_to_do(dry)
        return True

    def quiet(self, record: logging.LogRecord) -> bool:
        """Console-handler filter: False for the records the quiet console does not show."""
        if self.verbose or self.is_dry_run():
            return True
        event = _event(record)
        if event in _HIDDEN_EVENTS:
            return False
        if event == "job_error":
            return getattr(record, "rule_name", "") not in IMAGE_RULES
        message = record.getMessage()
        if event == "error" and getattr(record, "exception", "") == "RuleException":
            match = _JOB_COMMAND.search(message)
            return not (match and match.group(1) in IMAGE_RULES)
        if _SCHEDULER_CHATTER.fullmatch(message.strip()):
            return False
        if ((self.hidden_errors or self.interrupted) and not self.shown_errors
                and any(text in message for text in _JOB_FAILED)):
            # every failure is a photo's, named with its reason in the summary, or Ctrl-C
            # stopped the run and the summary lists what did not run
            return False
        return True

    def install(self, logger: logging.Logger) -> None:
        """Attach to Snakemake's logger: :meth:`observe` on the logger (every record), and
        :meth:`quiet` on its console handler only (the log file keeps everything).  Unless
        verbose, the run's jobs are told (:data:`QUIET_ENV`, inherited through the environment)
        not to repeat their ``FAILED`` line on the console: it is in their log, and the summary
        names the photo with the reason."""
        logger.addFilter(self.observe)
        for handler in logger.handlers:
            if handler.name == "DefaultStreamHandler":
                handler.addFilter(self.quiet)
        if not self.verbose:
            os.environ[QUIET_ENV] = "quiet"


def progress_wanted(output_settings: Any) -> bool:
    """Whether Snakemake's progress is wanted: not with ``--quiet progress`` or ``--quiet all``."""
    quiet = {str(getattr(q, "name", q)).upper() for q in getattr(output_settings, "quiet", None)
             or ()}
    return not quiet & {"PROGRESS", "ALL"}


def verbose_output(output_settings: Any) -> bool:
    """Whether Snakemake was asked to show everything: ``--printshellcmds`` or ``--verbose``."""
    return bool(getattr(output_settings, "printshellcmds", False)
                or getattr(output_settings, "verbose", False))
