"""``oldphoto review`` as a process: the printed URL, the loopback bind, a decision that
survives ``kill -9``, the exports from the command line."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path

from conftest import REPO
from review_folder import make_folder, stem_of

OLDPHOTO = [sys.executable, "-m", "oldphoto.cli"]
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src")}


def start(folder: Path, *args: str) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([*OLDPHOTO, "review", str(folder), "--no-browser", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=ENV)
    url = process.stdout.readline().strip()
    assert url.startswith("http://"), process.stderr.read()
    return process, url


def listening_addresses(port: int) -> set[str]:
    """Local addresses of the sockets listening on ``port`` (from /proc/net/tcp{,6})."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if int(hex_port, 16) == port and state == "0A":  # LISTEN
                found.add(address)
    return found


def test_binds_loopback_and_a_decision_survives_kill_9(tmp_path):
    folder = make_folder(tmp_path, 5)
    process, url = start(folder, "--reviewer", "lead")
    try:
        assert url.startswith("http://127.0.0.1:") and "?token=" in url
        port = int(url.split(":")[2].split("/")[0])
        assert listening_addresses(port) == {"0100007F"}          # 127.0.0.1 only
        token = url.split("token=")[1]
        base = url.split("/?")[0]
        page = urllib.request.urlopen(urllib.request.Request(
            base + "/", headers={"Authorization": f"token {token}"}), timeout=30).read()
        csrf = page.decode().split('name="csrf-token" content="')[1].split('"')[0]
        request = urllib.request.Request(
            base + "/api/photo/2/decision", method="POST",
            data=json.dumps({"action": "rejected", "reason": "artefacts",
                             "note": "halo"}).encode(),
            headers={"Authorization": f"token {token}", "X-CSRF-Token": csrf,
                     "Content-Type": "application/json"})
        answer = json.loads(urllib.request.urlopen(request, timeout=30).read())
        assert answer["decision"]["action"] == "rejected"
        os.kill(process.pid, signal.SIGKILL)                      # right after the answer
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    rows = sqlite3.connect(folder / "review.sqlite").execute(
        "SELECT photo, action, reason, note, reviewer FROM events").fetchall()
    assert rows == [(stem_of(2), "rejected", "artefacts", "halo", "lead")]


def test_export_and_premis_from_the_command_line(tmp_path):
    folder = make_folder(tmp_path, 4)
    from oldphoto.review.session import Review

    review = Review(folder, "lead")
    review.decide(review.entries[1], "accepted")
    export, premis = tmp_path / "x.tsv", tmp_path / "x.xml"
    proc = subprocess.run([*OLDPHOTO, "review", str(folder), "--export", str(export),
                           "--premis", str(premis), "--sample", "50", "--seed", "2"],
                          capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = export.read_text().splitlines()
    assert "# sample: 50% of 4 photos = 2 photos, seed 2 (oldphoto review --sample 50 " \
           "--seed 2)" in lines
    rows = [line.split("\t") for line in lines if not line.startswith("#")]
    by = {r[0]: dict(zip(rows[0], r)) for r in rows[1:]}
    assert by[stem_of(1)]["decision"] == "accepted" and by[stem_of(1)]["reviewer"] == "lead"
    assert {by[stem_of(i)]["decision"] for i in (0, 2, 3)} == {"pending"}
    assert "<premis:eventOutcome>accepted</premis:eventOutcome>" in premis.read_text()


def test_help_and_bad_folders(tmp_path):
    proc = subprocess.run([*OLDPHOTO, "review", "--help"], capture_output=True, text=True,
                          env=ENV, timeout=60)
    assert proc.returncode == 0
    for option in ("--reviewer", "--sample", "--seed", "--export", "--premis", "--host",
                   "--port", "--no-browser", "--photo-sheet", "--configfile"):
        assert option in proc.stdout
    proc = subprocess.run([*OLDPHOTO, "review", str(tmp_path)], capture_output=True,
                          text=True, env=ENV, timeout=60)
    assert proc.returncode == 2 and "no oldphoto run here" in proc.stderr
