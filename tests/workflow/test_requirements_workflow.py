"""A missing library, program or model file stops ``snakemake`` and ``oldphoto`` before any job.

Things are hidden the way a user's machine lacks them: a Python library by a ``sitecustomize``
on ``PYTHONPATH`` that blocks its import in every process of the run (Snakemake, jobs, warm
workers: ``find_spec`` then reports it missing, as for a library that is not installed), a
program by a ``PATH`` without it, a model file by pointing the config at a path that does not
exist.  The library side is in tests/unit/test_requirements.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, make_tiny_photos, run_snakemake, workflow_config

pytestmark = pytest.mark.workflow

SITECUSTOMIZE = """\
import sys
for name in {modules!r}:
    sys.modules[name] = None  # import fails, importlib.util.find_spec reports it missing
"""


def hiding(tmp_path: Path, *modules: str) -> dict[str, str]:
    """Environment for a run in which ``modules`` are not importable."""
    shadow = tmp_path / "shadow"
    shadow.mkdir(exist_ok=True)
    (shadow / "sitecustomize.py").write_text(SITECUSTOMIZE.format(modules=list(modules)),
                                             encoding="utf-8")
    return {"PYTHONPATH": os.pathsep.join([str(shadow), str(REPO / "src")])}


def output(proc: subprocess.CompletedProcess) -> str:
    """What Snakemake printed (its error log goes to stdout or stderr, depending on the run)."""
    return proc.stdout + proc.stderr


def assert_nothing_ran(config: dict) -> None:
    out = Path(config["output_dir"])
    assert not out.exists(), sorted(p.name for p in out.iterdir())


def oldphoto(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "oldphoto"
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "oldphoto.cli"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **env})


def test_snakemake_refuses_a_hidden_library_before_any_job_also_in_a_dry_run(tmp_path):
    make_tiny_photos(tmp_path / "in")
    config = workflow_config(tmp_path)
    env = hiding(tmp_path, "dlib")
    for args in ((), ("-n",)):
        proc = run_snakemake(tmp_path / "work", config, *args, check=False, env=env)
        text = output(proc)
        assert proc.returncode == 1, text[-3000:]
        assert "missing requirement: 1 thing(s) this run needs are not installed" in text
        assert "Python library dlib (module dlib), needed for face detection (faces: true)" \
            in text
        assert f"{sys.executable} -m pip install 'dlib-bin>=19.24'" in text
        assert "Building DAG of jobs" not in text
        assert_nothing_ran(config)


def test_snakemake_refuses_a_missing_landmark_model(tmp_path):
    make_tiny_photos(tmp_path / "in")
    missing = tmp_path / "models" / "sp68.dat"
    config = workflow_config(tmp_path, landmarks=str(missing))
    proc = run_snakemake(tmp_path / "work", config, check=False)
    assert proc.returncode == 1
    assert f"dlib's 68-point landmark model ({missing}), needed for face landmarks" \
        in output(proc)
    assert "shape_predictor_68_face_landmarks.dat" in output(proc)  # the fix names the file
    assert_nothing_ran(config)


def test_snakemake_refuses_without_the_metadata_library_unless_metadata_is_off(tmp_path):
    make_tiny_photos(tmp_path / "in")
    config = workflow_config(tmp_path)
    env = hiding(tmp_path, "exiv2")
    proc = run_snakemake(tmp_path / "work", config, check=False, env=env)
    assert proc.returncode == 1
    assert ("Python library exiv2 (module exiv2), needed for the archival metadata of every "
            "output") in output(proc)
    assert "pip install 'exiv2>=0.19,<0.20'" in output(proc)
    assert_nothing_ran(config)
    # carry_metadata: false needs no metadata library: the same environment builds the DAG
    quiet = run_snakemake(tmp_path / "work", {**config, "carry_metadata": False}, "-n",
                          check=False, env=env)
    assert quiet.returncode == 0, output(quiet)[-3000:]
    assert "missing requirement" not in output(quiet)


def test_a_run_without_faces_needs_no_face_library(tmp_path):
    """dlib, scikit-image and face_recognition_models hidden: faces: false restores every photo
    (the check asks only for what the settings use)."""
    photos = make_tiny_photos(tmp_path / "in")
    config = workflow_config(tmp_path, faces=False)
    env = hiding(tmp_path, "dlib", "skimage", "face_recognition_models")
    proc = run_snakemake(tmp_path / "work", config, check=False, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads((Path(config["output_dir"]) / "run_summary.json").read_text())
    assert summary["counts"]["restored"] == len(photos) and summary["counts"]["failed"] == 0


def test_oldphoto_refuses_before_writing_anything(tmp_path):
    make_tiny_photos(tmp_path / "in")
    out = tmp_path / "out"
    args = ("--input_folder", str(tmp_path / "in"), "--output_folder", str(out), "--GPU", "-1",
            "--backend", "classical", "--cores", "2")
    proc = oldphoto(*args, env=hiding(tmp_path, "skimage"))
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.startswith("oldphoto: error: missing requirement: 1 thing(s)")
    assert "Python library scikit-image (module skimage)" in proc.stderr
    assert "pip install 'scikit-image>=0.22'" in proc.stderr
    assert not out.exists()

    proc = oldphoto(*args, "--dry-run", env=hiding(tmp_path, "exiv2"))
    assert proc.returncode == 2 and "Python library exiv2" in proc.stderr
    assert not out.exists()


def test_oldphoto_leaves_a_config_given_to_snakemake_to_the_snakefile(tmp_path):
    """``-- --config carry_metadata=false``: the command cannot know the run's settings, so the
    Snakefile decides (no metadata library needed then); with metadata on, the Snakefile
    refuses."""
    make_tiny_photos(tmp_path / "in")
    out = tmp_path / "out"
    args = ("--input_folder", str(tmp_path / "in"), "--output_folder", str(out), "--GPU", "-1",
            "--backend", "classical", "--dry-run")
    env = hiding(tmp_path, "exiv2")
    proc = oldphoto(*args, "--", "--config", "carry_metadata=false", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = oldphoto(*args, "--", "--config", "carry_metadata=true", env=env)
    assert proc.returncode == 1 and "Python library exiv2" in output(proc)
    assert not (out / "final_output").exists() and not (out / "stage_1_restore_output").exists()
