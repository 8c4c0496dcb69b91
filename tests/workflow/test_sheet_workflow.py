"""Per-photo settings through the real workflow: a photo sheet's rows decide each photo's final
format, JPEG quality, tone and scratch path (``auto``), the report shows every photo's settings
and decisions, and editing one row reruns that photo's stage 4 only.

One run (classical backend) on the tiny photos plus two small sepia prints; the sheet:

* ``face.png``: ``output_format`` tiff;
* ``no face.jpg``: ``with_scratch`` auto, ``output_format`` same, ``jpeg_quality`` 80;
* ``sepia kept.png``: ``tone`` keep;
* ``scratched.png`` and ``sepia.png``: no row (the run's settings: png, tone official).
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from archival_corpus import tone_stats
from conftest import dry_run_jobs, embedded, make_tiny_photos, run_snakemake, workflow_config

pytestmark = pytest.mark.workflow

SHEET = ("# per-photo settings of the test run\n"
         "photo\twith_scratch\thr\tfaces\ttone\toutput_format\tjpeg_quality\n"
         "face.png\t\t\t\t\ttiff\t\n"
         "no face.jpg\tauto\t\t\t\tsame\t80\n"
         "sepia kept.png\t\t\t\tkeep\t\t\n")


def write_sepia_print(path: Path, height: int = 48, width: int = 64) -> None:
    """A small sepia-toned print: brown shadows to cream highlights (chroma follows luminance)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    lum = 0.3 + 0.5 * np.clip(1.0 - 1.4 * np.hypot(y / height - 0.5, x / width - 0.5), 0, 1)
    lum += 0.1 * np.sin(x / 5.0) * np.sin(y / 7.0)
    shadow, highlight = np.array([0.32, 0.2, 0.1]), np.array([1.0, 0.94, 0.8])
    rgb = np.clip(shadow + (highlight - shadow) * lum[:, :, None], 0, 1)
    Image.fromarray(np.rint(rgb * 255).astype(np.uint8)).save(path)


@pytest.fixture(scope="module")
def sheet_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sheet-run")
    make_tiny_photos(tmp / "in")
    write_sepia_print(tmp / "in" / "sepia kept.png")
    write_sepia_print(tmp / "in" / "sepia.png")
    sheet = tmp / "photos.tsv"
    sheet.write_text(SHEET, encoding="utf-8")
    config = workflow_config(tmp, photo_sheet=str(sheet))
    run_snakemake(tmp / "work", config)
    out = Path(config["output_dir"])
    run_snakemake(tmp / "work", config, "--report", str(out / "report.html"), "gallery")
    return tmp, config, out


def test_each_photo_gets_the_format_quality_and_tone_of_its_row(sheet_run):
    from oldphoto.decode import read_image

    tmp, _, out = sheet_run
    assert sorted(p.name for p in (out / "final_output").iterdir()) == [
        "face.tif", "no face.jpg", "scratched.png", "sepia kept.png", "sepia.png"]
    with Image.open(out / "final_output" / "face.tif") as im:
        assert im.format == "TIFF"
    with Image.open(out / "final_output" / "no face.jpg") as im:
        assert im.format == "JPEG"
        pixels, tables = np.asarray(im.convert("RGB")), im.quantization
    reference = io.BytesIO()
    Image.fromarray(pixels).save(reference, format="JPEG", quality=80, subsampling=0)
    with Image.open(reference) as im:
        assert tables == im.quantization  # written at the row's quality, not the run's 95
    for name in ("scratched.png", "sepia.png", "sepia kept.png"):
        with Image.open(out / "final_output" / name) as im:
            assert im.format == "PNG", name

    # tone keep (the row) returns the print in its sepia; the run's official does not
    original = tone_stats(read_image(tmp / "in" / "sepia.png").rgb)
    kept = tone_stats(read_image(out / "final_output" / "sepia kept.png").rgb)
    official = tone_stats(read_image(out / "final_output" / "sepia.png").rgb)
    assert abs(kept["mean_cb"] - original["mean_cb"]) < 2.0, (kept, original)
    assert abs(official["mean_cb"] - original["mean_cb"]) > 5.0, (official, original)
    sidecars = {stem: json.loads((out / "provenance" / f"{stem}.json").read_text())["settings"]
                for stem in ("face", "no face", "sepia kept", "sepia")}
    assert sidecars["face"]["output_format"] == "tiff"
    assert sidecars["no face"]["jpeg_quality"] in (80, "80")
    assert sidecars["sepia kept"]["tone"] == "keep" and sidecars["sepia"]["tone"] == "official"


def test_summary_records_settings_their_source_and_the_triage(sheet_run):
    _, _, out = sheet_run
    photos = json.loads((out / "run_summary.json").read_text())["photos"]
    assert all(p["status"] == "restored" for p in photos.values()), photos
    assert photos["face"]["from_sheet"] == ["output_format"]
    assert photos["face"]["settings"]["output_format"] == "tiff"
    assert photos["no face"]["from_sheet"] == ["jpeg_quality", "output_format", "with_scratch"]
    assert photos["no face"]["settings"]["with_scratch"] == "auto"
    triage = photos["no face"]["triage"]
    assert set(triage) >= {"with_scratch", "coverage", "line_score", "components", "reason"}
    assert photos["no face"]["mode"] == ("scratch" if triage["with_scratch"] else "quality")
    assert photos["scratched"]["from_sheet"] == [] and "triage" not in photos["scratched"]


def settings_table(report_html: str) -> dict[str, list[str]]:
    """The run summary caption's *Settings per photo* table: photo -> its cells (text)."""
    results = embedded(report_html, "results")
    captions = [r["caption"] for r in results.values() if "Settings per photo" in r["caption"]]
    assert len(captions) == 1, "the run summary's caption shows the settings table once"
    table = captions[0].split("Settings per photo", 1)[1].split("</table>", 1)[0]
    rows = {}
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S):
        cells = [re.sub(r"<[^>]+>", "", cell).strip()
                 for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        if cells:
            rows[cells[0]] = cells
    return rows


def test_report_shows_each_photos_settings_and_decisions(sheet_run):
    import html

    _, _, out = sheet_run
    photos = json.loads((out / "run_summary.json").read_text())["photos"]
    rows = {photo: [html.unescape(cell).strip() for cell in cells]  # empty cells hold &nbsp;
            for photo, cells in settings_table((out / "report.html").read_text()).items()}
    assert sorted(rows) == ["face", "no face", "scratched", "sepia", "sepia kept"]
    header = ["photo", "mode", "with_scratch", "triage", "faces", "blending", "output", "tone",
              "set by the sheet"]
    table = {photo: dict(zip(header, cells)) for photo, cells in rows.items()}
    # a photo with a sheet row: its cells, named as the row's
    assert table["face"]["output"] == "tiff"
    assert table["face"]["set by the sheet"] == "output_format"
    assert table["sepia kept"]["tone"] == "keep"
    assert table["sepia kept"]["set by the sheet"] == "tone"
    # the auto photo: the decision and its figures
    triage = photos["no face"]["triage"]
    decided = "yes" if triage["with_scratch"] else "no"
    assert table["no face"]["with_scratch"] == f"auto → {decided}"
    assert table["no face"]["triage"] == triage["reason"]
    assert f"{triage['line_score']:.3f} diagonals" in triage["reason"]
    assert f"coverage {triage['coverage']:.2%}" in triage["reason"]
    assert f"of {triage['components']} component(s)" in triage["reason"]
    assert table["no face"]["output"] == "same (.jpg), quality 80"
    assert table["no face"]["mode"] == photos["no face"]["mode"]
    # photos without a row: the run's settings
    assert table["scratched"] == {**table["scratched"], "with_scratch": "no", "triage": "",
                                  "output": "png", "tone": "official", "set by the sheet": "—"}
    assert table["sepia"]["faces"] == "yes: hog, upsample 0, every face"


def test_editing_one_rows_tone_reruns_that_photos_stage_4_only(sheet_run):
    tmp, config, _ = sheet_run
    edited = tmp / "edited.tsv"
    edited.write_text(SHEET.replace("kept.png\t\t\t\tkeep", "kept.png\t\t\t\tofficial"),
                      encoding="utf-8")
    proc = run_snakemake(tmp / "work", dict(config, photo_sheet=str(edited)), "-n")
    counts = dry_run_jobs(proc)
    assert counts == {"blend_faces": 1, "all": 1}, counts  # its job remakes the views too
    jobs = re.findall(r"wildcards: image=(.+)", proc.stdout + proc.stderr)
    assert sorted(set(jobs)) == ["sepia kept"], jobs
    # and one row's output_format reruns that photo's stage 4 under its new extension
    edited.write_text(SHEET.replace("face.png\t\t\t\t\ttiff", "face.png\t\t\t\t\tjpeg"),
                      encoding="utf-8")
    proc = run_snakemake(tmp / "work", dict(config, photo_sheet=str(edited)), "-n")
    assert dry_run_jobs(proc) == {"blend_faces_jpg": 1, "all": 1}
    assert sorted(set(re.findall(r"wildcards: image=(.+)", proc.stdout + proc.stderr))) == [
        "face"]
