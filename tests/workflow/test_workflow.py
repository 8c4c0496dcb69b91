"""The real Snakemake workflow on tiny photos: layout, incremental reruns, resume, bad inputs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, dry_run_jobs, make_tiny_photos, run_snakemake, workflow_config

pytestmark = pytest.mark.workflow

STEMS = ("face", "no face", "scratched")


def outputs(out: Path) -> dict[str, bytes]:
    """Every file the run produced that a rerun must reproduce byte for byte."""
    files = {}
    for sub in ("stage_1_restore_output", "stage_2_detection_output", "stage_3_face_output",
                "final_output"):
        for path in sorted((out / sub).rglob("*")):
            if path.is_file():
                files[str(path.relative_to(out))] = path.read_bytes()
    return files


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One complete classical run with scratches; later tests copy it."""
    tmp = tmp_path_factory.mktemp("run")
    make_tiny_photos(tmp / "in")
    config = workflow_config(tmp, face_jobs="per_face", with_scratch=True)
    proc = run_snakemake(tmp / "work", config)
    return tmp, config, proc


def test_layout_and_summary(finished_run):
    tmp, config, proc = finished_run
    out = Path(config["output_dir"])
    s1 = out / "stage_1_restore_output"
    for stem in STEMS:
        for sub in ("masks/input", "masks/mask", "origin", "input_image", "restored_image"):
            assert (s1 / sub / f"{stem}.png").is_file(), (sub, stem)
        final = out / "final_output" / f"{stem}.png"
        assert final.is_file()
        with Image.open(final) as im:
            assert im.text["oldphoto:backend"] == "classical"
    # final output at the input's original size (the official code leaves multiples of 4/16)
    with Image.open(Path(config["input_dir"]) / "face.png") as src, \
            Image.open(out / "final_output" / "face.png") as dst:
        assert src.size == dst.size
    record = json.loads((out / "stage_2_detection_output" / "face" / "faces.json").read_text())
    assert len(record["faces"]) >= 1
    for k in range(1, len(record["faces"]) + 1):
        assert (out / "stage_2_detection_output" / "face" / f"face_{k}.png").is_file()
        assert (out / "stage_3_face_output" / "each_img" / f"face_{k}.png").is_file()
    noface = json.loads(
        (out / "stage_2_detection_output" / "no face" / "faces.json").read_text())
    assert noface["faces"] == []
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["counts"]["restored"] == 3
    assert summary["counts"]["failed"] == 0
    assert summary["counts"]["with_faces_enhanced"] >= 1
    assert "3 photo(s) restored" in proc.stderr
    # every rule wrote its log and its benchmark
    for rule in ("detect_scratches", "restore_global", "detect_faces", "enhance_face",
                 "blend_faces"):
        assert any((out / "logs" / rule).glob("*.log")), rule
        assert any((out / "benchmarks" / rule).glob("*.tsv")), rule


def test_face_is_actually_changed_by_stage_4(finished_run):
    tmp, config, _ = finished_run
    out = Path(config["output_dir"])
    restored = np.asarray(Image.open(out / "stage_1_restore_output/restored_image/face.png"))
    final = np.asarray(Image.open(out / "final_output/face.png").convert("RGB"))
    assert restored.shape == final.shape  # 280x280 is already a multiple of 4 and 16... of 8
    assert np.abs(restored.astype(int) - final.astype(int)).max() > 0


def test_second_run_has_nothing_to_do(finished_run):
    tmp, config, _ = finished_run
    proc = run_snakemake(tmp / "work", config, "--dry-run")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_added_photo_runs_only_its_jobs(finished_run, tmp_path):
    tmp, config, _ = finished_run
    shutil.copytree(tmp, tmp_path / "copy", symlinks=True)
    copy = tmp_path / "copy"
    config = workflow_config(copy, face_jobs="per_face", with_scratch=True)
    with Image.open(Path(config["input_dir"]) / "face.png") as im:
        im.transpose(Image.FLIP_LEFT_RIGHT).save(Path(config["input_dir"]) / "new.png")
    proc = run_snakemake(copy / "work", config, "--dry-run")
    counts = dry_run_jobs(proc)
    assert counts.get("detect_scratches") == 1 and counts.get("restore_global") == 1, counts
    assert counts.get("blend_faces") == 1, counts
    assert counts.get("all") == 1


def test_touched_photo_reruns_only_its_chain(finished_run, tmp_path):
    tmp, config, _ = finished_run
    shutil.copytree(tmp, tmp_path / "copy", symlinks=True)
    copy = tmp_path / "copy"
    config = workflow_config(copy, face_jobs="per_face", with_scratch=True)
    later = time.time() + 5
    os.utime(Path(config["input_dir"]) / "no face.jpg", (later, later))
    proc = run_snakemake(copy / "work", config, "--dry-run")
    counts = dry_run_jobs(proc)
    assert counts.get("detect_scratches") == 1, counts
    assert counts.get("restore_global") == 1, counts
    assert counts.get("blend_faces") == 1, counts
    assert "enhance_face" not in counts  # the touched photo has no face; others untouched


def test_sigkill_midway_then_resume_equals_uninterrupted(finished_run, tmp_path):
    tmp, config_done, _ = finished_run
    reference = outputs(Path(config_done["output_dir"]))
    for delay in (4.0,):  # more kill points: test_atomic_resume.py
        run_dir = tmp_path / f"kill{delay}"
        make_tiny_photos(run_dir / "in")
        config = workflow_config(run_dir, face_jobs="per_face", with_scratch=True)
        (run_dir / "work").mkdir(parents=True)
        configfile = run_dir / "work" / "test-config.yaml"
        import yaml

        configfile.write_text(yaml.safe_dump(config))
        env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
        proc = subprocess.Popen(
            [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
             "--directory", str(run_dir / "work"), "--configfile", str(configfile),
             "--cores", "2"],
            cwd=run_dir / "work", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=env, start_new_session=True,
        )
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGKILL)  # the whole run, jobs included
        proc.wait()
        # a SIGKILLed Snakemake leaves its lock behind: the documented resume is unlock + rerun
        run_snakemake(run_dir / "work", config, "--unlock")
        run_snakemake(run_dir / "work", config)
        resumed = outputs(Path(config["output_dir"]))
        assert resumed.keys() == reference.keys()
        differing = [name for name in reference if reference[name] != resumed[name]]
        assert not differing, differing


def test_corrupt_photo_fails_alone(tmp_path):
    make_tiny_photos(tmp_path / "in")
    (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    config = workflow_config(tmp_path)
    proc = run_snakemake(tmp_path / "work", config, check=False)
    assert proc.returncode != 0
    out = Path(config["output_dir"])
    for stem in STEMS:
        assert (out / "final_output" / f"{stem}.png").is_file(), stem
    assert not (out / "final_output" / "broken.png").exists()
    assert "broken.png" in proc.stderr
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["counts"] == {**summary["counts"], "restored": 3, "failed": 1}
    reason = summary["photos"]["broken"]["reasons"][0]
    assert "broken.png" in reason


def test_duplicate_output_names_stop_before_any_work(tmp_path):
    make_tiny_photos(tmp_path / "in")
    shutil.copy(tmp_path / "in" / "face.png", tmp_path / "in" / "Face.JPG")
    config = workflow_config(tmp_path)
    proc = run_snakemake(tmp_path / "work", config, check=False)
    assert proc.returncode != 0
    assert "face.png" in proc.stderr and "Face.JPG" in proc.stderr
    assert not (Path(config["output_dir"]) / "stage_1_restore_output").exists()


def test_invalid_config_is_rejected(tmp_path):
    make_tiny_photos(tmp_path / "in")
    config = workflow_config(tmp_path, backend="magic")
    proc = run_snakemake(tmp_path / "work", config, check=False)
    assert proc.returncode != 0
    assert "backend" in proc.stderr


def test_pretrained_without_checkpoints_names_missing_files(tmp_path):
    make_tiny_photos(tmp_path / "in")
    config = workflow_config(tmp_path, backend="pretrained")
    proc = run_snakemake(tmp_path / "work", config, check=False)
    assert proc.returncode != 0
    assert "Global/checkpoints/restoration/VAE_A_quality/latest_net_G.pth" in proc.stderr
    assert not (Path(config["output_dir"]) / "stage_1_restore_output").exists()
