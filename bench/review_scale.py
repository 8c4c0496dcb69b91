"""``oldphoto review`` at archive scale: a synthetic 10,000-photo output folder.

What it measures (each against the issue's target):

* **opens in seconds**: wall time from starting ``oldphoto review OUT --no-browser`` to the
  printed URL (index of every photo: ``run_summary.json``, the manifest, 10,000 sidecars);
* **the first photo shows in under a second**: from the page request to the first photo's
  images decoded — in headless Chromium (Playwright) when available, and as the sum of the HTTP
  requests the page makes (page, script, state, first queue entry, photo, both images);
* **a few hundred MB**: the server's peak resident memory (``VmHWM``) after all of the below;
* **thumbnails made once**: a grid page of 60 thumbnails cold (made) and warm (cached), and the
  number of files made;
* a filter over all photos ("most changed first", one page) and a decision, median of 10.

The folder: tiny PNG originals and finals (24×16 px), a provenance sidecar per photo, one
``run_summary.json`` (every 50th photo failed), the input manifest and ``oldphoto_config.yaml``
(``tests/review_folder.py``).  Tiny images measure the review's own cost: the index, the record
and the page; making a thumbnail of a real 20-MP scan costs more, once.

Usage::

    .venv/bin/python bench/review_scale.py [--photos 10000] [--markdown bench/results/review_scale.md]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PYTHON, REPO, loadavg, machine_info, machine_markdown, write_results  # noqa: E402

sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "src"))
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src")}


def vm(pid: int) -> dict[str, int]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) // 1024  # MiB
    return values


class Client:
    def __init__(self, url: str) -> None:
        self.base = url.split("/?")[0]
        self.token = url.split("token=")[1]
        self.csrf = None

    def get(self, path: str) -> tuple[bytes, float]:
        start = time.perf_counter()
        request = urllib.request.Request(self.base + path,
                                         headers={"Authorization": f"token {self.token}"})
        data = urllib.request.urlopen(request, timeout=600).read()
        return data, time.perf_counter() - start

    def post(self, path: str, body: dict) -> tuple[bytes, float]:
        start = time.perf_counter()
        request = urllib.request.Request(
            self.base + path, method="POST", data=json.dumps(body).encode(),
            headers={"Authorization": f"token {self.token}", "X-CSRF-Token": self.csrf,
                     "Content-Type": "application/json"})
        data = urllib.request.urlopen(request, timeout=600).read()
        return data, time.perf_counter() - start


def browser_first_photo(url: str) -> float | None:
    """Seconds from ``goto`` to both images of the first photo decoded, in Chromium."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not Path("/usr/bin/chromium").is_file():
        return None
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        page = browser.new_page()
        page.goto(url)                         # sets the cookie (the token's redirect)
        base = url.split("/?")[0] + "/"
        start = time.perf_counter()
        page.goto(base)
        while not page.evaluate("() => document.getElementById('img-after').naturalWidth > 0 "
                                "&& document.getElementById('img-before').naturalWidth > 0"):
            page.wait_for_timeout(5)
        seconds = time.perf_counter() - start
        browser.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=10_000)
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args()
    info = machine_info()
    from review_folder import make_folder

    with tempfile.TemporaryDirectory(prefix="review-scale-") as tmp:
        start = time.perf_counter()
        out = make_folder(Path(tmp), args.photos, failed_every=50)
        made = time.perf_counter() - start
        print(f"folder of {args.photos} photos made in {made:.1f} s", file=sys.stderr)
        # drop nothing from the page cache: the folder was just written, as after a run
        start = time.perf_counter()
        server = subprocess.Popen([PYTHON, "-m", "oldphoto.cli", "review", str(out),
                                   "--no-browser", "--reviewer", "bench"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=ENV)
        try:
            url = server.stdout.readline().strip()
            opened = time.perf_counter() - start
            client = Client(url)
            chromium_cold = browser_first_photo(url)   # nothing cached yet
            chromium_warm = browser_first_photo(url)   # renderings cached, as for photo 2..N
            page, t_page = client.get("/")
            client.csrf = page.decode().split('name="csrf-token" content="')[1].split('"')[0]
            _, t_js = client.get("/static/review.js")
            _, t_state = client.get("/api/state")
            first, t_first = client.get("/api/photos?status=pending&offset=0&limit=1")
            first_id = json.loads(first)["items"][0]["id"]
            _, t_photo = client.get(f"/api/photo/{first_id}")
            _, t_final = client.get(f"/img/{first_id}/final")
            _, t_original = client.get(f"/img/{first_id}/original")
            http_first = t_page + t_js + t_state + t_first + t_photo + t_final + t_original

            cache = out / ".oldphoto" / "review"
            grid, t_grid = client.get("/api/photos?status=all&offset=0&limit=60")
            ids = [item["id"] for item in json.loads(grid)["items"]
                   if item["run_status"] == "restored"]
            start = time.perf_counter()
            for i in ids:
                client.get(f"/img/{i}/thumb")
            cold = time.perf_counter() - start
            thumbs = sorted((cache / "thumb256").rglob("*.jpg"))
            mtimes = [p.stat().st_mtime_ns for p in thumbs]
            start = time.perf_counter()
            for i in ids:
                client.get(f"/img/{i}/thumb")
            warm = time.perf_counter() - start
            remade = sum(p.stat().st_mtime_ns != m for p, m in zip(thumbs, mtimes))

            _, t_changed = client.get("/api/photos?status=all&order=changed&offset=0&limit=60")
            _, t_last = client.get(f"/api/photos?status=pending&offset={args.photos - 60}"
                                   "&limit=60")
            decisions = []
            for i in range(10):
                _, t = client.post(f"/api/photo/{i}/decision", {"action": "accepted"})
                decisions.append(t)
            memory = vm(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)
        db_kib = (out / "review.sqlite").stat().st_size // 1024

    rows = [
        ("folder made (synthetic, not a target)", f"{made:.1f} s"),
        ("**opens**: start → URL printed (index of every photo)", f"**{opened:.2f} s**"),
        ("**first photo**, headless Chromium, first visit (nothing cached): page request → "
         "both images decoded", f"**{chromium_cold:.3f} s**" if chromium_cold is not None
         else "not measured (no Chromium/Playwright)"),
        ("first photo, headless Chromium, second visit (renderings cached)",
         f"{chromium_warm:.3f} s" if chromium_warm is not None else "not measured"),
        ("first photo, the page's 7 HTTP requests in sequence (page, script, state, queue, "
         "photo, final, original)", f"{http_first:.3f} s (state {t_state:.3f}, queue "
         f"{t_first:.3f}, photo {t_photo:.3f}, final {t_final:.3f}, original {t_original:.3f})"),
        ("grid page (60 items) of all photos", f"{t_grid:.3f} s"),
        (f"{len(ids)} thumbnails (of 60 items; the failed one has none), first request (made)",
         f"{cold:.2f} s ({len(thumbs)} files made)"),
        (f"{len(ids)} thumbnails again (cached)", f"{warm:.2f} s ({remade} remade)"),
        ("filter \"most changed first\" over all photos, one page", f"{t_changed:.3f} s"),
        ("the last page of the pending queue", f"{t_last:.3f} s"),
        ("a decision (POST, committed), median of 10", f"{statistics.median(decisions):.3f} s"),
        ("**server memory**: peak resident (VmHWM) / resident at the end",
         f"**{memory['VmHWM']} MiB** / {memory['VmRSS']} MiB"),
        ("record after 10 decisions (review.sqlite)", f"{db_kib} KiB"),
    ]
    text = "\n".join([
        f"# Review at scale: {args.photos:,} photos (`bench/review_scale.py`)", "",
        machine_markdown(info, loadavg()), "",
        "| measure | result |", "| --- | --- |",
        *[f"| {name} | {value} |" for name, value in rows], "",
        "Targets (issue 22): opens in seconds; the first photo shows in under a second; the "
        "server stays under a few hundred MB; thumbnails made once and cached.", ""])
    write_results(text, args.markdown)


if __name__ == "__main__":
    main()
