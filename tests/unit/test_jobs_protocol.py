"""The boundary between Snakemake and a job (oldphoto.jobs.protocol), both ends: what the plan
writes is what the job reads, typed; the environment; the outcome lines; and the entry point run
as the rules run it."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oldphoto import summary
from oldphoto.jobs import protocol
from oldphoto.mode import Mode

SRC = Path(__file__).resolve().parents[2] / "src"

BLEND = {"backend": "global=pretrained,face=classical", "face_blending": "adaptive",
         "final_size": "original", "mode": Mode(True, True), "test_mode": None,
         "stage1_stretch": "clamp", "face_network": None, "output_format": "same",
         "tone": "keep", "jpeg_quality": 80, "carry_metadata": False, "preview_width": 1200,
         "change_map_width": 900, "benchmarks": "out dir/it's/benchmarks"}


def command_line(task: str, image: str, values: dict, inputs=None, outputs=None) -> list[str]:
    """The argv a rule's shell line gives the entry point (common.smk's job_shell)."""
    line = (f"{protocol.file_arguments(inputs or {}, outputs or {})} "
            f"{protocol.image_argument(image)} {protocol.setting_arguments(task, values)}")
    return [task, f"rule={task}", "log=l.log", "threads=2", *shlex.split(line)]


def test_what_the_plan_writes_the_job_reads_back_typed():
    inputs = {"original": "in/a b.png", "enhanced": ["x/1.png", "x/it's.png"]}
    outputs = {"final": "out/a b.png"}
    env = {"OLDPHOTO_DEVICE": "cpu", "OLDPHOTO_MEMORY_BUDGET_MB": "500"}
    request = protocol.parse_command_line(
        command_line("blend_faces", "a b", BLEND, inputs, outputs), env)
    assert request["inputs"] == inputs and request["outputs"] == outputs
    assert request["image"] == "a b" and request["log"] == "l.log"
    assert request["rule"] == "blend_faces" and request["task"] == "blend_faces"
    # every value comes back with its type; None (does not apply) was left off the line
    assert protocol.read_settings("blend_faces", request["params"]) == BLEND
    assert "test_mode" not in request["params"] and "face_network" not in request["params"]
    assert request["params"]["carry_metadata"] == "false"  # the line's spelling, not "False"
    assert request["scheduling"] == {"device": "cpu", "jobs_per_gpu": 1,
                                     "max_image_pixels": None, "memory_budget_mb": 500,
                                     "worker_idle_seconds": 60.0, "workers": True, "threads": 2}


def test_one_name_from_config_to_the_task():
    """face_blending is face_blending on the command line and in the job's settings."""
    argv = command_line("blend_faces", "a", BLEND)
    assert "face_blending=adaptive" in argv and not any(a.startswith("blending=") for a in argv)
    assert protocol.read_settings("blend_faces", protocol.parse_command_line(argv, {})[
        "params"])["face_blending"] == "adaptive"


def test_bad_values_are_refused_at_both_ends():
    with pytest.raises(ValueError, match="carry_metadata"):
        protocol.setting_arguments("blend_faces", dict(BLEND, carry_metadata="True"))
    with pytest.raises(ValueError, match="jpeg_quality"):
        protocol.setting_arguments("blend_faces", dict(BLEND, jpeg_quality="80"))
    with pytest.raises(ValueError, match="face_blending"):
        protocol.setting_arguments("blend_faces", dict(BLEND, face_blending=None))
    with pytest.raises(KeyError, match="blending"):
        protocol.setting_arguments("blend_faces", dict(BLEND, blending="official"))
    texts = protocol.parse_command_line(command_line("blend_faces", "a", BLEND), {})["params"]
    for name, bad in (("carry_metadata", "True"), ("jpeg_quality", "-"), ("mode", "scratchy"),
                      ("face_blending", "poisson")):
        with pytest.raises(ValueError, match=name):
            protocol.read_settings("blend_faces", dict(texts, **{name: bad}))
    with pytest.raises(ValueError, match="tone"):
        protocol.read_settings("blend_faces", {k: v for k, v in texts.items() if k != "tone"})
    with pytest.raises(ValueError, match="brightness"):
        protocol.read_settings("blend_faces", dict(texts, brightness="3"))


def test_every_task_has_a_function_and_settings_named_apart_from_the_framework():
    from oldphoto.jobs.tasks import TASKS as FUNCTIONS

    assert set(FUNCTIONS) == set(protocol.TASKS)
    for task in protocol.TASKS.values():
        names = [s.name for s in task.settings]
        assert len(names) == len(set(names)), task.name
        assert not set(names) & set(protocol.FRAMEWORK_ARGUMENTS), task.name
    assert protocol.NETWORK_TASKS == {"detect_scratches", "restore_global", "enhance_face",
                                      "detect_and_enhance_faces"}


def test_images_keep_the_record_texts_of_their_format():
    """What stage 1-3 images record (oldphoto:settings) is a file format: names and texts
    as before the typed table (``-`` for "does not apply", ``auto`` for a triaged photo)."""
    assert protocol.image_record("detect_scratches",
                                 {"backend": "classical", "preview_width": 1200}) == {}
    assert protocol.image_record("restore_global", {
        "backend": "classical", "mode": Mode(True, False), "test_mode": None,
        "stage1_stretch": None, "triage": True}) == {
        "mode": "scratch", "stretch": "-", "test_mode": "-", "triage": "auto"}
    assert protocol.image_record("restore_global", {
        "backend": "pretrained", "mode": Mode(False, True), "test_mode": "Scale",
        "stage1_stretch": "official", "triage": False}) == {
        "mode": "quality+hr", "stretch": "official", "test_mode": "Scale", "triage": "-"}
    faces = {"face_size": 256, "landmarks": None, "faces": True, "face_detector": "cnn",
             "face_upsample": 1, "only_center_face": True, "max_faces": None,
             "backend": "classical", "face_network": None}
    assert protocol.image_record("detect_and_enhance_faces", faces) == {
        "face_size": "256", "faces": "cnn,upsample=1,center=yes,max=all", "landmarks": "-",
        "network": "-"}
    off = dict(faces, faces=False, face_detector=None, face_upsample=None,
               only_center_face=None, landmarks="/m/shape.dat", face_network="FaceSR_512")
    assert protocol.image_record("detect_and_enhance_faces", off) == {
        "face_size": "256", "faces": "no", "landmarks": "/m/shape.dat", "network": "FaceSR_512"}
    assert protocol.image_record("enhance_face", {"backend": "pretrained",
                                                  "face_network": "FaceSR_512"}) == {
        "network": "FaceSR_512"}


def test_the_final_records_its_settings_typed_under_the_record_names():
    assert protocol.recorded("blend_faces", BLEND) == {
        "blending": "adaptive", "final_size": "original", "mode": Mode(True, True),
        "test_mode": None, "stretch": "clamp", "face_network": None, "output_format": "same",
        "tone": "keep", "jpeg_quality": 80, "carry_metadata": False}


def test_scheduling_goes_to_the_environment_and_back():
    config = {"device": "cuda", "jobs_per_gpu": 2, "memory_budget_mb": 6000,
              "max_image_pixels": 10, "output_dir": "out", "workers": False,
              "worker_idle_seconds": 5, "face_blending": "official"}
    env = protocol.scheduling_environment(config)
    assert env == {"OLDPHOTO_DEVICE": "cuda", "OLDPHOTO_JOBS_PER_GPU": "2",
                   "OLDPHOTO_MAX_IMAGE_PIXELS": "10", "OLDPHOTO_MEMORY_BUDGET_MB": "6000",
                   "OLDPHOTO_WORKER_IDLE": "5", "OLDPHOTO_WORKERS": "0",
                   "OLDPHOTO_RUN_KEY": str(Path("out").resolve())}
    assert protocol.read_scheduling(env) == {
        "device": "cuda", "jobs_per_gpu": 2, "max_image_pixels": 10, "memory_budget_mb": 6000,
        "worker_idle_seconds": 5.0, "workers": False}
    for word, on in (("1", True), ("true", True), ("0", False), ("no", False), ("OFF", False),
                     ("False", False), ("", True)):
        assert protocol.read_scheduling({"OLDPHOTO_WORKERS": word})["workers"] is on, word
    with pytest.raises(ValueError, match="OLDPHOTO_JOBS_PER_GPU='two': not a valid jobs_per_gpu"):
        protocol.read_scheduling({"OLDPHOTO_JOBS_PER_GPU": "two"})


def test_outcome_lines_are_read_back_by_the_run_summary(tmp_path):
    failed = protocol.failed_line("restore_global", "a b", "bad image: in/a b.png: truncated")
    assert failed == "FAILED restore_global a b :: bad image: in/a b.png: truncated"
    retried = protocol.retried_line("blend_faces", "c", "worker died: killed by signal 9")
    assert protocol.read_outcome_line(failed) == (
        "FAILED", "restore_global", "a b", "bad image: in/a b.png: truncated")
    assert protocol.read_outcome_line("[ 1.00s] done") is None
    logs = tmp_path / "logs"
    for rule, stem, line in (("restore_global", "a b", failed), ("blend_faces", "c", retried)):
        (logs / rule).mkdir(parents=True, exist_ok=True)
        protocol.append_to_log(str(logs / rule / f"{stem}.log"), line)
    assert summary.failure_reasons(logs) == {"a b": ["bad image: in/a b.png: truncated"]}
    assert summary.retried_jobs(logs, since=time.time() - 60) == {
        "c": ["blend_faces: worker died: killed by signal 9; retried once in a fresh worker"]}


def test_the_entry_point_imports_nothing_heavy():
    code = ("import sys, oldphoto.jobs.entry, oldphoto.jobs.protocol; "
            "print(sorted({'numpy', 'torch', 'dlib', 'cv2', 'PIL', 'inspect', 'dataclasses'} "
            "& set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=dict(os.environ, PYTHONPATH=str(SRC)))
    assert out.stdout.strip() == "[]"


def run_entry(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(SRC), OLDPHOTO_WORKERS="0")
    env.pop("OLDPHOTO_CONSOLE", None)
    return subprocess.run([sys.executable, "-m", "oldphoto.jobs", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_a_job_runs_from_its_command_line_and_its_images_record_their_settings(tmp_path):
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(tmp_path / "a b.png")
    values = {"backend": "classical", "mode": Mode(False, False), "test_mode": None,
              "stage1_stretch": None, "triage": False}
    outputs = {name: str(tmp_path / f"{name}.png") for name in ("origin", "input_image",
                                                                 "restored")}
    argv = command_line("restore_global", "a b", values, {"image": str(tmp_path / "a b.png")},
                        outputs)
    argv[2] = f"log={tmp_path / 'job.log'}"
    proc = run_entry(argv, tmp_path)
    assert proc.returncode == 0, proc.stderr
    with Image.open(outputs["restored"]) as image:
        assert image.size == (32, 24)
        assert json.loads(image.text["oldphoto:settings"]) == {
            "mode": "quality", "stretch": "-", "test_mode": "-", "triage": "-"}
        assert image.text["oldphoto:backend"] == "classical"
    # a broken photo: one FAILED line in the log and on stderr, exit status 1
    (tmp_path / "broken.png").write_bytes(b"not a png")
    argv = command_line("restore_global", "broken", values,
                        {"image": str(tmp_path / "broken.png")}, outputs)
    argv[2] = f"log={tmp_path / 'broken.log'}"
    proc = run_entry(argv, tmp_path)
    assert proc.returncode == 1
    [line] = [x for x in (tmp_path / "broken.log").read_text().splitlines()
              if x.startswith("FAILED ")]
    assert line.startswith(f"FAILED restore_global broken :: bad image: {tmp_path}/broken.png")
    assert line in proc.stderr
    # a setting the task does not declare fails the job with the reason, not a traceback
    proc = run_entry(["restore_global", "rule=restore_global", f"log={tmp_path / 'x.log'}",
                      "image=a", "blending=official"], tmp_path)
    assert proc.returncode == 1 and "unknown setting(s) blending" in proc.stderr
