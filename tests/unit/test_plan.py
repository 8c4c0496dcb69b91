"""The run plan (oldphoto.plan) without Snakemake: each photo's settings, the files its jobs
read, the networks each stage loads for the backend, and each job's settings."""

from __future__ import annotations

import inspect
import shlex
from pathlib import Path

import pytest
import yaml
from PIL import Image

from conftest import REPO, workflow_config
from oldphoto.checkpoints import official_path
from oldphoto.errors import CheckpointError
from oldphoto.jobs import protocol
from oldphoto.mode import Mode
from oldphoto.plan import build_plan
from oldphoto.plan.backend import resolve_backend

DEFAULTS = yaml.safe_load((REPO / "config" / "config.yaml").read_text(encoding="utf-8"))
GLOBAL = ["detection", "VAE_A_quality", "mapping_quality", "VAE_B_quality", "mapping_scratch",
          "VAE_B_scratch", "mapping_Patch_Attention"]
FACE = ["Setting_9_epoch_100", "FaceSR_512"]


def full_config(tmp: Path, **overrides) -> dict:
    """What Snakemake hands the Snakefile: config.yaml's defaults under a test's config."""
    return {**DEFAULTS, **workflow_config(tmp), **overrides}


def photos(tmp: Path, names: list[str], sheet: str | None = None) -> dict:
    (tmp / "in").mkdir()
    for name in names:
        Image.new("RGB", (8, 8)).save(tmp / "in" / name)
    if sheet is None:
        return {}
    (tmp / "sheet.tsv").write_text("photo\twith_scratch\thr\tfaces\tface_blending\n" + sheet,
                                   encoding="utf-8")
    return {"photo_sheet": str(tmp / "sheet.tsv")}


def checkpoints(tmp: Path, names: list[str]) -> str:
    """Official checkpoint files (empty: the plan only looks for them)."""
    for name in names:
        path = official_path(tmp / "checkpoints", name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    return str(tmp / "checkpoints")


def test_photos_without_a_sheet_row_share_one_plan(tmp_path):
    sheet = photos(tmp_path, ["a.png", "b.png", "c.png"], "c.png\tauto\t\t\tadaptive\n")
    plan = build_plan(full_config(tmp_path, **sheet))
    assert plan.photo("a") is plan.photo("b") is not plan.photo("c")
    assert plan.photo("a").settings is plan.settings["b"]
    assert plan.photo("a").task_settings("blend_faces") is plan.photo("b").task_settings(
        "blend_faces")  # computed once for both
    assert plan.photo("c").task_settings("blend_faces")["face_blending"] == "adaptive"
    assert plan.photo("a").task_settings("blend_faces")["face_blending"] == "official"


def test_one_photos_setting_changes_only_its_jobs_arguments(tmp_path):
    sheet = photos(tmp_path, ["a.png", "b.png"], "b.png\t\t\t\tofficial\n")
    before = build_plan(full_config(tmp_path, **sheet))
    (tmp_path / "sheet.tsv").write_text("photo\twith_scratch\thr\tfaces\tface_blending\n"
                                        "b.png\t\t\t\tadaptive\n", encoding="utf-8")
    after = build_plan(full_config(tmp_path, **sheet))
    for task in ("restore_global", "detect_and_enhance_faces", "blend_faces"):
        job_before, job_after = before.job_params(task), after.job_params(task)
        assert job_before({"image": "a"}) == job_after({"image": "a"}), task
        changed = job_before({"image": "b"}) != job_after({"image": "b"})
        assert changed == (task == "blend_faces"), task
    assert "face_blending=adaptive" in after.job_params("blend_faces")({"image": "b"})


def test_a_jobs_arguments_read_back_as_its_settings(tmp_path):
    sheet = photos(tmp_path, ["a b.png"], "a b.png\tauto\tyes\tno\t\n")
    plan = build_plan(full_config(tmp_path, **sheet))
    for task in ("detect_scratches", "triage_scratches", "restore_global", "blend_faces",
                 "detect_and_enhance_faces"):
        job = plan.job_params(task)
        assert list(inspect.signature(job).parameters) == ["wildcards"]
        argv = [task, *shlex.split(job({"image": "a b"}))]
        request = protocol.parse_command_line(argv, {})
        assert request["image"] == "a b"
        assert protocol.read_settings(task, request["params"]) == \
            plan.photo("a b").task_settings(task), task


def test_what_auto_means_for_the_files_stage_1_and_stage_4_read(tmp_path):
    sheet = photos(tmp_path, ["auto.png", "scratch.png", "plain.png"],
                   "auto.png\tauto\t\t\t\nscratch.png\tyes\t\t\t\n")
    plan = build_plan(full_config(tmp_path, **sheet))
    layout = plan.layout
    assert plan.stage1_inputs("auto") == {
        "image": layout.scratch_input("auto"), "mask": layout.scratch_mask("auto"),
        "original": str(tmp_path / "in" / "auto.png"), "triage": layout.triage("auto")}
    assert plan.stage1_inputs("scratch") == {"image": layout.scratch_input("scratch"),
                                             "mask": layout.scratch_mask("scratch")}
    assert plan.stage1_inputs("plain") == {"image": str(tmp_path / "in" / "plain.png")}
    restore = {stem: plan.photo(stem).task_settings("restore_global")
               for stem in ("auto", "scratch", "plain")}
    assert [(s["mode"], s["triage"]) for s in restore.values()] == [
        (Mode(True, False), True), (Mode(True, False), False), (Mode(False, False), False)]
    assert plan.triage_inputs("auto") == {"triage": layout.triage("auto")}
    assert plan.triage_inputs("scratch") == {} == plan.change_map_inputs("plain")
    assert plan.change_map_inputs("auto") == {"mask": layout.scratch_mask("auto")}


def test_networks_of_each_stage_follow_the_backend_of_their_group(tmp_path):
    sheet = photos(tmp_path, ["auto.png", "scratch.png", "plain.png"],
                   "auto.png\tauto\t\t\t\nscratch.png\tyes\tyes\t\t\n")
    # only the face checkpoints: auto sends the global group to the classical backend
    config = full_config(tmp_path, backend="auto", checkpoints_dir=checkpoints(tmp_path, FACE),
                         **sheet)
    plan = build_plan(config)
    assert dict(plan.backend) == {"global": "classical", "face": "pretrained"}
    assert plan.models("auto", "stage1") == {} == plan.models("auto", "detector")
    assert plan.models("scratch", "face") == {"FaceSR_512": plan.cache_file("FaceSR_512")}
    assert plan.checkpoint_records("plain") == [plan.cache_file("Setting_9_epoch_100") + ".json"]
    restore = plan.photo("plain").task_settings("restore_global")
    assert restore["backend"] == "classical" and restore["test_mode"] is None
    assert restore["stage1_stretch"] is None
    faces = plan.photo("scratch").task_settings("detect_and_enhance_faces")
    assert faces["backend"] == "pretrained" and faces["face_network"] == "FaceSR_512"
    assert plan.photo("plain").task_settings("blend_faces")["backend"] == (
        "global=classical,face=pretrained")
    assert plan.network_threads("global") == 1
    assert plan.network_threads("face") == config["threads"]

    # every checkpoint: the official networks everywhere
    config["checkpoints_dir"] = checkpoints(tmp_path, GLOBAL + FACE)
    plan = build_plan(config)
    assert dict(plan.backend) == {"global": "pretrained", "face": "pretrained"}
    # a photo whose triage decides loads both paths' stage-1 networks
    assert list(plan.models("auto", "stage1")) == [
        "VAE_A_quality", "mapping_scratch", "VAE_B_scratch", "mapping_quality", "VAE_B_quality"]
    assert list(plan.models("auto", "detector")) == ["detection"]
    assert list(plan.models("plain", "detector")) == []
    assert plan.checkpoint_records("scratch") == [plan.cache_file(name) + ".json" for name in (
        "detection", "VAE_A_quality", "mapping_Patch_Attention", "VAE_B_scratch", "FaceSR_512")]
    # the quality path's geometry applies to the quality path and to auto's possible one
    test_modes = {stem: plan.photo(stem).task_settings("restore_global")["test_mode"]
                  for stem in ("auto", "scratch", "plain")}
    assert test_modes == {"auto": "Full", "scratch": None, "plain": "Full"}


def test_pretrained_without_its_checkpoints_names_every_missing_file(tmp_path):
    sheet = photos(tmp_path, ["a.png"], "a.png\tyes\t\t\t\n")
    config = full_config(tmp_path, backend="pretrained",
                         checkpoints_dir=checkpoints(tmp_path, ["VAE_A_quality"]), **sheet)
    with pytest.raises(CheckpointError) as caught:
        build_plan(config)
    for name in ("detection", "mapping_scratch", "VAE_B_scratch", "Setting_9_epoch_100"):
        assert str(official_path(tmp_path / "checkpoints", name)) in str(caught.value)
    assert str(official_path(tmp_path / "checkpoints", "mapping_quality")) not in str(
        caught.value)
    # the run's own settings decide without photos (an empty shard)
    assert dict(resolve_backend(dict(config, backend="classical"))) == {
        "global": "classical", "face": "classical"}


def test_final_extensions_and_scheduling_settings_stay_out_of_every_job(tmp_path):
    (tmp_path / "in").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "in" / "scan.TIF")
    Image.new("RGB", (8, 8)).save(tmp_path / "in" / "b.png")
    plan = build_plan(full_config(tmp_path, output_format="same"))
    assert plan.final_ext == {"scan": "tif", "b": "png"}
    assert plan.finals() == [plan.layout.final("b", "png"), plan.layout.final("scan", "tif")]
    scheduling = {s.key for s in protocol.SCHEDULING} | {"threads", "gpu_per_job"}
    for task in ("detect_scratches", "triage_scratches", "restore_global", "detect_faces",
                 "enhance_face", "detect_and_enhance_faces", "blend_faces"):
        assert not scheduling & set(plan.photo("b").task_settings(task)), task
