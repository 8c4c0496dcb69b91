"""What users see: preview functions, the Heartbeat, and the real report in a real browser.

The browser tests run the workflow on the tiny photos plus one corrupt file (classical backend,
with_scratch), build ``snakemake --report report.html gallery`` and open it in headless
Chromium.  They skip when Chromium is missing, unless OLDPHOTO_REQUIRE_BROWSER=1 (CI), where
they fail.  Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import re
import shutil
import subprocess
import threading
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, embedded, make_tiny_photos, run_snakemake, workflow_config
from oldphoto import report, views
from oldphoto.progress import Heartbeat

ARTIFACTS = REPO / "test-artifacts"
GOOD = ("face", "no face", "scratched")


def solid(height: int, width: int, value) -> np.ndarray:
    return np.full((height, width, 3), value, np.uint8)


# ---------------------------------------------------------------------------------------------
# Pure functions


def test_side_by_side_keeps_both_whole_at_one_height():
    before, after = solid(100, 50, 10), solid(100, 80, 200)
    pair = views.side_by_side(before, after, max_width=1000, gap=6)
    assert pair.shape == (100, 50 + 6 + 80, 3) and pair.dtype == np.uint8
    assert (pair[:, :50] == 10).all() and (pair[:, 50:56] == 255).all()
    assert (pair[:, 56:] == 200).all()


def test_side_by_side_scales_to_max_width_and_the_smaller_height():
    before, after = solid(400, 300, 0), solid(200, 150, 255)  # same aspect, half the size
    pair = views.side_by_side(before, after, max_width=108, gap=8)
    # both at 200 px high (150 + 150 wide), then x (108 - 8) / 300 to fit
    assert pair.shape == (66, 50 + 8 + 50, 3)
    assert (pair[:, :50] == 0).all() and (pair[:, -50:] == 255).all()
    with pytest.raises(ValueError):
        views.side_by_side(before, after.astype(np.float32))
    with pytest.raises(ValueError):
        views.side_by_side(before, after, max_width=5)


def test_mask_overlay_tints_only_the_scratches():
    rgb = solid(4, 5, 100)
    mask = np.zeros((4, 5), np.uint8)
    mask[1, 2] = 255
    out = views.mask_overlay(rgb, mask, color=(255, 0, 0), opacity=0.5)
    assert out[1, 2].tolist() == [178, 50, 50]  # rint(0.5 * 100 + 0.5 * (255, 0, 0))
    untouched = np.ones((4, 5), bool)
    untouched[1, 2] = False
    assert (out[untouched] == 100).all()
    assert (rgb == 100).all()  # input unchanged
    with pytest.raises(ValueError):
        views.mask_overlay(rgb, mask[:3])


def test_face_strip_puts_each_face_above_its_enhancement_and_wraps():
    pairs = [(solid(256, 256, 10 * k), solid(256, 256, 10 * k + 5)) for k in range(1, 4)]
    strip = views.face_strip(pairs, tile=20, gap=2, columns=2)
    # columns 2 + 20 + 2 + 20 + 2; rows 2 + (20 + 1 + 20) + 2 + (20 + 1 + 20) + 2
    assert strip.shape == (88, 46, 3)
    assert (strip[2:22, 2:22] == 10).all() and (strip[23:43, 2:22] == 15).all()
    assert (strip[22, 2:22] == 255).all()  # the split between a face and its enhancement
    assert (strip[2:22, 24:44] == 20).all() and (strip[23:43, 24:44] == 25).all()
    assert (strip[45:65, 2:22] == 30).all() and (strip[66:86, 2:22] == 35).all()
    assert (strip[45:88, 24:46] == 255).all()  # no fourth face
    with pytest.raises(ValueError):
        views.face_strip([])


def test_fit_width_and_jpeg_round_trip(tmp_path):
    image = solid(30, 400, 128)
    small = views.fit_width(image, 100)
    assert small.shape == (8, 100, 3)  # round(30 * 100 / 400) = 8 (7.5 rounds to even)
    assert views.fit_width(image, 500) is image
    views.write_jpeg(tmp_path / "p.jpg", small)
    with Image.open(tmp_path / "p.jpg") as im:
        assert im.format == "JPEG" and im.size == (100, 8)
    assert not [p for p in tmp_path.iterdir() if p.name != "p.jpg"]  # no temp file left


def test_fit_within_bounds_the_longer_side():
    portrait, landscape = solid(400, 100, 7), solid(50, 300, 9)
    assert views.fit_within(portrait, 200).shape == (200, 50, 3)
    assert views.fit_within(landscape, 150).shape == (25, 150, 3)
    assert views.fit_within(portrait, 400) is portrait
    assert (views.fit_within(portrait, 200) == 7).all()


def test_rst_text_escapes_markup_and_flattens_lines():
    assert report.rst_text("bad image: a_b *x*\n`y`") == r"bad image\: a\_b \*x\* \`y\`"
    assert report.rst_text("tab\there\x00") == "tab here"


def test_runtime_table_aggregates_benchmarks(tmp_path):
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    (tmp_path / "restore_global").mkdir()
    (tmp_path / "restore_global" / "a.tsv").write_text(header + "2.0\t0:00:02\t100.5\t1\t1\t1\t0\t0\t0\t1\n")
    (tmp_path / "restore_global" / "b.tsv").write_text(header + "4.0\t0:00:04\t50\t1\t1\t1\t0\t0\t0\t1\n")
    (tmp_path / "blend_faces").mkdir()
    (tmp_path / "blend_faces" / "a.tsv").write_text(header + "0.5\t0:00:00\tNA\tNA\tNA\tNA\tNA\tNA\tNA\tNA\n")
    (tmp_path / "blend_faces" / "broken.tsv").write_text("not a benchmark")
    rows = report.runtime_table(tmp_path)
    assert rows == [
        {"rule": "restore_global", "jobs": 2, "total_s": 6.0, "mean_s": 3.0, "max_s": 4.0,
         "max_rss_mb": 100.5},
        {"rule": "blend_faces", "jobs": 1, "total_s": 0.5, "mean_s": 0.5, "max_s": 0.5,
         "max_rss_mb": None},
    ]
    assert report.runtime_table(tmp_path / "missing") == []


def test_report_tables_from_a_summary(tmp_path):
    summary = {
        "backend": "classical", "finished": "now",
        "counts": {"restored": 1, "failed": 1, "skipped": 0, "not_run": 0,
                   "with_faces_enhanced": 0},
        "photos": {"a*": {"status": "failed", "reasons": ["bad image: x_: truncated"]},
                   "b": {"status": "restored", "faces": 2}},
        "skipped": [{"path": "notes.txt", "reason": "not an image"}],
    }
    (tmp_path / "run_summary.json").write_text(json.dumps(summary))
    tables = report.report_tables(tmp_path / "run_summary.json", tmp_path / "benchmarks")
    assert tables["found"] and tables["counts"]["failed"] == 1
    assert tables["photos"] == [
        {"photo": r"a\*", "status": "failed", "faces": "", "reasons": r"bad image\: x\_\: truncated"},
        {"photo": "b", "status": "restored", "faces": "2", "reasons": ""},
    ]
    assert tables["skipped"] == [{"path": r"notes\.txt", "reason": "not an image"}]
    missing = report.report_tables(tmp_path / "nothing.json", tmp_path)
    assert not missing["found"] and missing["photos"] == []


def plain(rst: str) -> str:
    """The text of an escaped rst cell (:func:`report.rst_text`)."""
    return re.sub(r"\\(.)", r"\1", rst)


def test_settings_rows_show_sheet_cells_and_triage_decisions():
    run = {"with_scratch": False, "hr": False, "faces": True, "tone": "official",
           "output_format": "png", "jpeg_quality": 95, "face_blending": "official",
           "face_detector": "hog", "face_upsample": 0, "only_center_face": False,
           "max_faces": None}
    triage = {"with_scratch": True, "coverage": 0.0123, "line_score": 0.4567, "components": 5,
              "reason": "2 line-like of 5 component(s): scratch path"}
    summary = {"photos": {
        "b": {"input": "in/b.jpg", "mode": "scratch", "triage": triage, "from_sheet": [],
              "settings": dict(run, with_scratch="auto")},
        "a_1": {"input": "in/a_1.TIF", "mode": "quality", "from_sheet": ["output_format", "tone"],
                "settings": dict(run, output_format="same", tone="keep", faces=True,
                                 face_upsample=1, max_faces=2, only_center_face=True)},
        "c": {"input": "in/c.png", "mode": "scratch", "from_sheet": ["with_scratch"],
              "settings": dict(run, with_scratch="auto", faces=False, output_format="jpeg",
                               jpeg_quality=80)},
        "old": {"input": "in/old.png", "status": "restored"},  # a summary without settings
    }}
    rows = {plain(row["photo"]): {k: plain(v) for k, v in row.items()}
            for row in report.settings_rows(summary)}  # cells are escaped rst text
    assert sorted(rows) == ["a_1", "b", "c"]
    assert rows["a_1"] == {
        "photo": "a_1", "mode": "quality", "with_scratch": "no", "triage": "",
        "faces": "yes: hog, upsample 1, centre face only, at most 2",
        "blending": "official", "output": "same (.tif)", "tone": "keep",
        "from_sheet": "output_format, tone"}
    assert rows["b"]["with_scratch"] == "auto → yes" and rows["b"]["from_sheet"] == "—"
    assert rows["b"]["triage"] == "2 line-like of 5 component(s): scratch path"  # its reason
    assert rows["b"]["mode"] == "scratch"
    assert rows["b"]["faces"] == "yes: hog, upsample 0, every face"
    # auto whose triage has not run (the photo failed before it): no decision is invented
    assert rows["c"]["with_scratch"] == "auto → not decided yet" and rows["c"]["triage"] == ""
    assert rows["c"]["faces"] == "no" and rows["c"]["output"] == "jpeg, quality 80"
    del triage["reason"]  # a record without its sentence: the figures
    rows = {row["photo"]: plain(row["triage"]) for row in report.settings_rows(summary)}
    assert rows["b"] == "line score 0.457, coverage 1.23%, 5 component(s)"
    assert report.settings_rows(None) == []


# ---------------------------------------------------------------------------------------------
# The landing page's reStructuredText, rendered as Snakemake renders it


class _Category:
    def __init__(self, name: str) -> None:
        self.name = name

    def __hash__(self) -> int:
        return hash(self.name)


def render_landing_page(tmp_path: Path, photos: int, tables: dict | None) -> str:
    """``workflow/report/workflow.rst`` through Jinja (Snakemake's settings) and docutils, with
    Snakemake's link targets, the thumbnail directive, and every message from level 2 (warning)
    on raising: the page must render cleanly for any number of photos."""
    from types import SimpleNamespace

    from docutils.core import publish_parts
    from jinja2 import Environment

    previews = []
    for k in range(photos):
        path = tmp_path / f"photo {k} [x]_.before-after.jpg"
        if not path.exists():
            views.write_jpeg(path, solid(20, 40, 10 * (k % 20)))
        previews.append(SimpleNamespace(path=path, name=path.name))
    categories = {}
    if previews:
        categories[_Category("Gallery")] = {"": previews}
        categories[_Category("Changes")] = {"": [SimpleNamespace(path=tmp_path / "c.jpg")]}
    if tables is not None:
        job = SimpleNamespace(params=SimpleNamespace(tables=tables))
        categories[_Category("Run summary")] = {"": [SimpleNamespace(path="s.json", job=job)]}
    links = "\n\n.. _Workflow: javascript:show_panel('workflow')\n" \
            ".. _Statistics: javascript:show_panel('statistics')\n" + "".join(
                f".. _{cat.name}: javascript:app.showCategory('{cat.name}')\n"
                for cat in categories)
    config = {"input_dir": "/in", "output_dir": "/out", "with_scratch": "auto", "hr": False,
              "max_faces": None, "photo_sheet": None}
    text = Environment(trim_blocks=True, lstrip_blocks=True).from_string(
        (REPO / "workflow" / "report" / "workflow.rst").read_text() + links).render(
        snakemake=SimpleNamespace(config=config), categories=categories, files=[])
    report.register_thumbnail_directive()
    return publish_parts(text, writer="html",
                         settings_overrides={"halt_level": 2, "report_level": 2})["html_body"]


@pytest.mark.parametrize("photos", [0, 1, 9, 10, 52])
def test_landing_page_renders_for_any_number_of_photos(tmp_path, photos):
    tables = {"found": True, "backend": "classical", "modes": r"52 quality",
              "counts": {"restored": photos, "failed": 1, "skipped": 0}}
    page = render_landing_page(tmp_path, photos, tables)
    assert "System Message" not in page and ".. oldphoto-thumbnails" not in page
    assert ":suffix:" not in page
    thumbnails = re.findall(r'<img class="oldphoto-gallery"', page)
    assert len(thumbnails) == min(photos, 9)
    assert (f"The first 9 of {photos} photos" in page) == (photos > 9)
    assert ("No photo has finished yet" in page) == (photos == 0)
    assert "Photos per restoration path: 52 quality." in page
    assert "(quality mode)" not in page and "(scratch mode)" not in page
    render_landing_page(tmp_path, photos, None)  # before any run summary


def test_modes_sentence_counts_the_paths_taken():
    auto = {"with_scratch": "auto", "hr": False}
    summary = {"photos": {
        "a": {"mode": "quality", "settings": {"with_scratch": False, "hr": False}},
        "b": {"mode": "scratch", "settings": {"with_scratch": True, "hr": False}},
        "c": {"mode": "quality", "settings": auto, "triage": {"with_scratch": False}},
        "d": {"mode": "scratch", "settings": auto, "triage": {"with_scratch": True}},
        "e": {"mode": "scratch", "settings": auto},  # failed before the triage
        "f": {"mode": "scratch+hr", "settings": {"with_scratch": True, "hr": True}},
        "g": {"mode": "quality"},  # a summary without settings
    }}
    assert plain(report.modes_sentence(summary)) == (
        "3 quality, 2 scratch, 1 scratch+hr (2 of them chosen by the scratch triage, "
        "with_scratch: auto); 1 set to auto and not decided (the photo failed before the "
        "triage)")
    assert plain(report.modes_sentence(None)) == "none recorded"


def test_an_rst_error_stops_the_report(tmp_path, monkeypatch):
    """With the workflow's docutils settings an error raises instead of being rendered."""
    from docutils.core import publish_parts
    from docutils.utils import SystemMessage

    monkeypatch.delenv("DOCUTILSCONFIG", raising=False)
    conf = REPO / "workflow" / "report" / "docutils.conf"
    report.halt_on_rst_errors(conf)
    report.halt_on_rst_errors(conf)  # idempotent
    assert os.environ["DOCUTILSCONFIG"].split(os.pathsep) == [
        "/etc/docutils.conf", "./docutils.conf", "~/.docutils", str(conf)]
    broken = "Text:\n.. note::\n   :x: y\n\n   indented\n"
    with pytest.raises(SystemMessage, match="ERROR/3"):
        publish_parts(broken, writer="html")
    monkeypatch.setenv("DOCUTILSCONFIG", "/mine.conf")
    report.halt_on_rst_errors(conf)
    assert os.environ["DOCUTILSCONFIG"] == os.pathsep.join(["/mine.conf", str(conf)])


@pytest.mark.workflow
def test_the_report_command_fails_on_an_rst_error(tmp_path):
    """Through Snakemake: a broken landing page makes ``snakemake --report`` exit non-zero
    without "Report created" (a Snakefile that installs the workflow's setting the same way)."""
    import sys

    (tmp_path / "workflow.rst").write_text("Title\n=====\n\nText:\n.. note::\n   :x: y\n\n"
                                           "   indented\n")
    (tmp_path / "caption.rst").write_text("A caption.\n")
    (tmp_path / "Snakefile").write_text(
        "from oldphoto import report as report_lib\n"
        f"report_lib.halt_on_rst_errors({str(REPO / 'workflow/report/docutils.conf')!r})\n"
        'report: "workflow.rst"\n'
        "rule a:\n"
        '    output: report("a.txt", caption="caption.rst", category="A")\n'
        '    shell: "echo a > {output}"\n')
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    env.pop("DOCUTILSCONFIG", None)
    base = [sys.executable, "-m", "snakemake", "--cores", "1", "--directory", str(tmp_path),
            "--snakefile", str(tmp_path / "Snakefile")]
    subprocess.run(base, check=True, capture_output=True, env=env, timeout=300)
    proc = subprocess.run(base + ["--report", str(tmp_path / "r.html")], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode != 0
    assert "Unexpected indentation" in proc.stderr and "Report created" not in proc.stderr
    assert not (tmp_path / "r.html").exists()


def test_thumbnail_grid_inlines_every_image(tmp_path):
    paths = []
    for name in ("a b", "<c>"):
        path = tmp_path / f"{name}.before-after.jpg"
        views.write_jpeg(path, solid(50, 1000, 90))
        paths.append(path)
    grid = report.thumbnail_grid_html(paths, columns=2, suffix=".before-after.jpg", max_width=100)
    images = re.findall(r'<img class="oldphoto-gallery" src="data:image/jpeg;base64,([^"]+)"',
                        grid)
    assert len(images) == 2
    with Image.open(io.BytesIO(base64.b64decode(images[0]))) as im:
        assert im.size == (100, 5)
    assert "&lt;c&gt;" in grid and "<c>" not in grid and ">a b</figcaption>" in grid


# ---------------------------------------------------------------------------------------------
# Heartbeat


def test_heartbeat_logs_while_the_block_runs_and_stops_with_it():
    lines: list[str] = []
    two = threading.Event()

    def log(line):
        lines.append(line)
        if len(lines) >= 2:
            two.set()

    with Heartbeat(log, every=0.01, what="restore_global photo") as beat:
        assert two.wait(30), "no heartbeat within 30 s"
    after = len(lines)
    assert beat.beats == after >= 2
    assert all(re.fullmatch(r"still working on restore_global photo \(\d+ s\)", s) for s in lines)
    assert not any(t.name.startswith("heartbeat") for t in threading.enumerate())
    assert len(lines) == after  # nothing after the block


def test_heartbeat_survives_errors_of_the_block_and_of_the_log():
    def broken_log(line):
        raise OSError("disk full")

    with pytest.raises(KeyError):
        with Heartbeat(broken_log, every=0.01):
            raise KeyError("job failed")
    with Heartbeat(broken_log, every=0.01) as beat:
        pass
    assert beat.beats == 0
    with pytest.raises(ValueError):
        Heartbeat(print, every=0)


# ---------------------------------------------------------------------------------------------
# The real report


def chromium() -> str:
    for candidate in (os.environ.get("OLDPHOTO_CHROMIUM"), "/usr/bin/chromium",
                      shutil.which("chromium"), shutil.which("chromium-browser"),
                      shutil.which("google-chrome")):
        if candidate and Path(candidate).is_file():
            return candidate
    message = "headless Chromium not found (apt-get install chromium)"
    if os.environ.get("OLDPHOTO_REQUIRE_BROWSER") == "1":
        pytest.fail(message + "; OLDPHOTO_REQUIRE_BROWSER=1")
    pytest.skip(message)


def run_chromium(page: Path, profile: Path, *args: str) -> str:
    """Open ``page`` headless; let its scripts run 10 s of virtual time; return stdout."""
    command = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=10000",
        *args, page.resolve().as_uri(),
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


class Images(HTMLParser):
    """Every <img> of a rendered DOM (script text is not parsed as markup)."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str]] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append({k: v or "" for k, v in attrs})


def decode_data_uri(uri: str) -> tuple[str, bytes]:
    match = re.fullmatch(r"data:([\w/+.-]+)(?:;[^,;]*)*;base64,(.*)", uri, re.S)
    assert match, uri[:80]
    return match.group(1), base64.b64decode(match.group(2), validate=True)


def assert_image(mime: str, data: bytes) -> tuple[int, int]:
    if mime == "image/svg+xml":
        assert b"<svg" in data
        return (0, 0)
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        assert im.width > 0 and im.height > 0
        return im.size


# The report is a React app: its content exists only after its scripts ran.  This probe, added
# to a copy of the page, does what a user does: open each category, click each result's view
# button, and record whether the browser decoded the image it shows; then open the run summary.
PROBE = """<script>
window.addEventListener("load", async () => {
  const pause = (ms) => new Promise((done) => setTimeout(done, ms));
  const decoded = (img) => img.complete ? Promise.resolve()
      : new Promise((done) => { img.onload = done; img.onerror = done; });
  const out = {landing: [], views: {}, summary: ""};
  await pause(500);
  for (const img of document.querySelectorAll("#app img")) {
    await decoded(img);
    out.landing.push({cls: img.className, ok: img.complete && img.naturalWidth > 0});
  }
  for (const category of Object.keys(categories)) {
    if (category === "Run summary") continue;
    app.showCategory(category);
    await pause(300);
    out.views[category] = [];
    for (const row of document.querySelectorAll("nav table tbody tr")) {
      row.querySelector("[role=group] a").click();
      await pause(300);
      const shown = document.querySelector("div.grow > div.p-3 > img");
      if (shown) await decoded(shown);
      out.views[category].push({photo: row.querySelector("td").textContent,
                                ok: !!shown && shown.naturalWidth > 0,
                                width: shown ? shown.naturalWidth : 0});
    }
  }
  app.showResultInfo(Object.values(categories["Run summary"])[0][0]);
  await pause(300);
  out.summary = document.querySelector("nav").innerText;
  app.showCategory("Gallery");
  await pause(300);
  document.querySelector("nav table tbody tr [role=group] a").click();
  await pause(300);
  const probe = document.createElement("script");
  probe.type = "application/json";
  probe.id = "oldphoto-probe";
  probe.textContent = JSON.stringify(out);
  document.body.appendChild(probe);
});
</script>"""


@pytest.fixture(scope="module")
def reported_run(tmp_path_factory):
    """The tiny photos and one corrupt file, restored with scratches, then the report built."""
    tmp = tmp_path_factory.mktemp("report")
    make_tiny_photos(tmp / "in")
    (tmp / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(200)))
    config = workflow_config(tmp, with_scratch=True)
    run = run_snakemake(tmp / "work", config, check=False)
    assert run.returncode != 0  # the corrupt photo fails, alone
    out = Path(config["output_dir"])
    page = out / "report.html"
    run_snakemake(tmp / "work", config, "--report", str(page), "gallery")
    summary = json.loads((out / "run_summary.json").read_text())
    return tmp, out, page, summary


@pytest.mark.workflow
def test_report_items_cover_every_finished_photo(reported_run):
    tmp, out, page, summary = reported_run
    assert summary["photos"]["broken"]["status"] == "failed"
    assert [s for s, p in summary["photos"].items() if p["status"] == "restored"] == list(GOOD)
    text = page.read_text(encoding="utf-8")
    categories = embedded(text, "categories")
    results = embedded(text, "results")
    paths = {name: [p for sub in cat.values() for p in sub] for name, cat in categories.items()}
    with_faces = sorted(s for s in GOOD if summary["photos"][s]["faces"])
    assert with_faces, "the tiny 'face' photo has a face"
    assert sorted(Path(p).name for p in paths["Gallery"]) == [f"{s}.before-after.jpg" for s in GOOD]
    assert sorted(Path(p).name for p in paths["Scratch masks"]) == [f"{s}.scratches.jpg"
                                                                     for s in GOOD]
    assert sorted(Path(p).name for p in paths["Faces"]) == [f"{s}.faces.jpg" for s in with_faces]
    assert sorted(Path(p).name for p in paths["Changes"]) == [f"{s}.changes.jpg" for s in GOOD]
    # the full-size finals are the archive's files: shown through the views, not embedded
    assert sorted(paths) == ["Changes", "Faces", "Gallery", "Run summary", "Scratch masks"]
    finals = {p.read_bytes() for p in (out / "final_output").iterdir()}
    for name in ("Gallery", "Scratch masks", "Faces", "Changes"):
        for path in paths[name]:
            mime, data = decode_data_uri(results[path]["data_uri"])
            assert data == Path(path).read_bytes()  # the report holds the file itself
            assert data not in finals
            assert_image(mime, data)
    # a preview is the original and the final output side by side, at one height
    with Image.open(out / "final_output" / "no face.png") as final, \
            Image.open(out / "report" / "previews" / "no face.before-after.jpg") as preview:
        assert preview.height == final.height and preview.width == 2 * final.width + 8
    caption = results[paths["Run summary"][0]]["caption"]
    assert "3 photo(s) restored" in caption and "1 failed" in caption
    assert "broken" in caption and "bad image" in caption
    for rule in ("detect_scratches", "restore_global", "detect_and_enhance_faces",
                 "blend_faces"):
        assert f"<tt class=\"docutils literal\">{rule}</tt>" in caption, rule


@pytest.mark.workflow
def test_report_in_a_real_browser(reported_run, tmp_path):
    tmp, out, page, summary = reported_run
    ARTIFACTS.mkdir(exist_ok=True)

    # the page as it is: the landing page shows a thumbnail of every restored photo
    dom = run_chromium(page, tmp_path / "profile", "--dump-dom")
    images = Images()
    images.feed(dom)
    gallery = [img for img in images.images if "oldphoto-gallery" in img.get("class", "")]
    assert len(gallery) == len(GOOD)
    assert sorted(img["title"] for img in gallery) == sorted(GOOD)
    for img in images.images:  # no broken link: every image is inside the page and decodes
        assert img["src"].startswith("data:"), img["src"][:80]
        assert_image(*decode_data_uri(img["src"]))
    run_chromium(page, tmp_path / "profile", "--window-size=1280,800", "--hide-scrollbars",
                 f"--screenshot={ARTIFACTS / 'report-landing.png'}")
    assert (ARTIFACTS / "report-landing.png").stat().st_size > 10_000

    # clicking through the app: every result of every category shows a decoded image
    text = page.read_text(encoding="utf-8")
    end = text.rindex("</body>")
    probed = tmp_path / "probed-report.html"
    probed.write_text(text[:end] + PROBE + text[end:], encoding="utf-8")
    dom = run_chromium(probed, tmp_path / "profile", "--dump-dom")
    found = re.search(r'<script type="application/json" id="oldphoto-probe">(.*?)</script>',
                      dom, re.S)
    assert found, "the probe did not finish"
    result = json.loads(html.unescape(found.group(1)))
    assert [v["cls"] for v in result["landing"]].count("oldphoto-gallery") == len(GOOD)
    assert all(v["ok"] for v in result["landing"]), result["landing"]
    assert sorted(v["photo"] for v in result["views"]["Gallery"]) == sorted(GOOD)
    assert len(result["views"]["Changes"]) == len(GOOD)
    assert "Restored photos" not in result["views"]
    assert len(result["views"]["Scratch masks"]) == len(GOOD)
    assert result["views"]["Faces"]
    for category, shown in result["views"].items():
        assert all(v["ok"] and v["width"] > 0 for v in shown), (category, shown)
    assert "broken" in result["summary"] and "failed" in result["summary"]
    run_chromium(probed, tmp_path / "profile", "--window-size=1280,800", "--hide-scrollbars",
                 f"--screenshot={ARTIFACTS / 'report-gallery.png'}")
    assert (ARTIFACTS / "report-gallery.png").stat().st_size > 10_000


# ---------------------------------------------------------------------------------------------
# A report of many photos


MANY = 52


def make_many_photos(folder: Path, count: int) -> list[str]:
    """``count`` distinct tiny photos (96 px crops of the bundled samples); returns the stems."""
    from conftest import SAMPLES

    folder.mkdir(parents=True, exist_ok=True)
    sources = sorted((SAMPLES / "old").glob("*.png"))
    stems = []
    for k in range(count):
        with Image.open(sources[k % len(sources)]) as im:
            rgb = im.convert("RGB")
            side = min(rgb.size) // 2
            left, top = (k * 23) % (rgb.width - side), (k * 11) % (rgb.height - side)
            rgb.crop((left, top, left + side, top + side)).resize((96, 96)).save(
                folder / f"scan {k:02d}.png")
        stems.append(f"scan {k:02d}")
    return stems


@pytest.fixture(scope="module")
def many_photos_report(tmp_path_factory):
    """52 tiny photos and a corrupt file (quality path, classical backend), then the report."""
    tmp = tmp_path_factory.mktemp("many")
    stems = make_many_photos(tmp / "in", MANY)
    (tmp / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(100)))
    config = workflow_config(tmp)
    run = run_snakemake(tmp / "work", config, check=False)
    assert run.returncode != 0  # the corrupt photo fails, alone
    out = Path(config["output_dir"])
    page = out / "report.html"
    proc = run_snakemake(tmp / "work", config, "--report", str(page), "gallery")
    return out, page, stems, proc


@pytest.mark.workflow
def test_report_of_many_photos_renders_in_a_real_browser(many_photos_report, tmp_path):
    out, page, stems, proc = many_photos_report
    assert "Report created" in proc.stderr and "System Message" not in proc.stderr
    assert "ERROR/" not in proc.stderr and "WARNING/" not in proc.stderr
    text = page.read_text(encoding="utf-8")
    categories = embedded(text, "categories")
    paths = {name: [p for sub in cat.values() for p in sub] for name, cat in categories.items()}
    assert sorted(Path(p).name for p in paths["Gallery"]) == sorted(
        f"{s}.before-after.jpg" for s in stems)
    assert "Restored photos" not in paths

    dom = run_chromium(page, tmp_path / "profile", "--dump-dom")
    assert "System Message" not in dom
    assert ".. oldphoto-thumbnails" not in dom and ":suffix:" not in dom
    images = Images()
    images.feed(dom)
    gallery = [img for img in images.images if "oldphoto-gallery" in img.get("class", "")]
    assert len(gallery) == 9
    assert sorted(img["title"] for img in gallery) == sorted(stems)[:9]
    for img in gallery:
        assert_image(*decode_data_uri(img["src"]))
    words = " ".join(html.unescape(re.sub(r"<[^>]+>", "", dom)).split())
    assert f"The first 9 of {MANY} photos by name" in words
    # the header says what is true: every photo (the corrupt one too) was set to quality
    assert f"Photos per restoration path: {MANY + 1} quality." in words
    assert "(quality mode" not in words and "(scratch mode" not in words
    ARTIFACTS.mkdir(exist_ok=True)
    run_chromium(page, tmp_path / "profile", "--window-size=1280,800", "--hide-scrollbars",
                 f"--screenshot={ARTIFACTS / 'report-many-landing.png'}")
    assert (ARTIFACTS / "report-many-landing.png").stat().st_size > 10_000
