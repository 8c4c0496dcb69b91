"""The ``oldphoto`` command (run.py's options) end to end, and its option -> config mapping."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import oldphoto
from conftest import REPO, make_tiny_photos
from oldphoto import cli

OPTIONS_AND_KEYS = {
    "--input_folder": ["input_dir"],
    "--output_folder": ["output_dir"],
    "--GPU": ["device", "gpu_per_job", "--resources gpu=", "CUDA_VISIBLE_DEVICES"],
    "--checkpoint_name": ["Setting_9_epoch_100", "FaceSR_512"],
    "--with_scratch": ["with_scratch"],
    "--HR": ["hr"],
    "--backend": ["backend"],
    "--checkpoints_dir": ["checkpoints_dir"],
    "--ext": ["output_format"],
    "--cores": ["--cores"],
    "--dry-run": ["--dry-run"],
    "--report": ["--report"],
    "--photo-sheet": ["photo_sheet", "oldphoto sheet"],
    "--unlock": ["snakemake --unlock"],
    "--verbose": ["--printshellcmds"],
}

NOISE = ("Traceback", "KeyboardInterrupt", "CalledProcessError", "WorkflowError",
         "RuleException", "Error in rule", "Shell command", "Select jobs to execute")
"""What the quiet console never shows for a bad photo or Ctrl-C (oldphoto.console)."""


def oldphoto_command() -> list[str]:
    """The installed console script (pyproject: oldphoto = oldphoto.cli:main)."""
    script = Path(sys.executable).parent / "oldphoto"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "oldphoto.cli"]


def run_oldphoto(*args: str, timeout: float = 900, cwd: Path | None = None
                 ) -> subprocess.CompletedProcess:
    return subprocess.run([*oldphoto_command(), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


def progress_lines(text: str) -> list[str]:
    """The quiet console's one line per photo: ``oldphoto: [3/12] name restored``."""
    return [line for line in text.splitlines() if line.startswith("oldphoto: [")]


def test_help_names_every_option_and_its_config_key():
    proc = run_oldphoto("--help", timeout=60)
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    for option, keys in OPTIONS_AND_KEYS.items():
        assert option in text, option
        for key in keys:
            assert key in text, (option, key)
    assert "-- " in text  # extra snakemake arguments


@pytest.mark.parametrize("ext, output_format", [
    ("auto", "same"), ("png", "png"), ("jpg", "jpeg"), ("tiff", "tiff"), (None, None)])
def test_ext_sets_output_format(tmp_path, ext, output_format):
    (tmp_path / "in").mkdir()
    argv = ["--input_folder", str(tmp_path / "in")] + (["--ext", ext] if ext else [])
    config = cli.settings(cli.build_parser().parse_args(argv), REPO)
    # without --ext the config's default (png) applies
    assert config.get("output_format") == output_format


def test_ext_rejects_other_formats(capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["--ext", "webp"])
    assert "--ext" in capsys.readouterr().err


def test_gpu_list_and_checkpoint_name_rules():
    assert cli.parse_gpus(None) is None
    assert cli.parse_gpus("-1") == []
    assert cli.parse_gpus("0, 2") == [0, 2]
    for bad in ("-2", "0,,1", "a", "0,0", "-1,0"):
        with pytest.raises(cli.UsageError):
            cli.parse_gpus(bad)
    cli.check_checkpoint_name("Setting_9_epoch_100", hr=False)
    cli.check_checkpoint_name("FaceSR_512", hr=True)
    cli.check_checkpoint_name("Setting_9_epoch_100", hr=True)  # run.py's default with --HR
    with pytest.raises(cli.UsageError, match="add --HR"):
        cli.check_checkpoint_name("FaceSR_512", hr=False)
    with pytest.raises(cli.UsageError, match="only the official face checkpoints"):
        cli.check_checkpoint_name("my_faces", hr=False)


def test_workflow_is_found_from_the_editable_install(monkeypatch, tmp_path):
    monkeypatch.delenv("OLDPHOTO_WORKFLOW", raising=False)
    assert cli.workflow_root() == REPO
    assert Path(oldphoto.__file__).resolve().parents[2] == REPO
    # a regular (non-editable) install: site-packages/oldphoto has no Snakefile above it
    fake = tmp_path / "lib" / "site-packages" / "oldphoto" / "__init__.py"
    monkeypatch.setattr(oldphoto, "__file__", str(fake))
    with pytest.raises(cli.UsageError, match="editable mode.*OLDPHOTO_WORKFLOW"):
        cli.workflow_root()
    monkeypatch.setenv("OLDPHOTO_WORKFLOW", str(REPO))
    assert cli.workflow_root() == REPO
    monkeypatch.setenv("OLDPHOTO_WORKFLOW", str(tmp_path))
    with pytest.raises(cli.UsageError, match="no Snakefile"):
        cli.workflow_root()


def test_command_line_errors_exit_2_before_running(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.png").write_bytes(b"never decoded: the command stops first")
    proc = run_oldphoto("--input_folder", str(tmp_path / "in"), "--output_folder",
                        str(tmp_path / "out"), "--checkpoint_name", "latest", timeout=60)
    assert proc.returncode == 2 and "--checkpoint_name 'latest'" in proc.stderr
    proc = run_oldphoto("--input_folder", str(tmp_path / "nothing"), timeout=60)
    assert proc.returncode == 2 and "not a folder" in proc.stderr
    proc = run_oldphoto("--input_folder", str(tmp_path / "in"), "--GPU", "1,x", timeout=60)
    assert proc.returncode == 2 and "--GPU" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_an_empty_or_imageless_input_folder_is_an_error_naming_it(tmp_path):
    """A mistyped or empty folder is not "0 photo(s) restored": exit 2, the folder named, and
    for a folder with files but no photo, what was skipped and why."""
    (tmp_path / "empty").mkdir()
    proc = run_oldphoto("--input_folder", str(tmp_path / "empty"), "--output_folder",
                        str(tmp_path / "out"), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr == (f"oldphoto: error: --input_folder {tmp_path / 'empty'}: no photo in "
                           "this folder: it is empty (a mistyped path?)\n")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "box 3.txt").write_text("letters")
    proc = run_oldphoto("--input_folder", str(tmp_path / "notes"), "--output_folder",
                        str(tmp_path / "out"), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr == (f"oldphoto: error: --input_folder {tmp_path / 'notes'}: no photo in "
                           "this folder: 1 entry skipped: box 3.txt (sidecar/metadata file "
                           "(.txt))\n")
    assert not (tmp_path / "out").exists()


@pytest.mark.workflow
def test_plain_snakemake_refuses_an_empty_input_folder(tmp_path):
    from conftest import run_snakemake, workflow_config

    (tmp_path / "in").mkdir()
    config = workflow_config(tmp_path)
    proc = run_snakemake(tmp_path / "work", config, check=False, timeout=120)
    assert proc.returncode != 0
    assert (f"bad configuration: {tmp_path / 'in'}: no photo in this folder: it is empty"
            in proc.stderr)
    assert not (tmp_path / "out" / "run_summary.json").exists()


def test_gpus_map_to_device_resources_and_visible_devices(tmp_path):
    """A dry run with two GPUs: config device=cuda, --resources gpu=2, extra args passed on;
    the dry run names the files it skips, with the reason."""
    make_tiny_photos(tmp_path / "in")
    (tmp_path / "in" / "box 3.txt").write_text("letters")
    proc = run_oldphoto("--input_folder", str(tmp_path / "in"), "--output_folder",
                        str(tmp_path / "out"), "--GPU", "0,1", "--HR", "--backend", "classical",
                        "--dry-run", "--", "--quiet", "rules", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    command = proc.stderr.splitlines()[0]
    assert "--resources gpu=2" in command and "--dry-run" in command
    assert command.endswith("--quiet rules")
    config = yaml.safe_load((tmp_path / "out" / cli.CONFIG_NAME).read_text())
    assert config["device"] == "cuda" and config["hr"] is True and config["with_scratch"] is False
    assert config["input_dir"] == str((tmp_path / "in").resolve())
    assert config["output_dir"] == str((tmp_path / "out").resolve())
    assert not (tmp_path / "out" / "final_output").exists()
    assert "blend_faces" in proc.stdout  # the dry run's job table
    assert (f"oldphoto: skipped {(tmp_path / 'in' / 'box 3.txt').resolve()}: sidecar/metadata "
            "file (.txt)") in proc.stderr.splitlines()
    assert ("3 photo(s) from" in proc.stderr and "(3 quality+hr; backend classical)"
            in proc.stderr)
    assert "Shell command" not in proc.stdout + proc.stderr


def test_plain_snakemake_keeps_its_bookkeeping_in_its_working_directory(tmp_path):
    """What the README says about ``.snakemake/``: plain snakemake writes it where it runs (the
    checkout, when run from there), not into the output folder; oldphoto runs it in the output
    folder (checked by the run below)."""
    make_tiny_photos(tmp_path / "in")
    (tmp_path / "checkout").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--snakefile", str(REPO / "Snakefile"),
         "--config", f"input_dir={tmp_path / 'in'}", f"output_dir={tmp_path / 'out'}",
         "backend=classical"],
        cwd=tmp_path / "checkout", capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=str(REPO / "src")))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "checkout" / ".snakemake" / "locks").is_dir()
    assert not (tmp_path / "out" / ".snakemake").exists()


def test_verbose_shows_the_shell_lines(tmp_path):
    make_tiny_photos(tmp_path / "in")
    proc = run_oldphoto("--input_folder", str(tmp_path / "in"), "--output_folder",
                        str(tmp_path / "out"), "--backend", "classical", "--dry-run",
                        "--verbose", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "--printshellcmds" in proc.stderr.splitlines()[0]
    shell = [line for line in (proc.stdout + proc.stderr).splitlines()
             if "-m oldphoto.jobs blend_faces" in line]
    assert len(shell) == 3  # one per photo


@pytest.mark.workflow
def test_restores_tiny_photos_like_run_py_and_a_rerun_has_nothing_to_do(tmp_path):
    make_tiny_photos(tmp_path / "in")
    out = tmp_path / "out"
    (tmp_path / "cwd").mkdir()
    proc = run_oldphoto("--input_folder", str(tmp_path / "in"), "--output_folder", str(out),
                        "--GPU", "-1", "--with_scratch", "--backend", "classical",
                        "--cores", "2", "--report", cwd=tmp_path / "cwd")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert sorted(p.name for p in (out / "final_output").iterdir()) == [
        "face.png", "no face.png", "scratched.png"]
    assert (out / "stage_1_restore_output" / "masks" / "mask" / "face.png").is_file()
    # one summary, once; one line per photo as it finishes
    counts = [line for line in proc.stderr.splitlines() if "photo(s) restored" in line]
    assert counts == ["oldphoto: 3 photo(s) restored (1 with faces enhanced), 0 failed, "
                      "0 skipped, backend classical"]
    assert sorted(line.split("] ", 1)[1] for line in progress_lines(proc.stderr)) == [
        "face.png restored", "no face.jpg restored", "scratched.png restored"]
    assert [line.split("]")[0] for line in progress_lines(proc.stderr)] == [
        "oldphoto: [1/3", "oldphoto: [2/3", "oldphoto: [3/3"]
    assert f"results in {out / 'final_output'}" in proc.stderr
    assert "Shell command" not in proc.stderr and "Select jobs" not in proc.stderr
    config = yaml.safe_load((out / cli.CONFIG_NAME).read_text())
    assert config["device"] == "cpu" and config["gpu_per_job"] == 0
    assert config["with_scratch"] is True
    assert f"report in {out / 'report.html'}" in proc.stderr
    assert 'id="categories"' in (out / "report.html").read_text(encoding="utf-8")
    # Snakemake's bookkeeping lives in the output folder, not where the command ran
    assert (out / ".snakemake").is_dir() and not (tmp_path / "cwd" / ".snakemake").exists()

    # the same command again: nothing to do, said so, exit 0, summary and report rewritten
    summary_before = (out / "run_summary.json").stat().st_mtime_ns
    report_before = (out / "report.html").stat().st_mtime_ns
    proc = run_oldphoto("--input_folder", str(tmp_path / "in"), "--output_folder", str(out),
                        "--GPU", "-1", "--with_scratch", "--backend", "classical",
                        "--cores", "2", "--report", cwd=tmp_path / "cwd")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (f"oldphoto: nothing to do: all 3 photo(s) are restored and up to date (1 with faces "
            f"enhanced, backend classical); summary in {out / 'run_summary.json'}"
            in proc.stderr.splitlines())
    assert "stopped before running" not in proc.stderr and not progress_lines(proc.stderr)
    assert (out / "run_summary.json").stat().st_mtime_ns > summary_before
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["counts"]["restored"] == 3 and summary["snakemake_ok"] is True
    assert (out / "report.html").stat().st_mtime_ns > report_before
    assert f"report in {out / 'report.html'}" in proc.stderr


@pytest.mark.workflow
def test_corrupt_photo_fails_with_one_line_and_no_traceback(tmp_path):
    """An expected failure (a corrupt scan among good ones) ends in the one FAILED line naming
    the file and the reason: no error block, CalledProcessError, WorkflowError or traceback."""
    make_tiny_photos(tmp_path / "in")
    broken = tmp_path / "in" / "broken scan.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    out = tmp_path / "out"
    proc = run_oldphoto("--input_folder", str(tmp_path / "in"), "--output_folder", str(out),
                        "--GPU", "-1", "--backend", "classical", "--cores", "2")
    assert proc.returncode == 1
    text = proc.stdout + proc.stderr
    failed = [line for line in text.splitlines() if "FAILED" in line]
    assert len(failed) == 1, text
    assert failed[0].startswith("oldphoto: FAILED broken scan: bad image: ")
    assert str(broken) in failed[0] and "PNG" in failed[0]
    assert [line for line in text.splitlines() if "photo(s) restored" in line] == [
        "oldphoto: 3 photo(s) restored (1 with faces enhanced), 1 failed, 0 skipped, "
        "backend classical"]
    assert [line.split("] ", 1)[1] for line in progress_lines(text)
            if "broken" in line] == ["broken scan.png failed (restore_global)"]
    for noise in NOISE:
        assert noise not in text, noise
    # lines: Snakemake's fixed preamble and job table, ours, one per photo (measured: 23 + 1
    # per photo here; the default console printed about 60 per photo before)
    assert len(progress_lines(text)) == 4
    assert len(text.splitlines()) <= 30, text


@pytest.mark.workflow
def test_ctrl_c_stops_cleanly_and_lists_what_did_not_run(tmp_path):
    """SIGINT to the command's process group, as a terminal sends it, once a photo finished:
    no KeyboardInterrupt traceback from any process, the photos not run listed once."""
    for k in range(4):
        make_tiny_photos(tmp_path / "in" / "tmp")
        for path in (tmp_path / "in" / "tmp").iterdir():
            path.rename(tmp_path / "in" / f"{k} {path.name}")
    out = tmp_path / "out"
    process = subprocess.Popen([*oldphoto_command(), "--input_folder", str(tmp_path / "in"),
                                "--output_folder", str(out), "--GPU", "-1", "--backend",
                                "classical", "--cores", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    lines = []
    try:
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("oldphoto: [1/"):
                os.killpg(process.pid, signal.SIGINT)
                break
        lines += process.stdout.read().splitlines()
        code = process.wait(timeout=300)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    text = "\n".join(lines)
    assert any(line.startswith("oldphoto: [1/12] ") for line in lines), text
    assert code != 0
    for noise in NOISE:
        assert noise not in text, noise
    summary = json.loads((out / "run_summary.json").read_text())
    not_run = sorted(s for s, e in summary["photos"].items() if e["status"] == "not run")
    assert not_run and summary["counts"]["failed"] == 0, summary["counts"]
    assert len([line for line in lines if "photo(s) restored" in line]) == 1
    listed = [line for line in lines if line.startswith("oldphoto: NOT RUN ")]
    assert [line.split(" ", 3)[3] for line in listed] == [
        f"{stem} (run the command again)" for stem in not_run[:10]]


@pytest.mark.workflow
def test_backend_banner_once_per_real_run_and_true_to_the_outputs(tmp_path):
    """backend auto without checkpoints: the run announces the classical fallback once, naming
    where each photo records it (sidecar, XMP), which the outputs then do; --unlock, --report
    and a dry run do not announce it."""
    from conftest import run_snakemake, workflow_config

    make_tiny_photos(tmp_path / "in")
    (tmp_path / "in" / "face.png").unlink()
    (tmp_path / "in" / "no face.jpg").unlink()
    config = workflow_config(tmp_path, backend="auto", output_format="tif")
    banner = "backend 'auto' -> CLASSICAL for the global networks"
    proc = run_snakemake(tmp_path / "work", config)
    assert proc.stderr.count(banner) == 1
    line = next(line for line in proc.stderr.splitlines() if banner in line)
    assert "provenance sidecar (provenance/<photo>.json" in line and "XMP" in line
    assert "PNG metadata" not in line
    out = tmp_path / "out"
    sidecar = json.loads((out / "provenance" / "scratched.json").read_text())
    assert sidecar["backend"] == "classical"
    assert sidecar["digital_source_type"].endswith("/algorithmicallyEnhanced")
    # the TIFF's XMP, read back by exiftool (which wrote it: carry_metadata needs it)
    xmp = subprocess.run(["exiftool", "-s3", "-XMP-iptcExt:DigitalSourceType",
                          str(out / "final_output" / "scratched.tif")],
                         capture_output=True, text=True, timeout=60)
    assert xmp.returncode == 0 and xmp.stdout.strip().endswith("/algorithmicallyEnhanced")
    for args in (("--unlock",), ("--report", str(tmp_path / "r.html"), "gallery"), ("-n",)):
        proc = run_snakemake(tmp_path / "work", config, *args)
        assert banner not in proc.stderr, args
