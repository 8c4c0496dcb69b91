"""The middle layer without Snakemake: a photo's Mode, the output Layout, a run's photos (shards,
the manifest).  The job's command line: test_jobs_protocol.py; the run plan: test_plan.py (the
stale-lock check: test_locks.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from oldphoto import inputs as run_inputs
from oldphoto.errors import ConfigError
from oldphoto.layout import Layout
from oldphoto.mode import ALL_MODES, Mode, StageNetworks


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
    assert Mode(True, True).networks() == StageNetworks(
        ("detection",), ("VAE_A_quality", "mapping_Patch_Attention", "VAE_B_scratch"),
        ("FaceSR_512",))
    assert Mode(False, False).networks().all == ("VAE_A_quality", "mapping_quality",
                                                 "VAE_B_quality", "Setting_9_epoch_100")
    # a photo whose triage picks its path at run time loads both paths' stage-1 networks
    assert Mode(True, False).networks(either_path=True) == StageNetworks(
        ("detection",), ("VAE_A_quality", "mapping_scratch", "VAE_B_scratch", "mapping_quality",
                         "VAE_B_quality"), ("Setting_9_epoch_100",))
    assert Mode(True, True).networks().group("global") == (
        "detection", "VAE_A_quality", "mapping_Patch_Attention", "VAE_B_scratch")
    assert Mode(True, True).networks().group("face") == ("FaceSR_512",)
    for mode in ALL_MODES:
        assert Mode.from_key(mode.key) == mode
    with pytest.raises(ValueError):
        Mode.from_key("scratchy")


def test_mode_is_what_the_checkpoint_registry_needs():
    """Every network a mode names is an official checkpoint the project can build."""
    from oldphoto.checkpoints import OFFICIAL_FILES

    for mode in ALL_MODES:
        assert set(mode.networks(either_path=True).all) <= set(OFFICIAL_FILES)


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
    parts = [run_inputs.select_shard(images, (k, 7)) for k in range(1, 8)]
    assert sum(len(p) for p in parts) == len(stems)
    assert set().union(*map(set, parts)) == set(stems)
    assert all(200 < len(p) < 400 for p in parts)  # roughly even
    # adding photos never moves one to another shard
    more = dict(images, **{f"new {i}": Path(f"new {i}.png") for i in range(100)})
    assert set(run_inputs.select_shard(images, (3, 7))) <= set(run_inputs.select_shard(more, (3, 7)))
    assert run_inputs.parse_shard("3/10") == (3, 10) and run_inputs.parse_shard(None) is None
    for bad in ("0/10", "11/10", "a/b", "3"):
        with pytest.raises(ConfigError):
            run_inputs.parse_shard(bad)
    assert run_inputs.manifest_name("3/10") == "inputs.shard-3of10.json"


def test_manifest_round_trip(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.png", "b c.JPG", ".DS_Store"):
        (folder / name).write_bytes(b"x")
    try:  # a Latin-1 file name: not UTF-8, a surrogate escape in Python
        (folder / os.fsdecode(b"caf\xe9.png")).write_bytes(b"x")
    except OSError:
        pass
    inputs = run_inputs.discover_inputs(folder)
    manifest = tmp_path / "m.json"
    run_inputs.write_manifest(manifest, folder, inputs)
    again = run_inputs.read_manifest(manifest, folder)
    assert again.images == inputs.images and again.skipped == inputs.skipped
    assert run_inputs.read_manifest(manifest, tmp_path) is None  # another input folder
    config = {"input_dir": str(folder), "shard": None}
    (folder / "added later.png").write_bytes(b"x")  # the manifest is read, not the folder
    assert run_inputs.load_folder(config, manifest, reuse_manifest=True).images == inputs.images
    assert "added later" in run_inputs.load_folder(config, manifest, reuse_manifest=False).images
