"""What stage 4 records and writes is true, through the real workflow (classical backend).

One run with a photo sheet: ``face.png`` (``resources/samples/old_w_scratch/a.png``, one face
at (214, 194)-(393, 373); ``with_scratch: auto`` and the classical detector's one short crack,
0.107 diagonals, send it down the quality path), ``scratched.png`` (two long thin scratches;
``auto`` sends it down the scratch path) and ``plain.png`` (no row: the run's
``with_scratch: no``).  Then ``scratched.png``'s row changes ``output_format`` to ``jpeg`` and
the workflow runs again.

Checked per photo, in the sidecar and in the derivative's XMP as exiftool reads it: the recorded
mode is the path the photo took, an ``auto`` photo's triage decision is there with its figures,
settings are typed; the change map's face box stands on the face and its scratch outline only
where scratches were repaired; after the format change ``final_output/`` holds one final per
photo and the stale one is kept aside, recorded.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from archival_corpus import read_tags, require_exiftool
from conftest import SAMPLES, embedded, run_snakemake, workflow_config

pytestmark = pytest.mark.workflow

require_exiftool()

SHEET = ("photo\twith_scratch\thr\tfaces\toutput_format\n"
         "face.png\tauto\t\t\t\n"
         "scratched.png\tauto\t\t\tpng\n")
FACE_RECT = (214, 194, 393, 373)  # faces.json of old_w_scratch/a.png (dlib HOG)
CYAN = np.array([0, 255, 255])


def make_scratched_print(path: Path) -> None:
    """A 160x120 print with two long thin bright scratches (the classical detector finds them
    and the triage's line rule takes them: 1.26 diagonals of scratch line)."""
    import cv2

    y, x = np.mgrid[0:120, 0:160]
    base = 90 + 60 * np.sin(x / 15.0) * np.cos(y / 21.0)
    rgb = np.dstack([base, base * 0.9, base * 0.8]).astype(np.uint8)
    for x0, y0, x1, y1 in ((10, 5, 150, 100), (30, 110, 140, 20)):
        cv2.line(rgb, (x0, y0), (x1, y1), (245, 245, 240), 1)
    cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1]))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stage4-record")
    (tmp / "in").mkdir()
    shutil.copy(SAMPLES / "old_w_scratch" / "a.png", tmp / "in" / "face.png")
    make_scratched_print(tmp / "in" / "scratched.png")
    with Image.open(SAMPLES / "old" / "b.png") as im:
        im.convert("RGB").resize((161, 225), Image.BILINEAR).save(tmp / "in" / "plain.png")
    sheet = tmp / "photos.tsv"
    sheet.write_text(SHEET, encoding="utf-8")
    config = workflow_config(tmp, photo_sheet=str(sheet), with_scratch=False)
    out = Path(config["output_dir"])
    run_snakemake(tmp / "work", config)
    first = {p.name: p.read_bytes() for p in (out / "final_output").iterdir()}
    first_sidecars = {p.name: json.loads(p.read_text()) for p in (out / "provenance").iterdir()}
    # one row's output_format changes; the workflow runs again, then builds the report
    edited = tmp / "edited.tsv"
    edited.write_text(SHEET.replace("\tpng\n", "\tjpeg\n"), encoding="utf-8")
    config = dict(config, photo_sheet=str(edited))
    run_snakemake(tmp / "work", config)
    run_snakemake(tmp / "work", config, "--report", str(out / "report.html"))
    return out, first, first_sidecars


def triage_of(out: Path, stem: str) -> dict:
    return json.loads((out / "stage_1_restore_output" / "masks" / "triage" / f"{stem}.json")
                      .read_text())


def xmp_settings(path: Path) -> dict:
    """The settings of the derivation event in ``path``'s XMP History, as exiftool reads it."""
    history = read_tags(path)["XMP-xmpMM:History"]
    event = (history if isinstance(history, list) else [history])[-1]
    return json.loads(event["Parameters"])["settings"]


def test_the_recorded_mode_is_the_path_each_photo_took(runs):
    out, first, first_sidecars = runs
    summary = json.loads((out / "run_summary.json").read_text())["photos"]
    # the triage decided as the module docstring says: the two auto photos take both paths
    assert triage_of(out, "face")["with_scratch"] is False
    assert triage_of(out, "scratched")["with_scratch"] is True
    expected = {"face": "quality", "scratched": "scratch", "plain": "quality"}
    for stem, mode in expected.items():
        final = next(p for p in (out / "final_output").iterdir() if p.stem == stem)
        sidecar = json.loads((out / "provenance" / f"{stem}.json").read_text())
        assert summary[stem]["mode"] == mode, stem
        assert sidecar["settings"]["mode"] == mode, stem
        assert xmp_settings(final)["mode"] == mode, stem
    # the first run's finals said the same (face.png is unchanged by the second run)
    assert xmp_settings(out / "final_output" / "face.png")["mode"] == "quality"
    assert first_sidecars["scratched.json"]["settings"]["mode"] == "scratch"
    # the restore_global log agrees
    log = (out / "logs" / "restore_global" / "face.log").read_text()
    assert "triage decided: quality" in log


def test_an_auto_photo_records_its_triage_decision_with_the_figures(runs):
    out, _, _ = runs
    for stem, ext in (("face", "png"), ("scratched", "jpg")):
        decision = triage_of(out, stem)
        sidecar = json.loads((out / "provenance" / f"{stem}.json").read_text())
        assert sidecar["triage"] == decision  # the whole decision, its reason included
        compact = {"with_scratch": decision["with_scratch"],
                   "coverage": round(decision["coverage"], 6),
                   "line_score": round(decision["line_score"], 4),
                   "components": decision["components"]}
        assert sidecar["settings"]["triage"] == compact
        assert sidecar["settings"]["with_scratch"] == "auto"
        embedded_settings = xmp_settings(out / "final_output" / f"{stem}.{ext}")
        assert embedded_settings["triage"] == compact
        assert embedded_settings["with_scratch"] == "auto"
    plain = json.loads((out / "provenance" / "plain.json").read_text())
    assert plain["triage"] is None and "triage" not in plain["settings"]
    assert plain["settings"]["with_scratch"] is False


def test_settings_are_typed_in_the_sidecar_the_xmp_and_the_png_text(runs):
    from oldphoto.jobs.protocol import TASKS

    out, _, _ = runs
    for stem, ext in (("face", "png"), ("scratched", "jpg"), ("plain", "png")):
        final = out / "final_output" / f"{stem}.{ext}"
        settings = json.loads((out / "provenance" / f"{stem}.json").read_text())["settings"]
        auto = stem != "plain"
        # every stage-4 setting, plus what was asked for with_scratch (and auto's triage)
        recorded = {s.record_name for s in TASKS["blend_faces"].settings if s.record_name}
        assert set(settings) == recorded | {"with_scratch"} | (
            {"triage"} if auto else set()), stem
        assert settings["carry_metadata"] is True
        # classical backend: no face network, no stretch, no test_mode
        assert settings["face_network"] is None and settings["stretch"] is None
        assert settings["test_mode"] is None
        assert settings["jpeg_quality"] == (95 if ext == "jpg" else None)
        assert not [v for v in settings.values() if v in ("-", "True", "False", "95")], settings
        assert xmp_settings(final) == settings, stem  # exiftool reads the same typed values
        if ext == "png":
            with Image.open(final) as im:
                assert json.loads(im.text["oldphoto:settings"]) == settings


def face_box(record: dict, face: dict) -> tuple[int, int, int, int]:
    """The aligned square's bounding box in the photo through face_to_photo, rounded."""
    side = record["face_size"]
    corners = np.array([[0, 0, 1], [side, 0, 1], [0, side, 1], [side, side, 1]], float)
    points = corners @ np.array(face["face_to_photo"])[:2].T
    size = (record["image"]["width"], record["image"]["height"])
    low = np.clip(points.min(axis=0), 0, size)
    high = np.clip(points.max(axis=0), 0, size)
    return tuple(int(round(v)) for v in (*low, *high))


def test_the_change_map_boxes_the_face_and_outlines_only_repaired_scratches(runs):
    out, _, _ = runs
    record = json.loads((out / "stage_2_detection_output" / "face" / "faces.json").read_text())
    [face] = record["faces"]
    assert tuple(face["rect"]) == FACE_RECT
    assert {"face_to_photo", "photo_to_face"} <= set(face) and "inverse" not in face
    x0, y0, x1, y1 = face_box(record, face)
    left, top, right, bottom = FACE_RECT
    assert x0 <= left and y0 <= top and right <= x1 and bottom <= y1
    changes = json.loads((out / "provenance" / "face.json").read_text())["changes"]
    width, height = record["image"]["width"], record["image"]["height"]
    assert changes["faces"] == 1
    assert changes["face_area_fraction"] == round((x1 - x0) * (y1 - y0) / (width * height), 6)
    # the map (a JPEG at the photo's size) draws the cyan box there, not in a corner
    with Image.open(out / "report" / "changes" / "face.changes.jpg") as im:
        assert im.size == (width, height)
        pixels = np.asarray(im.convert("RGB")).astype(int)
    near_cyan = np.abs(pixels - CYAN).max(axis=2) < 80
    assert near_cyan[y0, x0 + 5:x1 - 5].mean() > 0.9 and near_cyan[y0:y1, x0].mean() > 0.9
    assert near_cyan[:y0 - 4].mean() < 0.01 and near_cyan[:, :x0 - 4].mean() < 0.01
    # face.png took the quality path: its detector's mask was not repaired, so not outlined;
    # scratched.png took the scratch path: every pixel its mask marks was
    assert triage_of(out, "face")["coverage"] > 0 and changes["scratch_area_fraction"] == 0.0
    scratched = json.loads((out / "provenance" / "scratched.json").read_text())["changes"]
    assert scratched["scratch_area_fraction"] == round(triage_of(out, "scratched")["coverage"], 6)


def test_one_final_per_photo_the_stale_one_kept_aside_and_recorded(runs):
    out, first, _ = runs
    assert sorted(first) == ["face.png", "plain.png", "scratched.png"]
    assert sorted(p.name for p in (out / "final_output").iterdir()) == [
        "face.png", "plain.png", "scratched.jpg"]
    aside = sorted((out / "superseded").iterdir())
    assert sorted(p.suffix for p in aside) == [".json", ".png"]  # the final and its record
    moved = next(p for p in aside if p.suffix == ".png")
    assert moved.name.startswith("scratched.") and moved.read_bytes() == first["scratched.png"]
    sidecar = json.loads((out / "provenance" / "scratched.json").read_text())
    assert sidecar["output"]["file"] == "scratched.jpg" and sidecar["output"]["format"] == "jpeg"
    [record] = sidecar["superseded"]
    assert record == json.loads(moved.with_name(moved.name + ".json").read_text())
    assert record["file"] == "scratched.png" and record["superseded_by"] == "scratched.jpg"
    assert record["moved_to"] == f"superseded/{moved.name}"
    assert record["sha256"] == hashlib.sha256(first["scratched.png"]).hexdigest()
    first_run = json.loads((out / "provenance" / "face.json").read_text())["created"]
    assert dt.datetime.fromisoformat(record["superseded_at"]) >= dt.datetime.fromisoformat(
        first_run)
    # the photos that kept their format were not touched again
    assert (out / "final_output" / "face.png").read_bytes() == first["face.png"]
    assert json.loads((out / "provenance" / "face.json").read_text())["superseded"] == []
    # the report shows the current final only
    results = embedded((out / "report.html").read_text(encoding="utf-8"), "results")
    # (it embeds no final; each photo's before/after caption names its final's file)
    assert not [p for p in results if "/final_output/" in p]
    captions = json.dumps(results)
    for name in ("face.png", "plain.png", "scratched.jpg"):
        assert f"final_output/{name}" in captions, name
    assert "final_output/scratched.png" not in captions
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["counts"]["restored"] == 3


def test_pretrained_auto_photo_records_the_checkpoints_of_the_path_it_took(recipe_checkpoints,
                                                                            tmp_path):
    """The official networks (recipe weights): the recipe U-Net's mask covers ~99 % of a photo,
    so triage sends it down the quality path (docs/photo_sheet.md); its record names the
    detector (it ran) and the quality path's networks, not the scratch path's."""
    from oldphoto.checkpoints import official_path, sha256_file

    (tmp_path / "in").mkdir()
    make_scratched_print(tmp_path / "in" / "print.png")
    config = workflow_config(tmp_path, backend="pretrained", with_scratch="auto",
                             checkpoints_dir=str(recipe_checkpoints), threads=2)
    run_snakemake(tmp_path / "work", config)
    out = Path(config["output_dir"])
    assert triage_of(out, "print")["with_scratch"] is False
    sidecar = json.loads((out / "provenance" / "print.json").read_text())
    used = ["detection", "VAE_A_quality", "mapping_quality", "VAE_B_quality"]
    expected = {name: sha256_file(official_path(recipe_checkpoints, name)) for name in used}
    assert sidecar["checkpoints"] == expected
    settings = sidecar["settings"]
    assert (settings["mode"], settings["with_scratch"], settings["test_mode"]) == (
        "quality", "auto", "Full")
    assert xmp_settings(out / "final_output" / "print.png") == settings
