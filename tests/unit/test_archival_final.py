"""The final-output job's archival steps (``oldphoto.archival.final``) and the workflow helpers
around them: extensions per photo, stage timings, provenance backend, checkpoint records, the
replaced face regions."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from archival_corpus import FIELDS, ICC_PATH, exiftool, make_corpus, make_grey_masters
from oldphoto.archival.changes import replaced_face_boxes
from oldphoto.archival.final import (backends_of, checkpoint_sha256s, provenance_backend,
                                     write_final)
from oldphoto.archival.formats import format_of_extension, output_format_for_file
from oldphoto.errors import CheckpointError
from oldphoto.layout import Layout, final_extension
from oldphoto.report import stage_timings

needs_exiftool = pytest.mark.skipif(shutil.which("exiftool") is None,
                                    reason="exiftool not installed")


def test_final_extension_per_output_format():
    assert final_extension("png", "scan.TIF") == "png"
    assert final_extension("tiff", "scan.jpg") == "tif"
    assert final_extension("jpeg", "scan.png") == "jpg"
    assert [final_extension("same", n) for n in ("a.tiff", "a.JPEG", "a.png", "a.webp", "a.bmp")] \
        == ["tif", "jpg", "png", "png", "png"]
    assert Layout("out").final("a b", final_extension("same", "a b.tif")) == \
        "out/final_output/a b.tif"
    assert output_format_for_file("same", Path("x.jpg")) == "jpeg"
    assert format_of_extension("out/final_output/x.tif") == "tiff"
    with pytest.raises(ValueError):
        format_of_extension("x.webp")
    with pytest.raises(ValueError):
        final_extension("webp", "x.png")


def test_layout_and_formats_import_no_numpy():
    code = ("import sys; import oldphoto.layout, oldphoto.archival.formats; "
            "print('numpy' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert proc.stdout.strip() == "False"


def test_provenance_backend_names_synthesised_content():
    assert backends_of("classical") == {"global": "classical", "face": "classical"}
    assert backends_of("global=classical,face=pretrained") == {"global": "classical",
                                                               "face": "pretrained"}
    assert provenance_backend("pretrained", faces=0) == "pretrained"
    assert provenance_backend("classical", faces=3) == "classical"
    assert provenance_backend("global=pretrained,face=classical", faces=0) == "pretrained"
    # the face network synthesises content only on a photo with faces
    assert provenance_backend("global=classical,face=pretrained", faces=0) == "classical"
    assert provenance_backend("global=classical,face=pretrained", faces=1) == "pretrained"


def test_checkpoint_sha256s_from_cache_records(tmp_path):
    for name, digest in (("VAE_A_quality", "a" * 64), ("Setting_9_epoch_100", "f" * 64)):
        (tmp_path / f"{name}.safetensors.json").write_text(
            json.dumps({"official_sha256": digest, "cache_sha256": "0" * 64}))
    records = sorted(str(p) for p in tmp_path.iterdir())
    assert checkpoint_sha256s(records, "Setting_9_epoch_100", faces=2) == {
        "Setting_9_epoch_100": "f" * 64, "VAE_A_quality": "a" * 64}
    assert checkpoint_sha256s(records, "Setting_9_epoch_100", faces=0) == {
        "VAE_A_quality": "a" * 64}
    (tmp_path / "broken.safetensors.json").write_text("{}")
    with pytest.raises(CheckpointError, match="broken.safetensors.json"):
        checkpoint_sha256s([str(tmp_path / "broken.safetensors.json")])


def test_stage_timings_per_photo(tmp_path):
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    for rule, name, seconds in (("restore_global", "a", "1.5"), ("restore_global", "a_1", "9"),
                                ("enhance_face", "a_1", "0.25"), ("enhance_face", "a_2", "0.5"),
                                ("enhance_face", "a_1_1", "7"), ("blend_faces", "a", "NA")):
        (tmp_path / rule).mkdir(exist_ok=True)
        (tmp_path / rule / f"{name}.tsv").write_text(header + f"{seconds}\t0\tNA\tNA\tNA\tNA\t"
                                                     "NA\tNA\tNA\tNA\n")
    # photo "a": its own files only (a_1.tsv of restore_global is photo "a_1"; a_1_1 is
    # photo a_1's face); unreadable values are left out
    assert stage_timings(tmp_path, "a") == {"restore_global": 1.5, "enhance_face": 0.75}


def test_replaced_face_boxes_follow_the_face_to_photo_matrix():
    # aligned (x, y) -> photo (2x + 10, y + 20): the 50-px square lands on (10, 20)-(110, 70)
    face_to_photo = [[2.0, 0.0, 10.0], [0.0, 1.0, 20.0], [0.0, 0.0, 1.0]]
    photo_to_face = np.linalg.inv(face_to_photo).tolist()
    record = {"image": {"width": 200, "height": 100}, "face_size": 50,
              "faces": [{"face_to_photo": face_to_photo, "photo_to_face": photo_to_face}]}
    assert replaced_face_boxes(record, (200, 100)) == [(10.0, 20.0, 110.0, 70.0)]
    assert replaced_face_boxes(record, (100, 50)) == [(5.0, 10.0, 55.0, 35.0)]
    # a record of an earlier version names the same matrices matrix/inverse
    legacy = dict(record, faces=[{"matrix": face_to_photo, "inverse": photo_to_face}])
    assert replaced_face_boxes(legacy, (200, 100)) == [(10.0, 20.0, 110.0, 70.0)]
    assert replaced_face_boxes({"faces": []}, (10, 10)) == []


@needs_exiftool
@pytest.mark.parametrize("carry", [True, False])
def test_write_final_with_and_without_metadata(tmp_path, carry):
    from oldphoto.archival import to_working_srgb
    from oldphoto.decode import read_image

    master = make_corpus(tmp_path / "masters")["colour16.png"].path
    restored = to_working_srgb(read_image(master).rgb, ICC_PATH.read_bytes())
    restored[:4, :4] = 0  # a change
    out = tmp_path / "final_output" / "colour16.png"
    derivation = write_final(out, restored, master_path=master, alpha=None, backend="classical",
                             checkpoints={}, settings={"tone": "official"},
                             carry_metadata=carry, text={"oldphoto:backend": "classical"})
    assert derivation["record"]["source"]["file_name"] == "colour16.png"
    assert derivation["output"] == {"file": "colour16.png", "format": "png",
                                    "bits": 16 if carry else 8, "colour_model": "rgb",
                                    "width": 64, "height": 48, "icc_profile": carry,
                                    "metadata": carry}
    found = json.loads(exiftool("-j", "-G1", "-n", "-struct", str(out)))[0]
    with Image.open(out) as im:
        assert im.text["oldphoto:backend"] == "classical"
        pixels = np.asarray(im.convert("RGB"))
    if carry:
        assert found["XMP-dc:Title"] == FIELDS["XMP-dc:Title"]
        # the History event's time is the record's (the sidecar's "created")
        created = derivation["record"]["created"]
        assert found["XMP-xmpMM:History"][-1]["When"] == \
            created.replace("-", ":", 2).replace("T", " ")
    else:
        # plain: sRGB working values, untagged, no metadata
        assert "XMP-dc:Title" not in found and "ICC_Profile:ProfileDescription" not in found
        assert np.array_equal(pixels, restored)


@needs_exiftool
@pytest.mark.parametrize("carry", [True, False])
def test_write_final_keeps_a_grey_master_grey(tmp_path, monkeypatch, carry):
    from oldphoto.decode import read_image

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    master = make_grey_masters(tmp_path / "masters")["grey16.png"].path
    restored = read_image(master).rgb.copy()
    restored[:8, :8] = (180, 140, 90)  # colour the restoration added
    out = tmp_path / "final_output" / "grey16.tif"
    derivation = write_final(out, restored, master_path=master, alpha=None, backend="classical",
                             checkpoints={}, settings={"tone": "official"},
                             carry_metadata=carry)
    assert derivation["record"]["created"] == "2023-11-14T22:13:20+00:00"
    assert derivation["output"]["colour_model"] == "grey"
    assert derivation["output"]["bits"] == (16 if carry else 8)
    found = json.loads(exiftool("-j", "-G1", "-n", "-struct", str(out)))[0]
    assert (found["IFD0:PhotometricInterpretation"], found["IFD0:SamplesPerPixel"]) == (1, 1)
    with Image.open(out) as im:
        assert im.mode == ("I;16" if carry else "L")
    if carry:
        assert found["XMP-xmpMM:History"][-1]["When"] == "2023:11:14 22:13:20+00:00"


@needs_exiftool
def test_write_final_keeps_grey_with_alpha(tmp_path):
    from oldphoto.decode import read_image

    grey = (np.arange(30 * 40).reshape(30, 40) % 256).astype(np.uint8)
    alpha = np.full((30, 40), 255, np.uint8)
    alpha[:10] = 128
    master = tmp_path / "la.png"
    Image.fromarray(np.dstack([grey, alpha]), "LA").save(master)
    photo = read_image(master)
    for name, tag in (("la.png", "PNG:ColorType"), ("la.tif", "IFD0:SamplesPerPixel")):
        out = tmp_path / "final_output" / name
        write_final(out, photo.rgb, master_path=master, alpha=photo.alpha, backend="classical",
                    checkpoints={}, settings={})
        found = json.loads(exiftool("-j", "-G1", "-n", str(out)))[0]
        assert found[tag] == (4 if name.endswith(".png") else 2)  # grey + alpha; 2 samples
        with Image.open(out) as im:
            samples = np.asarray(im)
        assert im.mode == "LA" and np.array_equal(samples[:, :, 1], alpha)
        assert np.array_equal(samples[10:, :, 0], grey[10:])  # opaque and unchanged: the master
