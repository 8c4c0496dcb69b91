"""The ``oldphoto`` command (run.py's options) end to end, and its option -> config mapping."""

from __future__ import annotations

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
}


def oldphoto_command() -> list[str]:
    """The installed console script (pyproject: oldphoto = oldphoto.cli:main)."""
    script = Path(sys.executable).parent / "oldphoto"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "oldphoto.cli"]


def run_oldphoto(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([*oldphoto_command(), *args], capture_output=True, text=True,
                          timeout=timeout)


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
    proc = run_oldphoto("--input_folder", str(tmp_path / "in"), "--output_folder",
                        str(tmp_path / "out"), "--checkpoint_name", "latest", timeout=60)
    assert proc.returncode == 2 and "--checkpoint_name 'latest'" in proc.stderr
    proc = run_oldphoto("--input_folder", str(tmp_path / "nothing"), timeout=60)
    assert proc.returncode == 2 and "not a folder" in proc.stderr
    proc = run_oldphoto("--input_folder", str(tmp_path / "in"), "--GPU", "1,x", timeout=60)
    assert proc.returncode == 2 and "--GPU" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_gpus_map_to_device_resources_and_visible_devices(tmp_path):
    """A dry run with two GPUs: config device=cuda, --resources gpu=2, extra args passed on."""
    make_tiny_photos(tmp_path / "in")
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


@pytest.mark.workflow
def test_restores_tiny_photos_like_run_py(tmp_path):
    make_tiny_photos(tmp_path / "in")
    out = tmp_path / "out"
    proc = run_oldphoto("--input_folder", str(tmp_path / "in"), "--output_folder", str(out),
                        "--GPU", "-1", "--with_scratch", "--backend", "classical",
                        "--cores", "2", "--report")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert sorted(p.name for p in (out / "final_output").iterdir()) == [
        "face.png", "no face.png", "scratched.png"]
    assert (out / "stage_1_restore_output" / "masks" / "mask" / "face.png").is_file()
    assert "3 photo(s) restored" in proc.stdout and "0 failed" in proc.stdout
    assert f"results in {out / 'final_output'}" in proc.stdout
    config = yaml.safe_load((out / cli.CONFIG_NAME).read_text())
    assert config["device"] == "cpu" and config["gpu_per_job"] == 0
    assert config["with_scratch"] is True
    assert f"report in {out / 'report.html'}" in proc.stdout
    assert 'id="categories"' in (out / "report.html").read_text(encoding="utf-8")


@pytest.mark.workflow
def test_corrupt_photo_fails_the_command_and_is_named(tmp_path):
    (tmp_path / "in").mkdir()
    broken = tmp_path / "in" / "broken scan.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    out = tmp_path / "out"
    proc = run_oldphoto("--input_folder", str(tmp_path / "in"), "--output_folder", str(out),
                        "--GPU", "-1", "--backend", "classical", "--cores", "2")
    assert proc.returncode != 0
    failed = [line for line in proc.stdout.splitlines() if line.startswith("oldphoto: FAILED")]
    assert len(failed) == 1 and str(broken) in failed[0] and "bad image" in failed[0], proc.stdout
    assert "0 photo(s) restored" in proc.stdout and "1 failed" in proc.stdout
