"""What stage 4 records (``oldphoto.archival.settings``) and keeps (``oldphoto.archival.supersede``):
the path a photo took with its settings typed, and one final per photo in ``final_output/``."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest

from oldphoto.archival.provenance import sidecar_record
from oldphoto.archival.settings import networks_used, path_taken, recorded_settings
from oldphoto.archival.supersede import (other_finals, supersede_other_finals,
                                         superseded_history)
from oldphoto.jobs.protocol import recorded
from oldphoto.mode import Mode

# blend_faces's settings as the job reads them (typed; oldphoto.jobs.protocol), classical backend
SETTINGS = {"backend": "classical", "face_blending": "official", "final_size": "original",
            "mode": Mode(with_scratch=True), "test_mode": None, "stage1_stretch": None,
            "face_network": None, "output_format": "png", "tone": "official", "jpeg_quality": 95,
            "carry_metadata": True, "preview_width": 1200, "change_map_width": 1200,
            "benchmarks": "out/benchmarks"}
PARAMS = recorded("blend_faces", SETTINGS)
CLEAN = {"with_scratch": False, "coverage": 0.0010565291563275434,
         "line_score": 0.1066345779715852, "components": 1,
         "reason": "1 line-like of 1 component(s), 0.107 diagonals ...: no scratch path",
         "backend": "classical"}


def test_the_record_keeps_its_names_and_leaves_out_the_backend_and_the_views():
    """The record's keys are a file format (docs/archival.md): ``face_blending`` is recorded as
    ``blending``, ``stage1_stretch`` as ``stretch``; the backend is stated on its own."""
    assert PARAMS == {"blending": "official", "carry_metadata": True, "face_network": None,
                      "final_size": "original", "jpeg_quality": 95,
                      "mode": Mode(with_scratch=True), "output_format": "png", "stretch": None,
                      "test_mode": None, "tone": "official"}


def test_settings_are_typed_never_text_for_booleans_numbers_or_not_applicable():
    settings = recorded_settings(PARAMS, final_format="png")
    assert settings == {"blending": "official", "carry_metadata": True, "face_network": None,
                        "final_size": "original", "jpeg_quality": None, "mode": "scratch",
                        "output_format": "png", "stretch": None, "test_mode": None,
                        "tone": "official", "with_scratch": True}
    jpeg = recorded_settings(dict(PARAMS, output_format="jpeg", jpeg_quality=80,
                                  carry_metadata=False, mode=Mode(False, True), test_mode="Scale",
                                  face_network="FaceSR_512", stretch="official"),
                             final_format="jpeg")
    assert (jpeg["jpeg_quality"], jpeg["carry_metadata"], jpeg["with_scratch"]) == (80, False,
                                                                                   False)
    assert (jpeg["mode"], jpeg["test_mode"], jpeg["face_network"], jpeg["stretch"]) == (
        "quality+hr", "Scale", "FaceSR_512", "official")
    # a mode given by its key reads the same
    assert recorded_settings(dict(PARAMS, mode="scratch"), final_format="png") == settings


def test_an_auto_photo_records_the_path_its_triage_chose_with_the_figures():
    clean = recorded_settings(dict(PARAMS, test_mode="Full"), final_format="png", triage=CLEAN)
    assert clean["mode"] == "quality" and clean["with_scratch"] == "auto"
    assert clean["test_mode"] == "Full"  # the quality path's geometry applies
    assert clean["triage"] == {"with_scratch": False, "coverage": 0.001057,
                               "line_score": 0.1066, "components": 1}
    scratched = dict(CLEAN, with_scratch=True, line_score=1.255)
    taken = recorded_settings(dict(PARAMS, mode=Mode(True, True), test_mode="Full"),
                              final_format="png", triage=scratched)
    assert taken["mode"] == "scratch+hr" and taken["test_mode"] is None
    assert taken["triage"]["with_scratch"] is True
    assert "triage" not in recorded_settings(PARAMS, final_format="png")
    assert path_taken(Mode(True, True), CLEAN) == Mode(False, True)
    assert path_taken(Mode(True, False), None) == Mode(True, False)
    # XMP parameters are compact JSON of these: no text where a type belongs
    text = json.dumps(clean, sort_keys=True, separators=(",", ":"))
    assert '"True"' not in text and '"-"' not in text and '"95"' not in text


def test_checkpoints_recorded_are_those_of_the_path_taken():
    quality = path_taken(Mode(True, False), CLEAN)
    assert networks_used(quality, detector_ran=True, face_network=None) == {
        "detection", "VAE_A_quality", "mapping_quality", "VAE_B_quality"}
    assert networks_used(Mode(True, True), detector_ran=True, face_network="FaceSR_512") == {
        "detection", "VAE_A_quality", "mapping_Patch_Attention", "VAE_B_scratch", "FaceSR_512"}
    assert "detection" not in networks_used(Mode(False, False), detector_ran=False,
                                            face_network=None)


def make_final(folder: Path, name: str, data: bytes) -> Path:
    path = folder / "final_output" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_a_final_under_another_extension_is_moved_aside_with_its_record(tmp_path):
    old = make_final(tmp_path, "old e.png", b"the png written before")
    neighbour = make_final(tmp_path, "old e.b.png", b"another photo, named like it")
    other = make_final(tmp_path, "old.jpg", b"another photo")
    new = make_final(tmp_path, "old e.jpg", b"the new jpeg")
    assert other_finals(new) == [old]
    when = dt.datetime(2026, 12, 6, 22, 15, 3, 250000, tzinfo=dt.timezone.utc)
    [record] = supersede_other_finals(new, now=when)
    moved = tmp_path / "superseded" / "old e.20261206T221503Z.png"
    assert record == {"photo": "old e", "file": "old e.png",
                      "moved_to": "superseded/old e.20261206T221503Z.png",
                      "sha256": hashlib.sha256(b"the png written before").hexdigest(),
                      "size_bytes": 22, "superseded_at": "2026-12-06T22:15:03.250000+00:00",
                      "superseded_by": "old e.jpg"}
    assert moved.read_bytes() == b"the png written before"  # its bytes, untouched
    assert json.loads(moved.with_name(moved.name + ".json").read_text()) == record
    assert sorted(p.name for p in (tmp_path / "final_output").iterdir()) == [
        "old e.b.png", "old e.jpg", "old.jpg"]
    assert neighbour.read_bytes() == b"another photo, named like it"
    assert supersede_other_finals(new, now=when) == []  # nothing left to move
    # back to png, then to jpeg again, within the same second: each goes aside under a name
    # of its own
    back = make_final(tmp_path, "old e.png", b"png again")
    [second] = supersede_other_finals(back, now=when + dt.timedelta(milliseconds=300))
    assert second["moved_to"] == "superseded/old e.20261206T221503Z.jpg"
    again = make_final(tmp_path, "old e.jpg", b"jpeg again")
    [third] = supersede_other_finals(again, now=when + dt.timedelta(milliseconds=600))
    assert third["moved_to"] == "superseded/old e.20261206T221503Z-2.png"
    assert (tmp_path / second["moved_to"]).read_bytes() == b"the new jpeg"
    assert (tmp_path / third["moved_to"]).read_bytes() == b"png again"
    assert (tmp_path / record["moved_to"]).read_bytes() == b"the png written before"
    # the photo's history: all three, oldest first; none for the photo named like it
    assert superseded_history(again) == [record, second, third]
    assert superseded_history(neighbour) == []
    # a record whose file is gone does not count
    (tmp_path / record["moved_to"]).unlink()
    assert superseded_history(again) == [second, third]


def test_no_superseded_folder_when_nothing_is_stale(tmp_path):
    final = make_final(tmp_path, "a.tif", b"tiff")
    assert supersede_other_finals(final) == [] and superseded_history(final) == []
    assert not (tmp_path / "superseded").exists()


def test_sidecar_holds_the_triage_decision_and_the_superseded_finals():
    full = sidecar_record({"schema": "oldphoto.provenance/2"}, {"blend_faces": 0.1234},
                          {"file": "a.jpg"}, triage=CLEAN,
                          superseded=[{"file": "a.png", "moved_to": "superseded/a.x.png"}])
    assert full["triage"] == CLEAN and full["triage"]["reason"].endswith("no scratch path")
    assert full["superseded"] == [{"file": "a.png", "moved_to": "superseded/a.x.png"}]
    plain = sidecar_record({}, {})
    assert plain["triage"] is None and plain["superseded"] == []
