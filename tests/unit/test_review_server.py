"""The review server's safety and API, through Starlette's test client (no socket), and the
files it serves: only from the output folder, originals only read."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

from oldphoto.decode import read_image
from oldphoto.review.app import ReviewApp, create_app
from oldphoto.review.images import OutsideFolder, inside, thumbnail, viewable
from oldphoto.review.session import Review
from review_folder import make_folder, stem_of

PORT = 8765
TOKEN, CSRF = "t0ken-secret", "csrf-secret"
BASE = f"http://127.0.0.1:{PORT}"


@pytest.fixture
def folder(tmp_path):
    return make_folder(tmp_path, 6, failed_every=4)


@pytest.fixture
def review(folder):
    return Review(folder, "ann")


def client(review, **kwargs) -> TestClient:
    state = ReviewApp(review, token=TOKEN, csrf=CSRF, port=PORT, snakefile=None, **kwargs)
    return TestClient(create_app(state), base_url=BASE, follow_redirects=False)


def logged_in(review) -> TestClient:
    c = client(review)
    response = c.get(f"/?token={TOKEN}")
    assert response.status_code == 303
    return c


def hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir())}


def test_every_request_without_the_token_is_refused(review):
    c = client(review)
    for path in ("/", "/api/state", "/static/review.js", "/img/0/thumb", "/api/photo/0",
                 "/files/run_summary.json", "/nope"):
        assert c.get(path).status_code == 403, path
    assert c.get("/?token=wrong").status_code == 403
    assert c.get("/api/state", headers={"Authorization": "token wrong"}).status_code == 403
    c.cookies.set("oldphoto_review", "wrong")
    assert c.get("/api/state").status_code == 403
    c.cookies.clear()
    assert c.get("/api/state", headers={"Authorization": f"token {TOKEN}"}).status_code == 200


def test_the_token_becomes_a_strict_http_only_cookie(review):
    c = client(review)
    response = c.get(f"/?token={TOKEN}&x=1")
    assert response.status_code == 303
    assert response.headers["location"] == "/?x=1"                  # the token leaves the URL
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"oldphoto_review={TOKEN};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    page = c.get("/")
    assert page.status_code == 200
    assert f'<meta name="csrf-token" content="{CSRF}">' in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert page.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("host,allowed", [
    (f"127.0.0.1:{PORT}", True), (f"localhost:{PORT}", True), (f"[::1]:{PORT}", True),
    (f"LOCALHOST:{PORT}", True), ("127.0.0.1:1", False), ("evil.example", False),
    (f"evil.example:{PORT}", False), (f"127.0.0.1.evil.example:{PORT}", False), ("", False)])
def test_unknown_host_headers_are_refused(review, host, allowed):
    c = logged_in(review)
    response = c.get("/api/state", headers={"Host": host})
    assert (response.status_code == 200) is allowed, (host, response.status_code)


def test_the_host_option_is_allowed_too(review):
    state = ReviewApp(review, token=TOKEN, csrf=CSRF, port=PORT, host="192.0.2.7")
    c = TestClient(create_app(state), base_url=f"http://192.0.2.7:{PORT}")
    assert c.get("/api/state", headers={"Authorization": f"token {TOKEN}"}).status_code == 200


def test_state_changes_need_the_csrf_token_json_and_no_foreign_origin(review):
    c = logged_in(review)
    body = {"action": "accepted"}
    assert c.post("/api/photo/0/decision", json=body).status_code == 403
    assert c.post("/api/photo/0/decision", json=body,
                  headers={"X-CSRF-Token": "wrong"}).status_code == 403
    assert c.post("/api/photo/0/decision", data={"action": "accepted"},
                  headers={"X-CSRF-Token": CSRF}).status_code == 415
    assert c.post("/api/photo/0/decision", json=body, headers={
        "X-CSRF-Token": CSRF, "Origin": "http://evil.example"}).status_code == 403
    assert c.post("/api/undo", json={}).status_code == 403
    assert review.store.current() == {}                             # nothing was recorded
    ok = c.post("/api/photo/0/decision", json=body, headers={
        "X-CSRF-Token": CSRF, "Origin": f"http://localhost:{PORT}"})
    assert ok.status_code == 200 and ok.json()["item"]["status"] == "accepted"
    assert review.store.current()[stem_of(0)].reviewer == "ann"


def test_decision_api_checks_reason_and_version(review):
    c = logged_in(review)
    post = lambda i, body: c.post(f"/api/photo/{i}/decision", json=body,  # noqa: E731
                                  headers={"X-CSRF-Token": CSRF})
    assert post(1, {"action": "rejected"}).status_code == 400           # no reason
    assert post(1, {"action": "maybe"}).status_code == 400
    assert post(1, {"action": "accepted", "version": "0-0"}).status_code == 409
    assert post(3, {"action": "accepted"}).status_code == 400           # failed: no final
    assert post(99, {"action": "accepted"}).status_code == 404
    photo = c.get("/api/photo/1").json()
    assert photo["status"] == "pending" and photo["settings"]["face_blending"] == "official"
    response = post(1, {"action": "rejected", "reason": "artefacts", "note": "halo",
                        "version": photo["version"],
                        "settings": {"face_blending": "adaptive", "hr": ""}})
    assert response.status_code == 200
    photo = c.get("/api/photo/1").json()
    assert photo["decision"]["reason_label"] == "artefacts"
    assert photo["sheet_row"] == {"face_blending": "adaptive"}
    assert photo["settings"]["face_blending"] == "adaptive"
    assert c.get("/api/rerun").json()["due"] == [stem_of(1)]
    undone = c.post("/api/undo", json={}, headers={"X-CSRF-Token": CSRF}).json()
    assert undone == {"undone": stem_of(1), "id": 1, "counts": review.counts()}


def test_lists_are_paginated_and_navigation_follows_the_filter(folder):
    review = Review(make_folder(folder.parent / "big", 450), "ann")
    c = logged_in(review)
    page = c.get("/api/photos?status=pending&offset=0&limit=1000").json()
    assert page["total"] == 450 and len(page["items"]) == 200       # capped
    page = c.get("/api/photos?status=pending&offset=440&limit=60").json()
    assert [i["photo"] for i in page["items"]] == [stem_of(i) for i in range(440, 450)]
    assert c.get("/api/nav?from=5&dir=next&status=pending").json() == {"id": 6}
    assert c.get("/api/nav?from=0&dir=prev&status=pending").json() == {"id": None}
    c.post("/api/photo/6/decision", json={"action": "accepted"}, headers={"X-CSRF-Token": CSRF})
    assert c.get("/api/nav?from=6&dir=next&status=pending").json() == {"id": 7}
    assert c.get("/api/nav?from=6&dir=prev&status=pending").json() == {"id": 5}


@pytest.mark.parametrize("path", [
    "/files/..%2f..%2fetc%2fpasswd", "/files/%2e%2e/in/scan%2000000.png",
    "/files//etc/passwd", "/files/final_output/..%2f..%2fin%2fscan%2000000.png",
    "/files/final_output/%2e%2e/%2e%2e/in/scan%2000000.png", "/files/logs%5c..%5c..%5cx"])
def test_no_path_escapes_the_output_folder(review, path):
    c = logged_in(review)
    response = c.get(path)
    assert response.status_code in (403, 404), path
    assert b"PNG" not in response.content and b"root:" not in response.content


def test_symlinks_out_of_the_folder_and_private_files_are_not_served(review, folder):
    outside = folder.parent / "secret.txt"
    outside.write_text("secret")
    (folder / "logs" / "escape.log").symlink_to(outside)
    os.symlink(folder.parent / "in" / f"{stem_of(1)}.png",
               folder / "final_output" / "linked.png")
    c = logged_in(review)
    assert c.get("/files/logs/escape.log").status_code == 403
    assert c.get("/files/final_output/linked.png").status_code == 403
    assert c.get("/files/review.sqlite").status_code == 404
    assert c.get("/files/.oldphoto/inputs.json").status_code == 404
    log = c.get(f"/files/logs/blend_faces/{stem_of(3)}.log")
    assert log.status_code == 200 and "FAILED blend_faces" in log.text
    # a final output that is a symlink out of the folder is refused by the image route too
    final = folder / "final_output" / f"{stem_of(2)}.png"
    final.unlink()
    final.symlink_to(folder.parent / "in" / f"{stem_of(2)}.png")
    assert c.get("/img/2/final-full").status_code == 403


def test_inside_refuses_escapes():
    root = Path("/tmp")
    for bad in ("../etc/passwd", "/etc/passwd", "a/../../b", "a\\..\\b", "a\0b", "",
                "~root/x"):
        with pytest.raises(OutsideFolder):
            inside(root, bad)
    assert inside(root, "a/b.png") == Path("/tmp/a/b.png").resolve()


def test_images_are_served_and_originals_never_written(review, folder):
    originals = folder.parent / "in"
    before = hashes(originals), sorted(os.listdir(originals))
    c = logged_in(review)
    for kind in ("thumb", "final", "final-full", "original", "original-full"):
        response = c.get(f"/img/0/{kind}")
        assert response.status_code == 200, kind
        Image.open(__import__("io").BytesIO(response.content)).verify()
    full = Image.open(__import__("io").BytesIO(c.get("/img/0/original-full").content))
    assert np.array_equal(np.asarray(full.convert("RGB")),
                          read_image(originals / f"{stem_of(0)}.png").rgb)
    assert c.get("/img/3/final").status_code == 404                  # failed photo
    assert (hashes(originals), sorted(os.listdir(originals))) == before


def test_thumbnails_are_made_once(tmp_path):
    source = tmp_path / "big.png"
    Image.fromarray(np.full((900, 600, 3), 90, np.uint8)).save(source)
    first = thumbnail(source, tmp_path / "cache")
    made = first.stat().st_mtime_ns
    with Image.open(first) as im:
        assert max(im.size) == 256 and im.size == (171, 256)
    assert thumbnail(source, tmp_path / "cache") == first
    assert first.stat().st_mtime_ns == made


def test_a_16_bit_tiff_original_is_rendered_as_8_bit_png(tmp_path):
    import tifffile

    ramp = (np.arange(64, dtype=np.uint16)[None, :, None] * 1000).repeat(8, 0).repeat(3, 2)
    source = tmp_path / "scan.tif"
    tifffile.imwrite(source, ramp, photometric="rgb")
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    rendered = viewable(source, tmp_path / "cache", native_ok=False)
    assert rendered.suffix == ".png" and tmp_path / "cache" in rendered.parents
    with Image.open(rendered) as im:
        assert im.mode == "RGB"
        assert np.array_equal(np.asarray(im), read_image(source).rgb)
    assert hashlib.sha256(source.read_bytes()).hexdigest() == digest
    assert sorted(os.listdir(tmp_path)) == ["cache", "scan.tif"]     # nothing beside it


def test_a_rerun_is_refused_while_another_run_owns_the_folder(folder):
    """Rerun rejected claims the folder as the oldphoto command does: a lock whose owner is
    alive or cannot be checked (here: a run on another host) refuses it, and nothing starts."""
    import json

    import yaml

    from oldphoto import locks

    (folder / "oldphoto_config.yaml").write_text(yaml.safe_dump({"output_dir": str(folder)}))
    lock_dir = folder / ".snakemake" / "locks"
    lock_dir.mkdir(parents=True)
    (lock_dir / "0.output.lock").write_text(f"{folder}/final_output/a.png\n")
    other = locks.this_machine()._replace(host="node-17")
    (lock_dir / locks.OWNER_RECORD).write_text(json.dumps({
        "host": other.host, "boot_id": other.boot_id, "pid_namespace": other.pid_namespace,
        "pid": 4242, "starttime": 1, "snakemake": None, "user": "someone", "uid": 1234,
        "since": "2024-06-11 12:00:03 +0000", "since_epoch": 1718107203.0, "flock": True,
        "token": "0123456789abcdef"}))
    before = {p: p.read_bytes() for p in lock_dir.iterdir()}
    review = Review(folder, "ann")
    state = ReviewApp(review, token=TOKEN, csrf=CSRF, port=PORT,
                      snakefile=Path(__file__).resolve().parents[2] / "Snakefile")
    c = TestClient(create_app(state), base_url=BASE, follow_redirects=False)
    assert c.get(f"/?token={TOKEN}").status_code == 303
    photo = c.get("/api/photo/1").json()
    c.post("/api/photo/1/decision", headers={"X-CSRF-Token": CSRF},
           json={"action": "rejected", "reason": "artefacts", "version": photo["version"],
                 "settings": {"face_blending": "adaptive"}})
    assert c.get("/api/rerun").json()["available"] is True
    refused = c.post("/api/rerun", json={}, headers={"X-CSRF-Token": CSRF})
    assert refused.status_code == 409
    assert "in use by another run" in refused.json()["error"]
    assert "node-17" in refused.json()["error"]
    assert state.rerun is None                                      # nothing started
    assert {p: p.read_bytes() for p in lock_dir.iterdir()} == before  # the lock untouched
