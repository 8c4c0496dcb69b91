"""The photo sheet (oldphoto.sheet): reading, validation, starter sheet, precedence, CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from oldphoto import cli, sheet
from oldphoto.errors import ConfigError
from oldphoto.inputs import list_inputs

HEADER = "photo\twith_scratch\thr\tfaces"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """An input folder: three photos (contents never read here), a note and a hidden file."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("a.png", "group photo.jpg", "c.TIF"):
        (inputs / name).write_bytes(b"not decoded by the sheet")
    (inputs / "notes.txt").write_text("scanned 1998")
    (inputs / ".hidden.png").write_bytes(b"")
    return inputs


def read(folder: Path, text: str, name: str = "photos.tsv") -> dict:
    path = folder.parent / name
    path.write_bytes(text.encode("utf-8"))
    return sheet.read_sheet(path, list_inputs(folder).images, folder)


def error_of(folder: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        read(folder, text)
    message = str(info.value)
    assert "photos.tsv" in message  # every message names the sheet
    return message


def test_rows_give_typed_overrides_keyed_by_stem(folder):
    text = (f"# mixed box from the attic\n{HEADER}\tface_upsample\tmax_faces\tface_detector\n"
            "a.png\tauto\t\tno\t\t\t\n"
            "group photo.jpg\tno\tyes\tyes\t2\t3\tcnn\n")
    assert read(folder, text) == {
        "a": {"with_scratch": "auto", "faces": False},
        "group photo": {"with_scratch": False, "hr": True, "faces": True, "face_upsample": 2,
                        "max_faces": 3, "face_detector": "cnn"},
    }


def test_every_optional_column_and_its_type(folder):
    text = ("photo\twith_scratch\thr\tfaces\ttone\toutput_format\tjpeg_quality\t"
            "face_blending\tface_detector\tface_upsample\tonly_center_face\tmax_faces\n"
            "c.TIF\tyes\tno\tno\tkeep\ttiff\t80\tadaptive\thog\t0\tyes\t0\n")
    assert read(folder, text) == {"c": {
        "with_scratch": True, "hr": False, "faces": False, "tone": "keep",
        "output_format": "tiff", "jpeg_quality": 80, "face_blending": "adaptive",
        "face_detector": "hog", "face_upsample": 0, "only_center_face": True, "max_faces": 0}}


def test_crlf_bom_trailing_whitespace_blank_lines_and_case(folder):
    text = ("\ufeff" + HEADER + "  \r\n\r\n"
            "a.png\tYES \t No\t\r\n"
            "  # an indented comment\r\n"
            "c.TIF\t\t\t\r\n")
    assert read(folder, text) == {"a": {"with_scratch": True, "hr": False}, "c": {}}


def test_short_rows_mean_empty_cells_and_empty_sheet_body_is_fine(folder):
    assert read(folder, f"{HEADER}\na.png\n") == {"a": {}}
    assert read(folder, f"{HEADER}\n") == {}


def test_bad_value_names_row_column_and_value(folder):
    message = error_of(folder, f"{HEADER}\na.png\tno\n#\nc.TIF\tsometimes\tno\tyes\n")
    assert "row 4" in message and "'with_scratch'" in message and "'sometimes'" in message
    assert "yes, no, true, false, auto" in message and "'c.TIF'" in message
    message = error_of(folder, f"{HEADER}\tface_upsample\na.png\t\t\t\t3\n")
    assert "row 2" in message and "'face_upsample'" in message and "'3'" in message
    message = error_of(folder, f"{HEADER}\tmax_faces\na.png\t\t\t\t-1\n")
    assert "'max_faces'" in message and "'-1'" in message and "≥ 0" in message
    for quality in ("0", "101", "9.5", "high"):
        message = error_of(folder, f"{HEADER}\tjpeg_quality\na.png\t\t\t\t{quality}\n")
        assert "'jpeg_quality'" in message and f"'{quality}'" in message
        assert "from 1 to 100" in message
    assert read(folder, f"{HEADER}\tjpeg_quality\na.png\t\t\t\t100\nc.TIF\t\t\t\t1\n") \
        == {"a": {"jpeg_quality": 100}, "c": {"jpeg_quality": 1}}
    message = error_of(folder, f"{HEADER}\na.png\t\ton\n")
    assert "row 2" in message and "'hr'" in message and "'on'" in message
    assert read(folder, f"{HEADER}\na.png\t\tTrue\n") == {"a": {"hr": True}}  # as the config


def test_unknown_duplicate_and_missing_columns(folder):
    message = error_of(folder, f"# c\n{HEADER}\tcolour\na.png\n")
    assert "row 2" in message and "'colour'" in message and "unknown column" in message
    message = error_of(folder, f"{HEADER}\thr\na.png\n")
    assert "'hr'" in message and "twice" in message
    message = error_of(folder, "photo\twith_scratch\na.png\n")
    assert "hr, faces" in message and "row 1" in message
    message = error_of(folder, "photo,with_scratch,hr,faces\na.png,no,no,no\n")
    assert "not tab-separated" in message
    assert "empty" in error_of(folder, "# only comments\n\n")


def test_header_case_and_rows_without_a_photo(folder):
    assert read(folder, "Photo\tWith_Scratch\tHR\tFaces\na.png\tno\n") == {
        "a": {"with_scratch": False}}
    message = error_of(folder, f"{HEADER}\n\tyes\tno\n")
    assert "row 2" in message and "'photo'" in message and "needs the photo's file name" in message


def test_cells_beyond_the_header_are_refused(folder):
    message = error_of(folder, f"{HEADER}\na.png\tno\tno\tno\tyes\n")
    assert "row 2" in message and "column 5" in message and "'yes'" in message


def test_photos_not_in_the_folder_are_named_with_the_reason(folder):
    message = error_of(folder, f"{HEADER}\nmissing.png\tno\n")
    assert "row 2" in message and "'photo'" in message and "'missing.png'" in message
    assert "no such photo" in message and str(folder) in message
    message = error_of(folder, f"{HEADER}\nnotes.txt\tno\n")
    assert "not used as a photo" in message and "sidecar" in message
    message = error_of(folder, f"{HEADER}\n.hidden.png\tno\n")
    assert "hidden file" in message
    assert "did you mean 'a.png'" in error_of(folder, f"{HEADER}\na\tno\n")
    assert "sub-folders" in error_of(folder, f"{HEADER}\nold/a.png\tno\n")


def test_a_photo_listed_twice_is_refused(folder):
    message = error_of(folder, f"{HEADER}\na.png\tno\nc.TIF\t\na.png\tyes\n")
    assert "row 4" in message and "first in row 2" in message and "'a.png'" in message


def test_unreadable_sheets(folder, tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        sheet.read_sheet(tmp_path / "absent.tsv", {}, folder)
    bad = tmp_path / "latin1.tsv"
    bad.write_bytes(f"{HEADER}\n".encode() + "caf\xe9.png\tno\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        sheet.read_sheet(bad, {}, folder)


def test_starter_sheet_lists_every_photo_and_reads_back(folder, tmp_path):
    target = tmp_path / "sheet.tsv"
    names = sheet.write_starter_sheet(folder, target)
    assert names == ["a.png", "c.TIF", "group photo.jpg"]
    text = target.read_text(encoding="utf-8")
    header = [line for line in text.splitlines() if not line.startswith("#")][0]
    assert header.split("\t") == list(sheet.COLUMNS)
    comments = [line for line in text.splitlines() if line.startswith("#")]
    for column in sheet.COLUMNS:
        assert any(column in line for line in comments), column
    assert read(folder, text) == {stem: {"with_scratch": "auto"}
                                  for stem in ("a", "c", "group photo")}
    with pytest.raises(ConfigError, match="exists"):
        sheet.write_starter_sheet(folder, target)
    target.write_text("edited by hand")
    sheet.write_starter_sheet(folder, target, overwrite=True)
    assert target.read_text(encoding="utf-8") == text


def test_effective_settings_precedence():
    run = {"with_scratch": "auto", "hr": True, "face_detector": "hog", "max_faces": None,
           "input_dir": "scans"}
    row = {"hr": False, "face_upsample": 1}
    settings = sheet.effective_settings(run, row)
    assert set(settings) == set(sheet.SETTINGS)
    assert settings["hr"] is False and settings["face_upsample"] == 1  # the row's cells
    assert settings["with_scratch"] == "auto" and settings["face_detector"] == "hog"  # the run's
    assert settings["max_faces"] is None
    assert settings["faces"] is True and settings["tone"] == sheet.DEFAULTS["tone"]  # defaults
    assert sheet.effective_settings({}, {}) == sheet.DEFAULTS
    # which values the photo's row set (the summary and the report show it)
    assert settings.from_sheet == {"hr", "face_upsample"}
    assert settings.source("hr") == "sheet" and settings.source("face_detector") == "run"
    assert not sheet.effective_settings(run, {}).from_sheet
    assert json.loads(json.dumps(settings)) == dict(settings)  # a plain dict for run_summary
    with pytest.raises(ValueError, match="photo"):
        sheet.effective_settings(run, {"photo": "a.png"})


def test_schema_file_lists_the_columns_of_the_module():
    schema = yaml.safe_load(sheet.default_schema_path().read_text(encoding="utf-8"))
    assert tuple(schema["properties"]) == sheet.COLUMNS
    assert tuple(schema["x-required-columns"]) == sheet.REQUIRED_COLUMNS
    assert set(sheet.DEFAULTS) == set(sheet.SETTINGS)


def test_cli_sheet_subcommand_writes_the_starter_sheet(folder, tmp_path, capsys):
    target = tmp_path / "out" / "my sheet.tsv"
    assert cli.main(["sheet", str(folder), "-o", str(target)]) == 0
    assert "3 photo(s)" in capsys.readouterr().out
    assert read(folder, target.read_text(encoding="utf-8"))["a"] == {"with_scratch": "auto"}
    written = target.read_text(encoding="utf-8")
    target.write_text("edited by hand", encoding="utf-8")
    assert cli.main(["sheet", str(folder), "-o", str(target)]) == 2
    # one sentence, the hint once, no Python keyword
    assert capsys.readouterr().err == (f"oldphoto sheet: error: {target} exists and was left as "
                                       "it is; add --force to replace it\n")
    assert target.read_text(encoding="utf-8") == "edited by hand"
    assert cli.main(["sheet", str(folder), "-o", str(target), "--force"]) == 0
    assert target.read_text(encoding="utf-8") == written
    assert cli.main(["sheet", str(tmp_path / "nowhere")]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_cli_photo_sheet_goes_into_the_config(folder, tmp_path):
    path = tmp_path / "photos.tsv"
    path.write_text(f"{HEADER}\na.png\tauto\n", encoding="utf-8")
    args = cli.build_parser().parse_args(["--input_folder", str(folder), "--photo-sheet",
                                          str(path)])
    config = cli.settings(args, cli.workflow_root())
    assert config["photo_sheet"] == str(path.resolve())
    args = cli.build_parser().parse_args(["--input_folder", str(folder)])
    assert "photo_sheet" not in cli.settings(args, cli.workflow_root())
    args = cli.build_parser().parse_args(["--input_folder", str(folder), "--photo-sheet",
                                          str(tmp_path / "absent.tsv")])
    with pytest.raises(cli.UsageError, match=re.escape("--photo-sheet")):
        cli.settings(args, cli.workflow_root())


def test_cli_sheet_default_path_is_the_current_folder(folder, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert cli.main(["sheet", str(folder)]) == 0
    assert (work / "photo_sheet.tsv").is_file()
    assert sorted(read(folder, (work / "photo_sheet.tsv").read_text())) == [
        "a", "c", "group photo"]


def test_photo_settings_apply_every_column_and_name_each_final_extension(folder, tmp_path):
    from oldphoto.inputs import list_inputs
    from oldphoto.plan.run import final_extensions
    from oldphoto.plan.settings import photo_settings

    path = tmp_path / "photos.tsv"
    path.write_text(f"{HEADER}\ttone\toutput_format\tjpeg_quality\n"
                    "a.png\t\t\t\tkeep\ttiff\t\n"
                    "group photo.jpg\t\t\t\t\tsame\t70\n", encoding="utf-8")
    inputs = list_inputs(folder)
    run = {"photo_sheet": str(path), "input_dir": str(folder), "with_scratch": False,
           "hr": False, "tone": "official", "output_format": "png", "jpeg_quality": 95}
    settings = photo_settings(run, inputs)
    assert settings["a"]["tone"] == "keep" and settings["a"]["output_format"] == "tiff"
    assert settings["a"].from_sheet == {"tone", "output_format"}
    assert settings["group photo"]["jpeg_quality"] == 70
    assert settings["c"]["tone"] == "official" and not settings["c"].from_sheet
    assert final_extensions(settings, inputs.images) == {
        "a": "tif", "group photo": "jpg", "c": "png"}


def test_a_shards_run_accepts_the_other_shards_rows_and_uses_its_own(folder, tmp_path):
    """The sheet is checked against the whole folder: with `shard: i/n` a row for a photo of
    another shard is no error, and each shard's photos get their rows."""
    from oldphoto.inputs import list_inputs, shard_inputs
    from oldphoto.plan.settings import photo_settings

    path = tmp_path / "photos.tsv"
    path.write_text(f"{HEADER}\ttone\n" + "".join(
        f"{name}\t\t\t\tkeep\n" for name in ("a.png", "c.TIF", "group photo.jpg")),
        encoding="utf-8")
    whole = list_inputs(folder)
    seen = {}
    for index in (1, 2, 3):
        run = {"photo_sheet": str(path), "input_dir": str(folder), "with_scratch": False,
               "hr": False, "tone": "official", "shard": f"{index}/3"}
        shard = shard_inputs(run, whole)
        settings = photo_settings(run, shard, whole)
        assert set(settings) == set(shard.images)
        seen.update({stem: s["tone"] for stem, s in settings.items()})
    assert seen == {"a": "keep", "c": "keep", "group photo": "keep"}
