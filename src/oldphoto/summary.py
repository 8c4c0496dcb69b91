"""The end of a run: what happened to every photo, as ``run_summary.json`` and one line.

Called from the Snakefile's ``onsuccess``/``onerror`` (once per run, in the main process).  Each
job's log says how it ended — ``] done``, a ``FAILED <rule> <image> :: <reason>`` line, or
nothing (killed) — and whether it was retried after its worker died (a ``RETRIED`` line), and
the final outputs say which photos are finished.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

from oldphoto import __version__
from oldphoto.archival.settings import path_taken
from oldphoto.console import IMAGE_RULES
from oldphoto.jobs.protocol import FAILED_PREFIX, read_outcome_line, run_key
from oldphoto.layout import SUMMARY_NAME, Layout, final_extension
from oldphoto.plan.backend import backend_label
from oldphoto.plan.run import face_count
from oldphoto.plan.settings import configured_mode, triage_decides


def mode_counts(config: Mapping[str, Any], photos: Iterable[str],
                settings: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, int]:
    """How many photos are set to each path: ``quality``, ``scratch`` (``+hr`` for HR), and
    ``auto`` for ``with_scratch: auto`` — those take the quality or the scratch path as the
    scratch triage decides, later in the run."""
    counts: dict[str, int] = {}
    for stem in photos:
        photo = (settings or {}).get(stem) or config
        hr = "+hr" if photo["hr"] else ""
        key = "auto" + hr if triage_decides(photo) else configured_mode(photo).key
        counts[key] = counts.get(key, 0) + 1
    return counts


def describe_modes(counts: Mapping[str, int]) -> str:
    """``10 quality, 1 scratch, 2 auto (the scratch triage decides)``; ``no photos``."""
    order = ("quality", "quality+hr", "scratch", "scratch+hr", "auto", "auto+hr")
    parts = [f"{counts[key]} {key}" for key in order if counts.get(key)]
    parts += [f"{n} {key}" for key, n in sorted(counts.items()) if key not in order and n]
    if any(key.startswith("auto") for key in counts):
        parts[-1] += " (the scratch triage decides: quality or scratch path)"
    return ", ".join(parts) or "no photos"


def announce(config: Mapping[str, Any], backend: Mapping[str, str], inputs,
             settings: Mapping[str, Mapping[str, Any]] | None = None, *,
             banner: bool = True) -> None:
    """The run's first lines: how many photos, where, set to which path, which backend; the
    backend's announcement (``banner``: a real run, once); every skipped file with its reason.

    ``settings``: each photo's effective settings
    (:func:`oldphoto.plan.settings.photo_settings`); without them every photo has the run's.
    """
    described = describe_modes(mode_counts(config, inputs.images, settings))
    print(
        f"oldphoto {__version__}: {len(inputs.images)} photo(s) from {config['input_dir']} -> "
        f"{config['output_dir']} ({described}; backend {backend_label(backend)})",
        file=sys.stderr,
    )
    for note in getattr(backend, "notes", ()) if banner else ():
        print(note, file=sys.stderr)
    for path, reason in inputs.skipped:
        print(f"oldphoto: skipped {display_path(path)}: {reason}", file=sys.stderr)


def install_console(workflow: Any, config: Mapping[str, Any], plan: Any) -> None:
    """The console of a run's main process (:mod:`oldphoto.console`): one line per photo instead
    of Snakemake's job blocks, no error block for a photo whose reason the summary states, the
    dry run's opening and skipped files, and a summary that says so when everything is up to
    date.  ``workflow``: the Snakefile's; ``plan``: its :class:`~oldphoto.plan.RunPlan`.
    Nothing in a cluster job or a job's own Snakemake process."""
    if workflow.remote_exec or workflow.subprocess_exec:
        return
    from snakemake.logging import logger

    from oldphoto import console

    console.RunConsole(
        plan.inputs.images,
        is_dry_run=lambda: workflow.dryrun,
        on_nothing_to_do=lambda dry: finish_run(config, plan.inputs, plan.backend, ok=True,
                                                settings=plan.settings, up_to_date=True,
                                                write=not dry),
        on_dry_run=lambda: announce(config, plan.backend, plan.inputs, plan.settings,
                                    banner=False),
        verbose=console.verbose_output(workflow.output_settings),
        progress=console.progress_wanted(workflow.output_settings),
    ).install(logger)


def failure_reasons(log_dir: Path) -> dict[str, list[str]]:
    """image stem -> the one-line failure reasons its jobs wrote to their logs."""
    reasons: dict[str, list[str]] = {}
    if not log_dir.is_dir():
        return reasons
    for log in sorted(log_dir.glob("*/*.log")):
        try:
            lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            outcome = read_outcome_line(line)  # FAILED <rule> <image> :: <reason>
            if outcome is not None and outcome[0] == "FAILED":
                reasons.setdefault(outcome[2], []).append(outcome[3])
    return reasons


def retried_jobs(log_dir: Path, since: float) -> dict[str, list[str]]:
    """image stem -> why each of its jobs written since ``since`` (this run) was retried: the
    ``RETRIED <rule> <image> :: <reason>`` lines (:func:`oldphoto.jobs.protocol.retried_line`)
    a job writes when its warm worker died under it and it ran again."""
    retried: dict[str, list[str]] = {}
    if not log_dir.is_dir():
        return retried
    for log in sorted(log_dir.glob("*/*.log")):
        try:
            if log.stat().st_mtime < since:
                continue
            lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            outcome = read_outcome_line(line)
            if outcome is not None and outcome[0] == "RETRIED":
                _, rule, image, reason = outcome
                retried.setdefault(image, []).append(f"{rule}: {reason}")
    return retried


def unfinished_jobs(log_dir: Path) -> dict[str, list[str]]:
    """image stem -> a reason for each job log that ends neither in "done" nor in a FAILED line.

    Such a job was killed (SIGKILL, the kernel's OOM killer, a cluster's memory or time limit)
    or its interpreter died: it could not write a reason itself.
    """
    reasons: dict[str, list[str]] = {}
    if not log_dir.is_dir():
        return reasons
    for log in sorted(log_dir.glob("*/*.log")):
        rule = log.parent.name
        if rule not in IMAGE_RULES:
            continue
        try:
            lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        if any(line.startswith(FAILED_PREFIX) or line.endswith("] done") for line in lines):
            continue
        stem = re.sub(r"_\d+$", "", log.stem) if rule == "enhance_face" else log.stem
        reasons.setdefault(stem, []).append(
            f"{rule} job ended without finishing or reporting an error (killed by a signal, "
            f"e.g. out of memory or a time limit); see {display_path(log)}"
        )
    return reasons


_LOADED_AT = time.time()  # this Snakemake process loaded the workflow: its jobs start later


def remove_stale_temp_files(output_dir: Path, older_than: float) -> list[Path]:
    """Remove the ``.tmp-*`` files of atomic writes interrupted before ``older_than``.

    A job killed while writing leaves its temporary file (never a partial file under a final
    name).  Called when every job of this run has ended; only files last written before this
    run started are removed, so a concurrent writer's temporary file is never touched.
    """
    from oldphoto.atomic import TEMP_PREFIX

    removed = []
    if not output_dir.is_dir():
        return removed
    for path in output_dir.rglob(f"{TEMP_PREFIX}*"):
        try:
            if path.is_file() and path.stat().st_mtime < older_than:
                path.unlink()
                removed.append(path)
        except OSError:
            continue
    return removed


def display_path(path: str | Path) -> str:
    """``path`` as valid UTF-8 text: undecodable bytes (surrogate escapes) become ``\\xNN``."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def summarize(config: Mapping[str, Any], inputs, backend: Mapping[str, str],
              settings: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    layout = Layout(config["output_dir"])
    out = Path(config["output_dir"])
    failures = failure_reasons(out / "logs")
    unfinished = unfinished_jobs(out / "logs")
    # file systems with coarse timestamps: a log of this run may look up to 1 s older
    retried = retried_jobs(out / "logs", since=_LOADED_AT - 1.0)
    photos: dict[str, Any] = {}
    for stem, source in sorted(inputs.images.items()):
        entry: dict[str, Any] = {"input": display_path(source)}
        photo = (settings or {}).get(stem)
        if photo is not None:
            # the photo's effective settings (its sheet row, else the run's), which of them its
            # sheet row set, and its decisions
            entry["settings"] = dict(photo)
            entry["from_sheet"] = sorted(getattr(photo, "from_sheet", ()))
            entry["mode"] = configured_mode(photo).key
        triage = Path(layout.triage(stem))
        if triage.is_file():
            try:
                entry["triage"] = json.loads(triage.read_text(encoding="utf-8"))
                if "mode" in entry:
                    entry["mode"] = path_taken(configured_mode(settings[stem]),
                                               entry["triage"]).key
            except (OSError, ValueError, KeyError):
                entry["triage"] = None
        record = Path(layout.faces_record(stem))
        if record.is_file():
            try:
                entry["faces"] = face_count(record)
            except (OSError, ValueError, KeyError):
                entry["faces"] = None
        output_format = (photo or config).get("output_format", "png")
        final = layout.final(stem, final_extension(output_format, source))
        if Path(final).is_file() and stem not in failures:
            entry["status"] = "restored"
        elif stem in failures:
            entry["status"] = "failed"
            entry["reasons"] = failures[stem]
        elif stem in unfinished:
            entry["status"] = "failed"
            entry["reasons"] = unfinished[stem]
        else:
            entry["status"] = "not run"
        if stem in retried:
            entry["retried"] = retried[stem]
        photos[stem] = entry
    counts = {
        "restored": sum(p["status"] == "restored" for p in photos.values()),
        "with_faces_enhanced": sum(
            p["status"] == "restored" and (p.get("faces") or 0) > 0 for p in photos.values()
        ),
        "failed": sum(p["status"] == "failed" for p in photos.values()),
        "not_run": sum(p["status"] == "not run" for p in photos.values()),
        "skipped": len(inputs.skipped),
        "retried": sum("retried" in p for p in photos.values()),
    }
    return {
        "version": __version__,
        "backend": backend_label(backend),
        "backends": dict(backend),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "counts": counts,
        "photos": photos,
        "skipped": [{"path": display_path(p), "reason": r} for p, r in inputs.skipped],
    }


def summary_line(summary: Mapping[str, Any]) -> str:
    c = {key: summary["counts"].get(key, 0)
         for key in ("restored", "with_faces_enhanced", "failed", "skipped", "not_run")}
    line = (
        f"oldphoto: {c['restored']} photo(s) restored ({c['with_faces_enhanced']} with faces "
        f"enhanced), {c['failed']} failed, {c['skipped']} skipped, backend "
        f"{summary.get('backend')}"
    )
    if c["not_run"]:
        line += f", {c['not_run']} not run"
    if summary["counts"].get("retried"):
        line += f", {summary['counts']['retried']} retried after a worker died"
    return line


MAX_FAILED_LINES = 100
MAX_NOT_RUN_LINES = 10


def summary_lines(summary: Mapping[str, Any], output_dir: str | Path,
                  summary_file: str | Path) -> list[str]:
    """The end of a run as the console shows it, once: the counts
    (:func:`summary_line`), one ``FAILED <photo>: <reason>`` line per reason, the photos not run
    (Ctrl-C, a stopped run: the same command resumes), where the results are."""
    lines = [summary_line(summary)]
    failed = [(stem, reason) for stem, entry in summary["photos"].items()
              for reason in entry.get("reasons", [])]
    lines += [f"oldphoto: FAILED {stem}: {reason}" for stem, reason in failed[:MAX_FAILED_LINES]]
    not_run = [stem for stem, entry in summary["photos"].items()
               if entry.get("status") == "not run"]
    lines += [f"oldphoto: NOT RUN {stem} (run the command again)"
              for stem in not_run[:MAX_NOT_RUN_LINES]]
    for shown, total, what in ((MAX_FAILED_LINES, len(failed), "failure reasons"),
                               (MAX_NOT_RUN_LINES, len(not_run), "photos not run")):
        if total > shown:
            lines.append(f"oldphoto: ... and {total - shown} more {what} in {summary_file}")
    lines.append(f"oldphoto: results in {Path(output_dir) / 'final_output'}; summary in "
                 f"{summary_file}")
    return lines


def up_to_date_line(summary: Mapping[str, Any], summary_file: str | Path | None) -> str:
    """A run with nothing to do: every photo is restored and up to date."""
    counts = summary["counts"]
    skipped = f", {counts['skipped']} skipped" if counts.get("skipped") else ""
    where = f"; summary in {summary_file}" if summary_file else ""
    return (f"oldphoto: nothing to do: all {counts['restored']} photo(s) are restored and up to "
            f"date ({counts['with_faces_enhanced']} with faces enhanced{skipped}, backend "
            f"{summary.get('backend')}){where}")


def finish_run(config: Mapping[str, Any], inputs, backend: Mapping[str, str],
               ok: bool, settings: Mapping[str, Mapping[str, Any]] | None = None, *,
               up_to_date: bool = False, write: bool = True) -> dict[str, Any]:
    """Write output_dir/run_summary.json and print the end of the run, once (onsuccess, onerror,
    and "Nothing to be done": ``up_to_date``, one line).  ``write=False`` (a dry run): print
    only."""
    from oldphoto.atomic import write_json
    from oldphoto.slurm import summary_name
    from oldphoto.worker.client import shutdown_all

    out = Path(config["output_dir"])
    summary_file = out / summary_name(config.get("shard"))
    if write and not up_to_date:
        # The run's warm workers end with it (they would also notice that Snakemake is gone).
        shutdown_all(run_key(config))
    summary = summarize(config, inputs, backend, settings)
    summary["snakemake_ok"] = ok
    if write:
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(out, older_than=_LOADED_AT)
        write_json(summary_file, summary)
    if up_to_date:
        lines = [up_to_date_line(summary, summary_file if write else None)]
    else:
        lines = summary_lines(summary, out, summary_file)
    print("\n".join(lines), file=sys.stderr, flush=True)
    return summary
