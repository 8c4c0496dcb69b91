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
from typing import Any, Mapping

from oldphoto import __version__
from oldphoto.dag import backend_label, face_count
from oldphoto.jobs import FAILED_PREFIX
from oldphoto.layout import SUMMARY_NAME, Layout, final_extension
from oldphoto.mode import Mode


def announce(config: Mapping[str, Any], backend: Mapping[str, str], inputs,
             modes: Mapping[str, Mode] | None = None) -> None:
    """The run's first lines: how many photos, where, in which mode(s), which backend."""
    counts: dict[str, int] = {}
    for stem in inputs.images:
        mode = (modes or {}).get(stem) or Mode(config["with_scratch"], config["hr"])
        counts[mode.key] = counts.get(mode.key, 0) + 1
    described = ", ".join(f"{n} {key}" for key, n in sorted(counts.items())) or "no photos"
    print(
        f"oldphoto {__version__}: {len(inputs.images)} photo(s) from {config['input_dir']} -> "
        f"{config['output_dir']} ({described}; backend {backend_label(backend)})",
        file=sys.stderr,
    )
    for path, reason in inputs.skipped:
        print(f"oldphoto: skipped {path}: {reason}", file=sys.stderr)


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
            if line.startswith(FAILED_PREFIX):
                # "FAILED <rule> <image>: <reason>"
                head, _, reason = line[len(FAILED_PREFIX):].partition(" :: ")
                _, _, image = head.partition(" ")
                reasons.setdefault(image, []).append(reason.strip())
    return reasons


def retried_jobs(log_dir: Path, since: float) -> dict[str, list[str]]:
    """image stem -> why each of its jobs written since ``since`` (this run) was retried: the
    ``RETRIED <rule> <image> :: <reason>`` lines of
    :func:`oldphoto.worker.client.submit_retrying_once`."""
    from oldphoto.worker.client import RETRIED_PREFIX

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
            if line.startswith(RETRIED_PREFIX):
                head, _, reason = line[len(RETRIED_PREFIX):].partition(" :: ")
                rule, _, image = head.partition(" ")
                retried.setdefault(image, []).append(f"{rule}: {reason.strip()}")
    return retried


IMAGE_RULES = ("detect_scratches", "triage_scratches", "restore_global", "detect_faces",
               "detect_and_enhance_faces", "enhance_face", "blend_faces")


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
            mode = Mode(photo["with_scratch"] in (True, "auto"), bool(photo["hr"]))
            entry["mode"] = mode.key
        triage = Path(layout.triage(stem))
        if triage.is_file():
            try:
                entry["triage"] = json.loads(triage.read_text(encoding="utf-8"))
                if "mode" in entry:
                    entry["mode"] = Mode(bool(entry["triage"]["with_scratch"]),
                                         bool(settings[stem]["hr"])).key
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


def finish_run(config: Mapping[str, Any], inputs, backend: Mapping[str, str],
               ok: bool, settings: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Write output_dir/run_summary.json and print the human line (onsuccess/onerror)."""
    from oldphoto.atomic import write_json

    from oldphoto.worker.client import shutdown_all

    # The run's warm workers end with it (they would also notice that Snakemake is gone).
    stopped = shutdown_all(str(Path(config["output_dir"]).resolve()))
    if stopped:
        print(f"oldphoto: stopped {stopped} warm worker(s)", file=sys.stderr)
    summary = summarize(config, inputs, backend, settings)
    summary["snakemake_ok"] = ok
    out = Path(config["output_dir"])
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(out, older_than=_LOADED_AT)
    from oldphoto.slurm import summary_name

    write_json(out / summary_name(config.get("shard")), summary)
    print(summary_line(summary), file=sys.stderr)
    for stem, entry in summary["photos"].items():
        for reason in entry.get("reasons", []):
            print(f"oldphoto: FAILED {stem}: {reason}", file=sys.stderr)
    print(f"oldphoto: results in {out / 'final_output'}; summary in "
          f"{out / summary_name(config.get('shard'))}",
          file=sys.stderr)
    return summary
