"""The review page in a real browser: Debian's Chromium driven by Playwright for Python.

A small real run (three tiny photos, classical backend, the ``oldphoto`` command), then a
reviewer: accepts with the keyboard, undoes, rejects with a reason and new settings (the sheet
row appears), reruns from the page (only that photo's jobs run, checked in Snakemake's log and
the other photos' files), sees the new result without a reload, accepts it, and the export says
so.  Skips when Chromium or Playwright is missing, except with OLDPHOTO_REQUIRE_BROWSER=1 (CI).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, make_tiny_photos

pytestmark = pytest.mark.workflow
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src")}
OLDPHOTO = [sys.executable, "-m", "oldphoto.cli"]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium() -> str:
    for candidate in (os.environ.get("OLDPHOTO_CHROMIUM"), "/usr/bin/chromium",
                      shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    return _missing("headless Chromium not found (apt-get install chromium)")


def _missing(message: str):
    if os.environ.get("OLDPHOTO_REQUIRE_BROWSER") == "1":
        pytest.fail(message + "; OLDPHOTO_REQUIRE_BROWSER=1")
    pytest.skip(message)


def wait_until(page, predicate: str, timeout: float = 30) -> None:
    """Poll ``predicate`` (a JS function) in the page; the page's CSP forbids
    ``wait_for_function``'s eval."""
    import time

    deadline = time.monotonic() + timeout
    while not page.evaluate(predicate):
        assert time.monotonic() < deadline, f"timed out waiting for {predicate}"
        page.wait_for_timeout(100)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_review_accept_reject_rerun_export(tmp_path):
    executable = chromium()
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install '.[test]')")
    photos = make_tiny_photos(tmp_path / "in")
    originals = {p.name: (digest(p), p.stat().st_mtime_ns) for p in photos.values()}
    out = tmp_path / "out"
    run = subprocess.run([*OLDPHOTO, "--input_folder", str(tmp_path / "in"), "--output_folder",
                          str(out), "--backend", "classical", "--GPU", "-1", "--cores", "2"],
                         capture_output=True, text=True, env=ENV, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    finals = {p.name: digest(p) for p in (out / "final_output").iterdir()}
    assert sorted(finals) == ["face.png", "no face.png", "scratched.png"]
    logs_before = {p: p.stat().st_mtime_ns for p in (out / "logs").rglob("*.log")}

    server = subprocess.Popen([*OLDPHOTO, "review", str(out), "--no-browser", "--reviewer",
                               "lead", "--cores", "2"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        url = server.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), server.stderr.read()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(url)
            name = page.locator("#photo-name")
            status = page.get_by_role("button", name="Accept", exact=True)
            expect(name).to_have_text("face")
            expect(status).to_be_enabled()
            # the comparison shows both images, decoded
            wait_until(page, "() => document.getElementById('img-after').naturalWidth > 0 && "
                             "document.getElementById('img-before').naturalWidth > 0")
            page.evaluate("window.noReload = true")

            page.keyboard.press("ArrowRight")
            expect(name).to_have_text("no face")
            page.keyboard.press("ArrowLeft")
            expect(name).to_have_text("face")
            page.keyboard.press("a")                               # accept "face"
            expect(name).to_have_text("no face")                   # the next comes up
            page.keyboard.press("a")                               # accept "no face"
            expect(name).to_have_text("scratched")
            page.keyboard.press("u")                               # undo: "no face" again
            expect(name).to_have_text("no face")
            expect(page.locator("#photo-status")).to_contain_text("pending again")
            page.get_by_role("button", name="Accept", exact=True).click()
            expect(name).to_have_text("scratched")

            page.keyboard.press("r")                               # reject "scratched"
            form = page.get_by_role("form", name="Rejection")
            expect(form).to_be_visible()
            page.get_by_label("Reason").select_option(label="scratches left")
            page.get_by_label("Note").fill("cracks across the sky")
            page.get_by_label("with_scratch", exact=True).select_option("yes")
            page.get_by_role("button", name="Reject photo", exact=True).click()
            expect(page.locator("#empty")).to_contain_text("the queue is done")
            expect(page.locator("#counts")).to_have_text(
                "0 pending · 2 accepted · 1 rejected · 0 failed")

            # the sheet row appeared in the folder's own sheet
            sheet = out / "photo_sheet.tsv"
            from oldphoto.sheet import read_sheet

            assert read_sheet(sheet, {p.stem: p for p in photos.values()}, tmp_path / "in") \
                == {"scratched": {"with_scratch": True}}

            page.get_by_role("button", name="Rerun rejected", exact=True).click()
            expect(page.locator("#rerun-status")).to_contain_text("finished", timeout=300_000)
            assert page.evaluate("window.noReload") is True        # no page load happened
            # the rejected photo's new result is pending again, shown without a reload
            page.get_by_label("Status").select_option("pending")
            expect(name).to_have_text("scratched")
            expect(page.locator("#photo-status")).to_contain_text("pending")
            assert digest(out / "final_output" / "scratched.png") != finals["scratched.png"]
            page.keyboard.press("a")
            expect(page.locator("#counts")).to_have_text(
                "0 pending · 3 accepted · 0 rejected · 0 failed")
            page.get_by_role("button", name="Grid", exact=True).click()
            page.get_by_label("Status").select_option("all")
            expect(page.locator("#grid li")).to_have_count(3)
            wait_until(page, "() => [...document.querySelectorAll('#grid img')]"
                             ".every(i => i.complete && i.naturalWidth > 0)")
            assert errors == []
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)

    # only the rejected photo's jobs ran in the rerun
    from oldphoto.review.rerun import job_photos

    rerun_logs = list((out / ".oldphoto" / "review" / "reruns").glob("*.log"))
    assert len(rerun_logs) == 1
    text = rerun_logs[0].read_text()
    assert job_photos(text) == {"scratched"}
    assert "detect_scratches" in text                              # with_scratch: yes now
    for log, mtime in logs_before.items():
        if "scratched" not in log.name:
            assert log.stat().st_mtime_ns == mtime, log
    assert digest(out / "final_output" / "face.png") == finals["face.png"]
    assert digest(out / "final_output" / "no face.png") == finals["no face.png"]

    export = tmp_path / "review.tsv"
    proc = subprocess.run([*OLDPHOTO, "review", str(out), "--export", str(export)],
                          capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("\t") for line in export.read_text().splitlines()
            if not line.startswith("#")]
    by = {row[0]: dict(zip(rows[0], row)) for row in rows[1:]}
    assert {p: r["decision"] for p, r in by.items()} == {
        "face": "accepted", "no face": "accepted", "scratched": "accepted"}
    assert {r["reviewer"] for r in by.values()} == {"lead"}
    assert by["scratched"]["derivative_sha256"] == digest(out / "final_output" / "scratched.png")
    history = __import__("sqlite3").connect(out / "review.sqlite").execute(
        "SELECT action, reason, new_settings FROM events WHERE photo = 'scratched' "
        "ORDER BY id").fetchall()
    assert history == [("rejected", "scratches_left", '{"with_scratch": "yes"}'),
                       ("accepted", None, None)]
    assert {p.name: (digest(p), p.stat().st_mtime_ns) for p in photos.values()} == originals
