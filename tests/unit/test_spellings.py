"""One vocabulary (oldphoto.spellings): each spelling is accepted by the ``oldphoto`` command, the
config (``--config`` strings and YAML files) and the photo sheet, and gives the same canonical
value — hence the same final extension and the same params — at each of them."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from conftest import REPO
from oldphoto import cli, sheet, spellings
from oldphoto.errors import ConfigError
from oldphoto.inputs import list_inputs
from oldphoto.layout import final_extension
from oldphoto.plan.config import coerce_spellings

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"

FORMATS = {"png": "png", "PNG": "png", "tiff": "tiff", "tif": "tiff", "TIF": "tiff",
           "jpeg": "jpeg", "jpg": "jpeg", "JPG": "jpeg", "same": "same", "Same": "same"}
EXTENSION = {"png": "png", "tiff": "tif", "jpeg": "jpg"}
BOOLEANS = {"yes": True, "YES": True, "true": True, "True": True, "no": False, "No": False,
            "false": False, "FALSE": False}


def config_value(key: str, value) -> object:
    """``key`` as the workflow sees it after ``--config key=value``: coerced, then validated."""
    config = {"input_dir": "in", "output_dir": "out", key: value}
    coerce_spellings(config, SCHEMA.name, SCHEMA.parent)
    jsonschema.Draft202012Validator(yaml.safe_load(SCHEMA.read_text())).validate(config)
    return config[key]


def sheet_row(folder: Path, header: str, cells: str) -> dict:
    path = folder.parent / "sheet.tsv"
    path.write_text(f"photo\twith_scratch\thr\tfaces\t{header}\na.png\t{cells}\n",
                    encoding="utf-8")
    return sheet.read_sheet(path, list_inputs(folder).images, folder)["a"]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.png").write_bytes(b"never decoded here")
    (tmp_path / "in" / "scan.TIF").write_bytes(b"never decoded here")
    return tmp_path / "in"


@pytest.mark.parametrize("spelling, canonical", FORMATS.items())
def test_output_format_spelling_is_one_value_everywhere(folder, spelling, canonical):
    assert spellings.output_format(spelling) == canonical
    # config: --config output_format=tif and a YAML file alike
    assert config_value("output_format", spelling) == canonical
    # the photo sheet
    assert sheet_row(folder, "output_format", f"no\tno\tno\t{spelling}") == {
        "with_scratch": False, "hr": False, "faces": False, "output_format": canonical}
    # the oldphoto command (--ext)
    args = cli.build_parser().parse_args(["--input_folder", str(folder), "--ext", spelling])
    assert cli.settings(args, REPO)["output_format"] == canonical
    # the same file name for the photo: .tif for tif and tiff, the input's for same
    expected = EXTENSION.get(canonical, "tif")  # same: scan.TIF is a TIFF
    assert final_extension(spelling, folder / "scan.TIF") == expected
    assert final_extension(canonical, folder / "scan.TIF") == expected


def test_ext_auto_is_same_on_the_command_line_only(folder):
    args = cli.build_parser().parse_args(["--input_folder", str(folder), "--ext", "auto"])
    assert cli.settings(args, REPO)["output_format"] == "same"
    with pytest.raises(jsonschema.ValidationError):
        config_value("output_format", "auto")
    with pytest.raises(ConfigError, match="expected one of png, tiff, tif, jpeg, jpg, same"):
        sheet_row(folder, "output_format", "no\tno\tno\tauto")


@pytest.mark.parametrize("bad", ["webp", "tifff", "", "jpe"])
def test_other_formats_are_refused_everywhere(folder, bad, capsys):
    with pytest.raises(ValueError, match="png, tiff, tif, jpeg, jpg, same"):
        spellings.output_format(bad)
    with pytest.raises(jsonschema.ValidationError):
        config_value("output_format", bad)
    if bad:
        with pytest.raises(ConfigError, match=f"value '{bad}': expected one of png, tiff, tif"):
            sheet_row(folder, "output_format", f"no\tno\tno\t{bad}")
        with pytest.raises(SystemExit):
            cli.build_parser().parse_args(["--ext", bad])
        assert "--ext" in capsys.readouterr().err


@pytest.mark.parametrize("spelling, value", BOOLEANS.items())
def test_boolean_spelling_is_one_value_everywhere(folder, spelling, value):
    assert spellings.boolean(spelling) is value
    for key in ("hr", "faces", "carry_metadata", "only_center_face", "with_scratch"):
        assert config_value(key, spelling) is value, key
    row = sheet_row(folder, "only_center_face", f"{spelling}\t{spelling}\t{spelling}\t{spelling}")
    assert row == {"with_scratch": value, "hr": value, "faces": value, "only_center_face": value}


def test_auto_in_any_case_and_yaml_booleans(folder):
    assert config_value("with_scratch", "Auto") == "auto"
    assert sheet_row(folder, "only_center_face", "AUTO\t\t\t")["with_scratch"] == "auto"
    # a YAML config file gives booleans already; they stay as they are
    assert config_value("hr", True) is True and config_value("with_scratch", False) is False


@pytest.mark.parametrize("bad", ["on", "1", "y", "ja", "maybe"])
def test_other_boolean_spellings_are_refused_everywhere(folder, bad):
    with pytest.raises(ValueError, match="yes, true, no, false"):
        spellings.boolean(bad)
    with pytest.raises(jsonschema.ValidationError):
        config_value("hr", bad)
    with pytest.raises(ConfigError, match=f"value '{bad}': expected one of yes, no, true, false"):
        sheet_row(folder, "only_center_face", f"no\t{bad}\tno\tno")


def test_the_schemas_list_the_accepted_spellings():
    """What the docs promise is what the schemas accept."""
    config = yaml.safe_load(SCHEMA.read_text())
    assert config["properties"]["output_format"]["enum"] == list(spellings.OUTPUT_FORMAT_WORDS)
    rows = yaml.safe_load((REPO / "workflow" / "schemas" / "photo_sheet.schema.yaml").read_text())
    assert rows["properties"]["output_format"]["enum"] == list(spellings.OUTPUT_FORMAT_WORDS)
    for column in ("hr", "faces", "only_center_face"):
        assert sorted(rows["properties"][column]["enum"]) == sorted(spellings.BOOLEAN_WORDS)
    assert sorted(rows["properties"]["with_scratch"]["enum"]) == sorted(
        [*spellings.BOOLEAN_WORDS, "auto"])
    assert set(cli.EXT_CHOICES) == set(spellings.OUTPUT_FORMAT_WORDS) | {"auto"}
