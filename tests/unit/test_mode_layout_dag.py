"""The middle layer without Snakemake: a photo's Mode, the output Layout, DAG helpers, the job
client's arguments (the stale-lock check: test_locks.py)."""

from __future__ import annotations

import inspect
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from oldphoto import dag, job
from oldphoto.errors import ConfigError
from oldphoto.layout import Layout
from oldphoto.mode import ALL_MODES, Mode


def test_mode_table():
    """What each of the four modes implies, as the official code does it."""
    rows = {m.key: (m.stage1_networks, m.mask_dilation, m.face_size, m.face_network,
                    m.stage1_path) for m in ALL_MODES}
    assert rows == {
        "quality": (("VAE_A_quality", "mapping_quality", "VAE_B_quality"), 0, 256,
                    "Setting_9_epoch_100", "quality"),
        "quality+hr": (("VAE_A_quality", "mapping_quality", "VAE_B_quality"), 0, 512,
                       "FaceSR_512", "quality"),
        "scratch": (("VAE_A_quality", "mapping_scratch", "VAE_B_scratch"), 0, 256,
                    "Setting_9_epoch_100", "scratch"),
        "scratch+hr": (("VAE_A_quality", "mapping_Patch_Attention", "VAE_B_scratch"), 3, 512,
                       "FaceSR_512", "hr"),
    }
    assert Mode(True, True).networks() == ["detection", "VAE_A_quality",
                                           "mapping_Patch_Attention", "VAE_B_scratch",
                                           "FaceSR_512"]
    for mode in ALL_MODES:
        assert Mode.from_key(mode.key) == mode
    with pytest.raises(ValueError):
        Mode.from_key("scratchy")


def test_mode_is_what_the_checkpoint_registry_needs():
    """Every network a mode names is an official checkpoint the project can build."""
    from oldphoto.checkpoints import OFFICIAL_FILES

    for mode in ALL_MODES:
        assert set(mode.networks()) <= set(OFFICIAL_FILES)


def test_layout_is_the_official_layout():
    layout = Layout("out/")
    assert layout.restored("{image}") == "out/stage_1_restore_output/restored_image/{image}.png"
    assert layout.scratch_mask("a") == "out/stage_1_restore_output/masks/mask/a.png"
    assert layout.faces_record("a") == "out/stage_2_detection_output/a/faces.json"
    assert layout.enhanced_face("a", 2) == "out/stage_3_face_output/each_img/a_2.png"
    assert layout.enhanced_dir("a") == "out/stage_3_face_output/by_photo/a"
    assert layout.final("a") == "out/final_output/a.png"
    assert layout.preview("faces", "a") == "out/report/faces/a/a.faces.jpg"
    assert layout.face_strip_dir("a") == "out/report/faces/a"
    assert layout.summary == "out/run_summary.json"


def test_shards_partition_the_photos_stably():
    stems = [f"scan {i:05d}" for i in range(2000)]
    images = {s: Path(f"{s}.png") for s in stems}
    parts = [dag.select_shard(images, (k, 7)) for k in range(1, 8)]
    assert sum(len(p) for p in parts) == len(stems)
    assert set().union(*map(set, parts)) == set(stems)
    assert all(200 < len(p) < 400 for p in parts)  # roughly even
    # adding photos never moves one to another shard
    more = dict(images, **{f"new {i}": Path(f"new {i}.png") for i in range(100)})
    assert set(dag.select_shard(images, (3, 7))) <= set(dag.select_shard(more, (3, 7)))
    assert dag.parse_shard("3/10") == (3, 10) and dag.parse_shard(None) is None
    for bad in ("0/10", "11/10", "a/b", "3"):
        with pytest.raises(ConfigError):
            dag.parse_shard(bad)
    assert dag.manifest_name("3/10") == "inputs.shard-3of10.json"


def test_manifest_round_trip(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.png", "b c.JPG", ".DS_Store"):
        (folder / name).write_bytes(b"x")
    try:  # a Latin-1 file name: not UTF-8, a surrogate escape in Python
        (folder / os.fsdecode(b"caf\xe9.png")).write_bytes(b"x")
    except OSError:
        pass
    inputs = dag.discover_inputs(folder)
    manifest = tmp_path / "m.json"
    dag.write_manifest(manifest, folder, inputs)
    again = dag.read_manifest(manifest, folder)
    assert again.images == inputs.images and again.skipped == inputs.skipped
    assert dag.read_manifest(manifest, tmp_path) is None  # another input folder
    config = {"input_dir": str(folder), "shard": None}
    assert dag.load_inputs(config, manifest, reuse_manifest=True).images == inputs.images


def test_scheduling_settings_go_to_the_environment_not_params():
    env = dag.scheduling_environment({"device": "cuda", "jobs_per_gpu": 2, "memory_budget_mb": 6000,
                                      "max_image_pixels": 10, "output_dir": "out",
                                      "workers": False, "worker_idle_seconds": 5})
    assert env["OLDPHOTO_DEVICE"] == "cuda" and env["OLDPHOTO_JOBS_PER_GPU"] == "2"
    assert env["OLDPHOTO_MEMORY_BUDGET_MB"] == "6000" and env["OLDPHOTO_WORKERS"] == "0"
    assert env["OLDPHOTO_WORKER_IDLE"] == "5"


def test_job_arguments_round_trip_through_the_client(monkeypatch):
    inputs = {"image": "in/a b.png", "enhanced": ["x/1.png", "x/it's.png"]}
    outputs = {"final": "out/a b.png"}
    job_entry = dag.job_params({"blending": "official", "title": lambda wc: f"{wc['image']}'s",
                                "size": 512})
    line = f'{dag.job_arguments(inputs, outputs)} {job_entry({"image": "a b"})}'
    argv = ["blend_faces", "rule=blend_faces", "log=l.log", "threads=2", *shlex.split(line)]
    monkeypatch.setenv("OLDPHOTO_DEVICE", "cpu")
    monkeypatch.setenv("OLDPHOTO_MEMORY_BUDGET_MB", "500")
    request = job.parse_args(argv)
    assert request["inputs"] == inputs and request["outputs"] == outputs
    assert request["params"] == {"blending": "official", "title": "a b's", "size": "512"}
    assert request["settings"] == {"threads": 2, "device": "cpu", "memory_budget_mb": "500"}
    assert request["image"] == "a b" and request["log"] == "l.log"
    # another wildcard names the job (prepare_checkpoint: the network)
    named = dag.job_params({}, wildcard="name")({"name": "face_512"})
    assert job.parse_args(["t", *shlex.split(named)])["image"] == "face_512"
    # a function of the wildcards only: Snakemake reruns a job when its value changes (it leaves
    # functions of input or output out of that comparison)
    assert list(inspect.signature(job_entry).parameters) == ["wildcards"]


def test_job_client_imports_nothing_heavy():
    code = ("import sys, oldphoto.job, oldphoto.dag, oldphoto.layout, oldphoto.mode; "
            "heavy = {'numpy', 'torch', 'dlib', 'cv2', 'PIL'} & set(sys.modules); print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=dict(os.environ, PYTHONPATH=str(Path(__file__)
                                                                          .parents[2] / "src")))
    assert out.stdout.strip() == "set()"
