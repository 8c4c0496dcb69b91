"""Two spellings of one setting are one setting (oldphoto.spellings): after a run with
``output_format=tif``, the spellings ``tiff``, ``TIFF`` — in ``--config`` or a photo sheet — and
the boolean spellings leave nothing to do, while a real change still reruns its jobs."""

from __future__ import annotations

import pytest

from conftest import dry_run_jobs, make_tiny_photos, run_snakemake, workflow_config

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("spellings")
    make_tiny_photos(tmp / "in")
    config = workflow_config(tmp, output_format="tif", hr="no", faces="YES")
    run_snakemake(tmp / "work", config)
    assert sorted(p.name for p in (tmp / "out" / "final_output").iterdir()) == [
        "face.tif", "no face.tif", "scratched.tif"]
    return tmp, config


def planned(tmp, config, **changes):
    proc = run_snakemake(tmp / "work", dict(config, **changes), "-n", "--quiet", "rules")
    return dry_run_jobs(proc)


@pytest.mark.parametrize("changes", [
    {"output_format": "tiff"}, {"output_format": "TIFF"}, {"output_format": "Tif"},
    {"hr": False, "faces": True}, {"hr": "FALSE", "faces": "true"},
    {"with_scratch": "no"}, {"carry_metadata": "Yes"},
], ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_another_spelling_reruns_nothing(finished, changes):
    tmp, config = finished
    assert planned(tmp, config, **changes) == {}


def test_sheet_spellings_rerun_nothing_and_a_real_change_reruns_its_photo(finished):
    tmp, config = finished
    sheet = tmp / "sheet.tsv"
    sheet.write_text("photo\twith_scratch\thr\tfaces\toutput_format\tonly_center_face\n"
                     "face.png\tFalse\tNO\tyes\tTIFF\tfalse\n"
                     "no face.jpg\tno\tfalse\tTrue\ttif\tNo\n", encoding="utf-8")
    assert planned(tmp, config, photo_sheet=str(sheet)) == {}
    sheet.write_text("photo\twith_scratch\thr\tfaces\toutput_format\n"
                     "face.png\tno\tno\tyes\tjpg\n", encoding="utf-8")
    assert planned(tmp, config, photo_sheet=str(sheet)) == {"blend_faces_jpg": 1, "all": 1}
