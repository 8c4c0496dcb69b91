"""The workflow with the official networks (recipe weights in the official file layout).

The recipe weights are deterministic stand-ins with the exact layout and compute of the official
checkpoints; their restorations are noise, so these tests check the wiring: the workflow's files
equal what the library computes from the same checkpoints, and the face networks are used when
only the face checkpoints are present (backend auto decides per checkpoint group).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import make_tiny_photos, run_snakemake, workflow_config
from oldphoto.testing.recipe import recipe_network

pytestmark = pytest.mark.workflow


def load(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_pretrained_quality_path_equals_library(tmp_path, recipe_checkpoints):
    from oldphoto import restore

    make_tiny_photos(tmp_path / "in")
    for extra in ("no face.jpg", "scratched.png"):
        (tmp_path / "in" / extra).unlink()
    config = workflow_config(tmp_path, face_jobs="per_face", backend="pretrained",
                             checkpoints_dir=str(recipe_checkpoints), threads=2)
    proc = run_snakemake(tmp_path / "work", config)
    out = Path(config["output_dir"])
    restored = load(out / "stage_1_restore_output/restored_image/face.png")
    with Image.open(out / "final_output/face.png") as im:
        assert im.text["oldphoto:backend"] == "pretrained"
    # the cache was built once per checkpoint and verified
    for name in ("VAE_A_quality", "mapping_quality", "VAE_B_quality"):
        assert (Path(config["cache_dir"]) / f"{name}.safetensors").is_file()
    generator = restore.global_generator(recipe_network("VAE_A_quality"),
                                         recipe_network("mapping_quality"),
                                         recipe_network("VAE_B_quality"))
    expected = restore.restore_image(load(tmp_path / "in" / "face.png"), generator)
    assert np.array_equal(restored, expected.restored)
    assert "backend pretrained" in proc.stderr


def test_auto_with_face_checkpoints_only_uses_the_face_network(tmp_path, recipe_checkpoints):
    from oldphoto import enhance

    only_faces = tmp_path / "checkpoints"
    src = recipe_checkpoints / "Face_Enhancement/checkpoints/Setting_9_epoch_100"
    shutil.copytree(src, only_faces / "Face_Enhancement/checkpoints/Setting_9_epoch_100")
    make_tiny_photos(tmp_path / "in")
    (tmp_path / "in" / "no face.jpg").unlink()
    config = workflow_config(tmp_path, face_jobs="per_face", backend="auto", checkpoints_dir=str(only_faces),
                             threads=2)
    proc = run_snakemake(tmp_path / "work", config)
    assert "CLASSICAL for the global networks" in proc.stderr
    out = Path(config["output_dir"])
    record = json.loads((out / "stage_2_detection_output/face/faces.json").read_text())
    assert len(record["faces"]) == 1
    aligned = load(out / "stage_2_detection_output/face/face_1.png")
    enhanced = load(out / "stage_3_face_output/each_img/face_1.png")
    expected = enhance.enhance_face(aligned, recipe_network("Setting_9_epoch_100"))
    assert np.array_equal(enhanced, expected)
    log = (out / "logs/enhance_face/face_1.log").read_text()
    assert "loaded Setting_9_epoch_100" in log and "device: cpu" in log
    with Image.open(out / "final_output/face.png") as im:
        assert im.text["oldphoto:backend"] == "global=classical,face=pretrained"
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["backends"] == {"global": "classical", "face": "pretrained"}
    assert summary["counts"]["with_faces_enhanced"] == 1


def test_pretrained_scratch_path_runs(tmp_path, recipe_checkpoints):
    from oldphoto import restore, scratch

    make_tiny_photos(tmp_path / "in")
    for extra in ("no face.jpg", "face.png"):
        (tmp_path / "in" / extra).unlink()
    config = workflow_config(tmp_path, backend="pretrained", with_scratch=True,
                             checkpoints_dir=str(recipe_checkpoints), threads=2)
    run_snakemake(tmp_path / "work", config)
    out = Path(config["output_dir"])
    photo = load(tmp_path / "in" / "scratched.png")
    rgb16, mask = scratch.detect_scratches(photo, recipe_network("detection"))
    assert np.array_equal(load(out / "stage_1_restore_output/masks/input/scratched.png"), rgb16)
    assert np.array_equal(load(out / "stage_1_restore_output/masks/mask/scratched.png")[..., 0],
                          mask)
    generator = restore.global_generator(recipe_network("VAE_A_quality"),
                                         recipe_network("mapping_scratch"),
                                         recipe_network("VAE_B_scratch"))
    expected = restore.restore_image(rgb16, generator, mask=mask)
    restored = load(out / "stage_1_restore_output/restored_image/scratched.png")
    assert np.array_equal(restored, expected.restored)


def test_face_jobs_per_image_equals_per_face_with_one_model_load(tmp_path, recipe_checkpoints):
    """face_jobs: per_image enhances all faces of a photo in one job (one checkpoint load) and
    gives the very same faces and final photo as one job per face."""
    only_faces = tmp_path / "checkpoints"
    src = recipe_checkpoints / "Face_Enhancement/checkpoints/Setting_9_epoch_100"
    shutil.copytree(src, only_faces / "Face_Enhancement/checkpoints/Setting_9_epoch_100")
    made = make_tiny_photos(tmp_path / "tiny")
    (tmp_path / "in").mkdir()
    with Image.open(made["face"]) as im:  # two faces: the photo and its mirror image
        face = im.convert("RGB")
        pair = Image.new("RGB", (face.width * 2, face.height))
        pair.paste(face, (0, 0))
        pair.paste(face.transpose(Image.FLIP_LEFT_RIGHT), (face.width, 0))
        pair.save(tmp_path / "in" / "pair.png")

    finals, logs = {}, {}
    for mode in ("per_face", "per_image"):
        config = workflow_config(tmp_path / mode, backend="auto", face_jobs=mode, threads=2,
                                 checkpoints_dir=str(only_faces), input_dir=str(tmp_path / "in"),
                                 cache_dir=str(tmp_path / "cache"))
        run_snakemake(tmp_path / mode / "work", config)
        out = Path(config["output_dir"])
        record = json.loads((out / "stage_2_detection_output/pair/faces.json").read_text())
        assert len(record["faces"]) == 2
        finals[mode] = load(out / "final_output/pair.png")
        if mode == "per_face":
            faces = [out / f"stage_3_face_output/each_img/pair_{k}.png" for k in (1, 2)]
        else:
            faces = [out / f"stage_3_face_output/by_photo/pair/pair_{k}.png" for k in (1, 2)]
            log = (out / "logs/detect_and_enhance_faces/pair.log").read_text()
            assert log.count("loaded Setting_9_epoch_100") == 1, log
            assert "enhanced pair_1.png" in log and "enhanced pair_2.png" in log
            assert not (out / "logs/enhance_face").exists()
            summary = json.loads((out / "run_summary.json").read_text())
            assert summary["counts"]["with_faces_enhanced"] == 1
            again = run_snakemake(tmp_path / mode / "work", config)  # incremental: nothing to do
            assert "Nothing to be done" in again.stderr + again.stdout
        logs[mode] = [load(path) for path in faces]
    for a, b in zip(logs["per_face"], logs["per_image"]):
        assert np.array_equal(a, b)
    assert np.array_equal(finals["per_face"], finals["per_image"])
