"""The quiet console (oldphoto.console) on Snakemake's log records, the opening line's counts, the
end of a run as printed (oldphoto.summary), and the backend's announcement (oldphoto.plan.backend)."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import REPO
from oldphoto import console, summary
from oldphoto.inputs import discover_inputs
from oldphoto.plan.backend import BackendChoice, resolve_backend
from oldphoto.inputs import InputSet


def record(msg, level=logging.INFO, **extra) -> logging.LogRecord:
    rec = logging.LogRecord("snakemake", level, __file__, 1, msg, None, None)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def job_info(jobid, rule, image):
    return record(f" Rule: {rule}, Jobid: {jobid}", event="job_info", jobid=jobid,
                  rule_name=rule, wildcards={"image": image} if image else {})


def make_console(dry=False, verbose=False):
    calls = {"nothing": [], "dry": 0}
    stream = io.StringIO()
    run = console.RunConsole(
        {"a": Path("/in/a.png"), "b": Path("/in/b b.jpg"), "c": Path("/in/c.tif")},
        is_dry_run=lambda: dry, on_nothing_to_do=calls["nothing"].append,
        on_dry_run=lambda: calls.__setitem__("dry", calls["dry"] + 1), verbose=verbose,
        stream=stream)
    return run, calls, stream


def feed(run, records):
    """What the console handler would print: each record's message, when both filters pass."""
    shown = []
    for rec in records:
        assert run.observe(rec) is True  # the logger-level filter never drops a record
        if run.quiet(rec):
            shown.append(rec.getMessage())
    return shown


RUN = [
    record("", event="workflow_started"),
    record("Job stats: ...", event="run_info",
           stats={"restore_global": 3, "blend_faces": 3, "all": 1, "total": 7}),
    record("Select jobs to execute..."),
    record("Execute 2 jobs..."),
    job_info(1, "restore_global", "a"),
    record("Shell command: python -m oldphoto.jobs restore_global ...", event="shellcmd"),
    job_info(2, "restore_global", "b"),
    record("Finished jobid: 1 (Rule: restore_global)", event="job_finished", job_id=1),
    record(None, event="progress", done=1, total=7),
    record("RuleException:\nCalledProcessError in file stage1.smk, line 92:\nCommand 'set -euo "
           "pipefail;  PYTHONPATH=src python -m oldphoto.jobs restore_global rule=restore_global "
           "log=logs/b.log' returned non-zero exit status 1.", logging.ERROR, event="error",
           exception="RuleException"),
    record("Error in rule restore_global, jobid: 2", logging.ERROR, event="job_error",
           rule_name="restore_global", jobid=2, log=["logs/b.log"]),
    job_info(3, "blend_faces", "a"),
    record("Finished jobid: 3 (Rule: blend_faces)", event="job_finished", job_id=3),
    record("Exiting because a job execution failed. Look above for error messages",
           logging.ERROR),
    record("Complete log(s): /out/.snakemake/log/x.log"),
    record("WorkflowError:\nAt least one job did not complete successfully.", logging.ERROR,
           event="error", exception="WorkflowError"),
]


def test_quiet_console_shows_one_line_per_photo_and_no_error_blocks_of_photos():
    run, calls, stream = make_console()
    shown = feed(run, RUN)
    assert shown == ["Job stats: ...", "Complete log(s): /out/.snakemake/log/x.log"]
    # b failed in stage 1: its line says so, the reason is the summary's; a finished stage 4
    assert stream.getvalue().splitlines() == [
        "oldphoto: [1/3] b b.jpg failed (restore_global)",
        "oldphoto: [2/3] a.png restored",
    ]
    assert calls == {"nothing": [], "dry": 0}


def test_every_final_rule_counts_whatever_the_output_format():
    run, _, stream = make_console()
    feed(run, [record("Job stats: ...", event="run_info",
                      stats={"blend_faces": 1, "blend_faces_tif": 1, "blend_faces_jpg": 1}),
               job_info(1, "blend_faces_tif", "a"), job_info(2, "blend_faces_jpg", "b"),
               record("x", event="job_finished", job_id=2),
               record("x", event="job_finished", job_id=1)])
    assert stream.getvalue().splitlines() == ["oldphoto: [1/3] b b.jpg restored",
                                              "oldphoto: [2/3] a.png restored"]
    stage4 = (REPO / "workflow" / "rules" / "stage4.smk").read_text().splitlines()
    assert console.FINAL_RULES == {"blend_faces", *(
        line.split()[4] for line in stage4 if line.startswith("use rule blend_faces as "))}


def test_a_failure_of_another_rule_keeps_snakemakes_report():
    run, _, stream = make_console()
    records = RUN[:2] + [
        job_info(9, "prepare_checkpoint", None),
        record("RuleException:\nCalledProcessError ... -m oldphoto.jobs prepare_checkpoint "
               "rule=prepare_checkpoint log=x", logging.ERROR, event="error",
               exception="RuleException"),
        record("Error in rule prepare_checkpoint, jobid: 9", logging.ERROR, event="job_error",
               rule_name="prepare_checkpoint", jobid=9, log=[]),
        record("Exiting because a job execution failed. Look above for error messages",
               logging.ERROR),
        record("WorkflowError:\nAt least one job did not complete successfully.", logging.ERROR,
               event="error", exception="WorkflowError"),
    ]
    shown = feed(run, records)
    assert [m.splitlines()[0] for m in shown[1:]] == [
        "RuleException:", "Error in rule prepare_checkpoint, jobid: 9",
        "Exiting because a job execution failed. Look above for error messages",
        "WorkflowError:"]
    assert stream.getvalue() == ""


def test_ctrl_c_stops_jobs_without_calling_their_photos_failed():
    run, _, stream = make_console()
    records = RUN[:2] + [
        job_info(1, "restore_global", "a"),
        record("Terminating processes on user request, this might take some time."),
        record("Error in rule restore_global, jobid: 1", logging.ERROR, event="job_error",
               rule_name="restore_global", jobid=1, log=[]),
        record("WorkflowError:\nAt least one job did not complete successfully.", logging.ERROR,
               event="error", exception="WorkflowError"),
    ]
    shown = feed(run, records)
    assert shown[-1].startswith("Terminating processes on user request")
    assert stream.getvalue() == ""  # the summary lists a as not run


def test_verbose_and_dry_runs_show_everything():
    for kwargs in ({"verbose": True}, {"dry": True}):
        run, _, stream = make_console(**kwargs)
        assert len(feed(run, RUN)) == len(RUN)
        assert stream.getvalue() == ""  # no per-photo lines on top of Snakemake's
    assert console.verbose_output(SimpleNamespace(printshellcmds=True, verbose=False))
    assert console.verbose_output(SimpleNamespace(printshellcmds=False, verbose=True))
    assert not console.verbose_output(SimpleNamespace(printshellcmds=False, verbose=False))


def test_quiet_progress_drops_the_per_photo_lines():
    from snakemake.settings.enums import Quietness

    assert console.progress_wanted(SimpleNamespace(quiet=None))
    assert console.progress_wanted(SimpleNamespace(quiet={Quietness.RULES}))
    assert not console.progress_wanted(SimpleNamespace(quiet={Quietness.PROGRESS}))
    assert not console.progress_wanted(SimpleNamespace(quiet={Quietness.ALL}))
    run, _, stream = make_console()
    run.progress = False
    feed(run, RUN)
    assert stream.getvalue() == ""


def test_nothing_to_be_done_and_the_dry_run_plan_call_their_hooks_once():
    run, calls, _ = make_console()
    nothing = record(console.NOTHING_TO_BE_DONE)
    assert feed(run, [nothing, nothing]) == [console.NOTHING_TO_BE_DONE] * 2
    assert calls == {"nothing": [False], "dry": 0}
    run, calls, _ = make_console(dry=True)
    assert feed(run, [RUN[1], RUN[1]]) == ["Job stats: ...", "Job stats: ..."]
    assert calls == {"nothing": [], "dry": 1}
    run, calls, _ = make_console(dry=True)
    feed(run, [nothing])
    assert calls == {"nothing": [True], "dry": 1}


def test_install_filters_the_console_only_and_quiets_the_jobs(monkeypatch):
    monkeypatch.delenv(console.QUIET_ENV, raising=False)
    logger = logging.getLogger("oldphoto-test-console")
    logger.propagate = False
    screen, logfile = io.StringIO(), io.StringIO()
    stream_handler = logging.StreamHandler(screen)
    stream_handler.name = "DefaultStreamHandler"
    file_handler = logging.StreamHandler(logfile)
    logger.handlers[:] = [stream_handler, file_handler]
    logger.setLevel(logging.INFO)
    run, _, _ = make_console()
    run.install(logger)
    logger.info("Select jobs to execute...")
    logger.info("Complete log(s): x")
    assert screen.getvalue().splitlines() == ["Complete log(s): x"]
    assert logfile.getvalue().splitlines() == ["Select jobs to execute...", "Complete log(s): x"]
    import os

    assert os.environ[console.QUIET_ENV] == "quiet"


# ---------------------------------------------------------------------------------------------
# The opening line, the end of a run, the backend's announcement


RUN_CONFIG = {"with_scratch": False, "hr": False, "input_dir": "/in", "output_dir": "/out"}


def test_opening_line_counts_auto_photos_as_auto(capsys):
    settings = {"a": {"with_scratch": False, "hr": False},
                "b": {"with_scratch": True, "hr": False},
                "c": {"with_scratch": "auto", "hr": False},
                "d": {"with_scratch": "auto", "hr": False},
                "e": {"with_scratch": True, "hr": True}}
    counts = summary.mode_counts(RUN_CONFIG, settings, settings)
    assert counts == {"quality": 1, "scratch": 1, "auto": 2, "scratch+hr": 1}
    assert summary.describe_modes(counts) == (
        "1 quality, 1 scratch, 1 scratch+hr, 2 auto (the scratch triage decides: quality or "
        "scratch path)")
    assert summary.mode_counts(RUN_CONFIG, ["x", "y"]) == {"quality": 2}  # the run's settings
    inputs = InputSet({s: Path(f"/in/{s}.png") for s in settings},
                      [(Path("/in/notes.txt"), "sidecar/metadata file (.txt)")])
    backend = BackendChoice({"global": "classical", "face": "classical"}, ["*** NOTE ***"])
    summary.announce(RUN_CONFIG, backend, inputs, settings)
    assert capsys.readouterr().err.splitlines() == [
        f"oldphoto {summary.__version__}: 5 photo(s) from /in -> /out (1 quality, 1 scratch, "
        "1 scratch+hr, 2 auto (the scratch triage decides: quality or scratch path); backend "
        "classical)",
        "*** NOTE ***",
        "oldphoto: skipped /in/notes.txt: sidecar/metadata file (.txt)"]
    summary.announce(RUN_CONFIG, backend, inputs, settings, banner=False)
    assert "*** NOTE ***" not in capsys.readouterr().err


def photos_summary(statuses):
    photos = {}
    for stem, status in statuses.items():
        entry = {"status": status, "input": f"/in/{stem}.png"}
        if status == "failed":
            entry["reasons"] = [f"bad image: /in/{stem}.png: truncated"]
        photos[stem] = entry
    counts = {"restored": sum(s == "restored" for s in statuses.values()),
              "with_faces_enhanced": 0,
              "failed": sum(s == "failed" for s in statuses.values()),
              "not_run": sum(s == "not run" for s in statuses.values()), "skipped": 1}
    return {"backend": "classical", "counts": counts, "photos": photos}


def test_end_of_run_names_each_failure_once_and_what_did_not_run():
    lines = summary.summary_lines(
        photos_summary({"a": "restored", "b": "failed", "c": "not run"}), "/out",
        "/out/run_summary.json")
    assert lines == [
        "oldphoto: 1 photo(s) restored (0 with faces enhanced), 1 failed, 1 skipped, backend "
        "classical, 1 not run",
        "oldphoto: FAILED b: bad image: /in/b.png: truncated",
        "oldphoto: NOT RUN c (run the command again)",
        "oldphoto: results in /out/final_output; summary in /out/run_summary.json"]


def test_end_of_run_caps_long_lists():
    statuses = {f"p{i:03d}": "not run" for i in range(25)}
    lines = summary.summary_lines(photos_summary(statuses), "/out", "/out/s.json")
    not_run = [line for line in lines if line.startswith("oldphoto: NOT RUN")]
    assert len(not_run) == summary.MAX_NOT_RUN_LINES
    assert "oldphoto: ... and 15 more photos not run in /out/s.json" in lines


def test_up_to_date_line():
    line = summary.up_to_date_line(photos_summary({"a": "restored", "b": "restored"}),
                                   "/out/run_summary.json")
    assert line == ("oldphoto: nothing to do: all 2 photo(s) are restored and up to date (0 with "
                    "faces enhanced, 1 skipped, backend classical); summary in "
                    "/out/run_summary.json")


def test_backend_auto_announces_where_the_backend_is_recorded(tmp_path, capsys):
    config = {"backend": "auto", "checkpoints_dir": str(tmp_path), "with_scratch": False,
              "hr": False}
    chosen = resolve_backend(config)
    assert dict(chosen) == {"global": "classical", "face": "classical"}
    assert capsys.readouterr().err == ""  # announced once by the run, not here
    assert len(chosen.notes) == 2
    note = chosen.notes[0]
    assert "CLASSICAL for the global networks" in note and str(tmp_path) in note
    assert "provenance sidecar (provenance/<photo>.json" in note and "XMP" in note
    assert "PNG metadata" not in note
    assert resolve_backend(dict(config, backend="classical")).notes == []


def test_an_empty_or_imageless_folder_is_an_error_naming_it(tmp_path):
    from oldphoto.errors import ConfigError

    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError) as info:
        discover_inputs(tmp_path / "empty")
    assert str(info.value) == (f"bad configuration: {tmp_path / 'empty'}: no photo in this "
                               "folder: it is empty (a mistyped path?)")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "index.txt").write_text("x")
    (tmp_path / "notes" / "scan.doc").write_text("x")
    with pytest.raises(ConfigError) as info:
        discover_inputs(tmp_path / "notes")
    assert info.value.path == str(tmp_path / "notes")
    assert info.value.reason.startswith("no photo in this folder: 2 entries skipped: index.txt "
                                        "(sidecar/metadata file (.txt)); scan.doc (unknown")


def test_the_texts_matched_are_snakemakes():
    """The few lines recognised by their text are in the installed Snakemake: an upgrade that
    rewords one shows here, not as a noisier console."""
    import snakemake
    from snakemake.common import NOTHING_TO_BE_DONE_MSG

    assert console.NOTHING_TO_BE_DONE == NOTHING_TO_BE_DONE_MSG
    source = "\n".join(path.read_text(encoding="utf-8")
                       for path in Path(snakemake.__file__).parent.rglob("*.py"))
    for text in (console.INTERRUPTED, "Select jobs to execute...", 'f"Execute {len(run)} jobs..."',
                 *console._JOB_FAILED, 'f"Adding {self.name} ({format_size(self.size)}).")',
                 "DAG of jobs will be updated after completion."):
        assert text in source, text
