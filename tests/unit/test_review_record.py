"""The review's library: sampling, the append-only record, sheet rows, statuses, exports."""

from __future__ import annotations

import hashlib
import math
import sqlite3
import time
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from oldphoto.errors import ConfigError
from oldphoto.review.export import PREMIS_NS, TSV_COLUMNS, write_premis, write_tsv
from oldphoto.review.folder import DB_NAME, draw_sample, load_index
from oldphoto.review.session import FinalChanged, Review
from oldphoto.review.store import ReviewStore, journal_mode_for
from oldphoto.sheet import read_sheet, write_sheet_row
from review_folder import changed_fraction, make_folder, stem_of


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- sampling ----------------------------------------------------------------------------------

def test_sample_is_the_smallest_hash_ranks_and_reproducible():
    stems = [f"p{i}" for i in range(200)]
    sample = draw_sample(stems, 10, seed=7)
    assert len(sample) == 20 == math.ceil(200 * 10 / 100)
    # the same rule computed another way: rank = sha256("<seed>:<stem>")
    ranks = sorted(stems, key=lambda s: hashlib.sha256(f"7:{s}".encode()).hexdigest())
    assert sample == set(ranks[:20])
    assert draw_sample(reversed(stems), 10, seed=7) == sample      # order does not matter
    assert draw_sample(stems, 10, seed=8) != sample                  # the seed does
    assert len(draw_sample(stems[:3], 10, seed=1)) == 1              # ceil: at least one
    with pytest.raises(ValueError):
        draw_sample(stems, 0, seed=1)


# -- the record --------------------------------------------------------------------------------

def test_record_is_append_only_and_undo_restores_the_previous_decision(tmp_path):
    store = ReviewStore(tmp_path / DB_NAME)
    store.record(photo="a", action="rejected", reviewer="ann", reason="artefacts",
                 derivative_sha256="1" * 64, settings={"hr": False})
    store.record(photo="a", action="accepted", reviewer="ann", derivative_sha256="2" * 64)
    store.record(photo="b", action="accepted", reviewer="bob")
    assert store.current()["a"].action == "accepted"
    undone = store.undo_last("ann")
    assert (undone.photo, undone.action) == ("a", "accepted")
    current = store.current()
    assert current["a"].action == "rejected" and current["a"].reason == "artefacts"
    assert current["a"].settings == {"hr": False}
    assert store.undo_last("ann").photo == "a"
    assert "a" not in store.current() and store.current()["b"].reviewer == "bob"
    assert store.undo_last("ann") is None
    # every event is still there: three decisions and two undos
    assert [e["action"] for e in store.history("a")] == ["rejected", "accepted", "undo", "undo"]
    db = sqlite3.connect(tmp_path / DB_NAME)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE events SET action = 'accepted' WHERE photo = 'a'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM events")
    with pytest.raises(ValueError, match="reason"):
        store.record(photo="c", action="rejected", reviewer="ann")


def test_journal_mode_is_wal_locally_and_rollback_on_network_file_systems(tmp_path):
    store = ReviewStore(tmp_path / DB_NAME)
    assert store.journal_mode == "wal"
    assert sqlite3.connect(tmp_path / DB_NAME).execute("PRAGMA journal_mode").fetchone()[0] \
        == "wal"
    mounts = ("/dev/sda1 / ext4 rw 0 0\n"
              "server:/export /mnt/archive nfs4 rw 0 0\n"
              "//nas/share /mnt/nas\\040box cifs rw 0 0\n")
    assert journal_mode_for("/home/x/out/review.sqlite", mounts) == "wal"
    assert journal_mode_for("/mnt/archive/out/review.sqlite", mounts) == "delete"
    assert journal_mode_for("/mnt/nas box/out/review.sqlite", mounts) == "delete"
    nfs = ReviewStore(tmp_path / "nfs.sqlite", mounts=f"host:/x {tmp_path} nfs rw 0 0\n")
    assert nfs.journal_mode == "delete"


# -- the photo sheet ---------------------------------------------------------------------------

def test_write_sheet_row_replaces_one_row_and_keeps_every_other_byte(tmp_path):
    photos = {"a": tmp_path / "a.png", "b": tmp_path / "b.jpg", "c": tmp_path / "c.tif"}
    for path in photos.values():
        path.write_bytes(b"x")
    sheet = tmp_path / "sheet.tsv"
    original = ("\ufeff# my notes\r\nphoto\twith_scratch\thr\tfaces\r\n"
                "a.png\tyes\t\tno\r\n\r\nb.jpg\tauto\r\n")
    sheet.write_bytes(original.encode("utf-8"))
    assert write_sheet_row(sheet, "a.png", {"hr": True, "face_blending": "adaptive"})
    text = sheet.read_bytes().decode("utf-8")
    assert text.startswith("\ufeff# my notes\r\n")
    lines = text[1:].split("\r\n")
    assert lines[1] == "photo\twith_scratch\thr\tfaces\tface_blending"   # column added
    assert lines[2] == "a.png\t\tyes\t\tadaptive"                          # the row replaced
    assert lines[3:] == ["", "b.jpg\tauto", ""]                              # others untouched
    assert read_sheet(sheet, photos, tmp_path) == {
        "a": {"hr": True, "face_blending": "adaptive"}, "b": {"with_scratch": "auto"}}
    assert write_sheet_row(sheet, "c.tif", {"max_faces": 2})
    assert read_sheet(sheet, photos, tmp_path)["c"] == {"max_faces": 2}
    assert not write_sheet_row(sheet, "c.tif", {"max_faces": "2"})           # same row: no write
    before = sheet.read_bytes()
    with pytest.raises(ConfigError, match="face_upsample"):
        write_sheet_row(sheet, "b.jpg", {"face_upsample": 7})
    with pytest.raises(ConfigError, match="not sheet columns"):
        write_sheet_row(sheet, "b.jpg", {"input_dir": "x"})
    assert sheet.read_bytes() == before
    fresh = tmp_path / "new" / "photo_sheet.tsv"
    write_sheet_row(fresh, "b.jpg", {"with_scratch": "yes"})
    assert read_sheet(fresh, photos, tmp_path) == {"b": {"with_scratch": True}}


# -- statuses and decisions --------------------------------------------------------------------

@pytest.fixture
def folder(tmp_path):
    return make_folder(tmp_path, 12, failed_every=5)


def test_index_reads_status_changes_and_originals(folder):
    entries = load_index(folder)
    assert [e.stem for e in entries] == [stem_of(i) for i in range(12)]
    assert [e.status for e in entries].count("failed") == 2               # photos 4 and 9
    assert entries[4].final is None and "corrupt PNG" in entries[4].reasons[0]
    assert entries[3].changed_fraction == changed_fraction(3)
    assert entries[3].original == folder.parent / "in" / f"{stem_of(3)}.png"
    assert entries[0].faces == 1 and entries[1].faces == 0


def test_decisions_follow_the_final_output(folder):
    review = Review(folder, "ann")
    entry = review.entries[0]
    assert review.status(entry) == "pending"
    with pytest.raises(FinalChanged):
        review.decide(entry, "accepted", seen_version="1-2")
    decision = review.decide(entry, "accepted", seen_version=review.final_version(entry))
    assert decision.derivative_sha256 == sha256(entry.final)
    assert decision.master_sha256 == sha256(entry.original)
    assert review.status(entry) == "accepted"
    # a rerun replaces the final: the photo is pending again
    time.sleep(0.01)
    entry.final.write_bytes(entry.final.read_bytes() + b"\0")
    assert review.status(entry) == "pending"
    # a copy with the same bytes (new mtime) keeps the decision: judged by sha256
    entry.final.write_bytes(entry.final.read_bytes()[:-1])
    assert review.status(entry) == "accepted"
    assert review.status(review.entries[4]) == "failed"
    with pytest.raises(ValueError):
        review.decide(review.entries[4], "accepted")


def test_rejection_with_new_settings_writes_the_folder_sheet_and_is_due(folder):
    review = Review(folder, "ann")
    first, second = review.entries[1], review.entries[2]
    review.decide(first, "rejected", reason="face_altered", note="eyes changed",
                  new_row={"face_blending": "adaptive", "output_format": "jpeg", "hr": ""})
    review.decide(second, "rejected", reason="artefacts", new_row={"hr": ""})
    sheet = folder / "photo_sheet.tsv"
    photos = {e.stem: e.original for e in review.entries}
    assert read_sheet(sheet, photos, folder.parent / "in") == {
        first.stem: {"face_blending": "adaptive", "output_format": "jpeg"}}
    assert [e.stem for e in review.due_for_rerun()] == [first.stem]
    assert [e.stem for e in review.rejected_without_new_settings()] == [second.stem]
    decision = review.store.current()[first.stem]
    assert decision.settings["face_blending"] == "official"          # what was judged
    assert decision.new_settings == {"face_blending": "adaptive", "output_format": "jpeg"}
    assert review.settings(first)["face_blending"] == "adaptive"     # what the next run uses
    assert review.rerun_targets([first]) == [
        str(folder.resolve() / "final_output" / f"{first.stem}.jpg")]


def test_undo_makes_the_photo_pending_again(folder):
    review = Review(folder, "ann")
    entry = review.entries[2]
    review.decide(entry, "accepted")
    assert review.undo().photo == entry.stem
    assert review.status(entry) == "pending"


def test_filters_and_most_changed_first(folder):
    review = Review(folder, "ann")
    review.decide(review.entries[0], "accepted")
    assert [e.index for e in review.select(status="failed")] == [4, 9]
    assert [e.index for e in review.select(status="accepted")] == [0]
    pending = review.select(status="pending")
    assert [e.index for e in pending] == [1, 2, 3, 5, 6, 7, 8, 10, 11]
    assert [e.index for e in review.select(status="all", faces=True)] == [0, 10]
    ordered = review.select(status="pending", order="changed")
    fractions = [changed_fraction(e.index) for e in ordered]
    assert fractions == sorted(fractions, reverse=True)
    assert review.counts() == {"pending": 9, "accepted": 1, "rejected": 0, "failed": 2,
                               "in_review": 12}


def test_sample_restricts_the_queue_and_is_recorded(folder):
    review = Review(folder, "ann", sample=(25, 3))
    expected = draw_sample([stem_of(i) for i in range(12)], 25, 3)
    assert {e.stem for e in review.select(status="all")} == expected
    assert review.store.latest_sample()["size"] == 3 == len(expected)


# -- exports -----------------------------------------------------------------------------------

def _tsv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    comments = [line for line in lines if line.startswith("#")]
    body = [line.split("\t") for line in lines if not line.startswith("#")]
    return comments, [dict(zip(body[0], row)) for row in body[1:]]


def test_tsv_export_has_one_row_per_photo_and_states_the_sample(folder, tmp_path):
    review = Review(folder, "ann", sample=(50, 1))
    in_sample = sorted(s for s in review.sample.photos if review.by_stem[s].final)
    review.decide(review.by_stem[in_sample[0]], "accepted")
    review.decide(review.by_stem[in_sample[1]], "rejected", reason="colour_or_tone",
                  note="too\tblue\nreally")
    comments, rows = _tsv_from(review, tmp_path / "x.tsv")
    assert any(c == "# sample: 50% of 12 photos = 6 photos, seed 1 (oldphoto review --sample "
               "50 --seed 1)" for c in comments)
    assert [r["photo"] for r in rows] == [stem_of(i) for i in range(12)]
    assert list(rows[0]) == list(TSV_COLUMNS)
    by = {r["photo"]: r for r in rows}
    accepted = by[in_sample[0]]
    assert accepted["decision"] == "accepted" and accepted["reviewer"] == "ann"
    assert accepted["derivative_sha256"] == sha256(review.by_stem[in_sample[0]].final)
    rejected = by[in_sample[1]]
    assert (rejected["decision"], rejected["reason"], rejected["note"]) == \
        ("rejected", "colour or tone wrong", "too blue really")
    assert {r["in_sample"] for r in rows if r["photo"] in in_sample} == {"yes"}
    assert sum(r["in_sample"] == "yes" for r in rows) == 6
    assert by[stem_of(4)]["run_status"] == "failed" and by[stem_of(4)]["decision"] == "pending"


def _tsv_from(review, path):
    write_tsv(review, path)
    return _tsv(path)


EVENT_ORDER = ["eventIdentifier", "eventType", "eventDateTime", "eventDetailInformation",
               "eventOutcomeInformation", "linkingAgentIdentifier", "linkingObjectIdentifier"]
FILE_ORDER = ["objectIdentifier", "objectCharacteristics", "originalName"]


def _local(element: ET.Element) -> str:
    namespace, _, name = element.tag[1:].partition("}")
    assert namespace == PREMIS_NS, element.tag
    return name


def _in_order(names: list[str], order: list[str]) -> bool:
    positions = [order.index(n) for n in names]
    return positions == sorted(positions)


def test_premis_events_link_reviewer_master_and_derivative(folder, tmp_path):
    review = Review(folder, "ann")
    first, second = review.entries[0], review.entries[1]
    review.decide(first, "rejected", reason="scratches_left", note="left edge")
    review.decide(second, "accepted")
    review.decide(review.entries[2], "accepted")
    review.undo()                                                     # not exported
    assert write_premis(review, tmp_path / "p.xml") == 2
    root = ET.parse(tmp_path / "p.xml").getroot()
    assert _local(root) == "premis" and root.get("version") == "3.0"
    children = [_local(c) for c in root]
    # PREMIS 3: objects, then events, then agents; at least one object
    assert children == sorted(children, key=["object", "event", "agent"].index)
    assert children.count("object") == 4 and children.count("event") == 2
    p = f"{{{PREMIS_NS}}}"
    objects = {}
    for obj in root.findall(f"{p}object"):
        assert obj.get("{http://www.w3.org/2001/XMLSchema-instance}type") == "premis:file"
        assert _in_order([_local(c) for c in obj], FILE_ORDER)
        ids = {i.findtext(f"{p}objectIdentifierType"): i.findtext(f"{p}objectIdentifierValue")
               for i in obj.findall(f"{p}objectIdentifier")}
        assert obj.findtext(f"{p}objectCharacteristics/{p}fixity/{p}messageDigest") \
            == ids["sha256"]
        objects[ids["sha256"]] = obj.findtext(f"{p}originalName")
    agents = {a.findtext(f"{p}agentIdentifier/{p}agentIdentifierValue"): a.findtext(
        f"{p}agentType") for a in root.findall(f"{p}agent")}
    assert agents["ann"] == "person" and agents["oldphoto 0.1.0"] == "software"
    events = root.findall(f"{p}event")
    for event, entry, outcome in ((events[0], first, "rejected"), (events[1], second,
                                                                    "accepted")):
        names = [_local(c) for c in event]
        assert names[:3] == EVENT_ORDER[:3] and _in_order(names, EVENT_ORDER)
        assert event.findtext(f"{p}eventType") == "validation"
        assert event.findtext(f"{p}eventDateTime").endswith("Z")
        assert event.findtext(f"{p}eventOutcomeInformation/{p}eventOutcome") == outcome
        linked_agents = [a.findtext(f"{p}linkingAgentIdentifierValue")
                         for a in event.findall(f"{p}linkingAgentIdentifier")]
        assert linked_agents[0] == "ann" and all(a in agents for a in linked_agents)
        links = {link.findtext(f"{p}linkingObjectRole"): link.findtext(
            f"{p}linkingObjectIdentifierValue") for link in
            event.findall(f"{p}linkingObjectIdentifier")}
        assert links == {"source": sha256(entry.original), "outcome": sha256(entry.final)}
        assert objects[links["source"]] == entry.original.name
        assert objects[links["outcome"]] == entry.final.name
    note = events[0].findtext(f"{p}eventOutcomeInformation/{p}eventOutcomeDetail/"
                              f"{p}eventOutcomeDetailNote")
    assert note.startswith("reason: scratches left; note: left edge; settings in force: ")


def test_the_workflow_reads_the_folder_sheet_when_the_config_names_none(folder):
    from oldphoto.inputs import list_inputs
    from oldphoto.plan.settings import folder_sheet, photo_settings

    config = {"input_dir": str(folder.parent / "in"), "output_dir": str(folder),
              "with_scratch": False, "hr": False}
    inputs = list_inputs(folder.parent / "in")
    assert folder_sheet(config) is None
    assert photo_settings(config, inputs)[stem_of(1)]["hr"] is False
    write_sheet_row(folder / "photo_sheet.tsv", f"{stem_of(1)}.png", {"hr": "yes"})
    assert folder_sheet(config) == str(folder / "photo_sheet.tsv")
    settings = photo_settings(config, inputs)
    assert settings[stem_of(1)]["hr"] is True and settings[stem_of(1)].from_sheet == {"hr"}
    assert settings[stem_of(2)]["hr"] is False
    # a sheet the config names wins over the folder's own
    named = folder.parent / "named.tsv"
    write_sheet_row(named, f"{stem_of(2)}.png", {"hr": "yes"})
    settings = photo_settings({**config, "photo_sheet": str(named)}, inputs)
    assert settings[stem_of(1)]["hr"] is False and settings[stem_of(2)]["hr"] is True


def test_without_a_summary_failures_come_from_the_job_logs(folder):
    (folder / "run_summary.json").unlink()
    entries = {e.stem: e for e in load_index(folder)}
    assert entries[stem_of(4)].status == "failed"
    assert entries[stem_of(4)].reasons == ["corrupt PNG (synthetic)"]
    assert entries[stem_of(3)].status == "restored"


def test_the_reviewer_is_warned_when_they_ran_the_workflow(folder):
    import getpass
    import json

    me = getpass.getuser()
    assert Review(folder, me).operator == me                 # the owner of run_summary.json
    assert Review(folder, me).operator_is_reviewer
    assert not Review(folder, "second person").operator_is_reviewer
    summary = json.loads((folder / "run_summary.json").read_text())
    summary["operator"] = "bob"                                # a run that records its operator
    (folder / "run_summary.json").write_text(json.dumps(summary))
    assert Review(folder, "bob").operator_is_reviewer
    assert not Review(folder, me).operator_is_reviewer
