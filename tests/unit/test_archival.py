"""Archival derivatives: carried metadata, colour, 16-bit, provenance, change map, tone, masters.

Outputs are read back with exiftool (Debian libimage-exiftool-perl), the archivists' own tool;
.ci/run installs it.  Without it these tests are skipped, except under CI, where they fail.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from archival_corpus import FIELDS, ICC_PATH, icc_of, make_corpus, read_tags, require_exiftool
from oldphoto.archival import (apply_tone_keep, change_map, digital_source_type, final_16bit,
                               from_working_srgb, is_monochrome, level_count, output_format_for,
                               provenance_record, read_master, read_master_pixels16,
                               render_srgb, to_working_srgb, write_derivative, write_sidecar)
from oldphoto.archival.depth import master_levels8, to_uint16
from oldphoto.archival.provenance import ALGORITHMICALLY_ENHANCED, COMPOSITE_TRAINED
from oldphoto.archival.tone import tone_stats
from oldphoto.errors import BadImageError
from oldphoto.decode import read_image

require_exiftool()

ICC = ICC_PATH.read_bytes()
SETTINGS = {"with_scratch": True, "hr": False, "output_format": "tiff", "tone": "keep"}
CHECKPOINTS = {"VAE_A_quality": "a" * 64, "detection": "b" * 64}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("masters")
    photos = make_corpus(folder)
    before = {p.name: (sha256(p), p.stat().st_mtime_ns) for p in folder.iterdir()}
    yield photos
    after = {p.name: (sha256(p), p.stat().st_mtime_ns) for p in folder.iterdir()}
    assert after == before, "a master was modified, touched, renamed, or a file was added"


def identity_final(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(master16, restored_working) for a restoration that changes nothing."""
    master = read_master(path)
    master16 = read_master_pixels16(path)
    working = to_working_srgb(read_image(path).rgb, master.icc_profile)
    return master16, working


# --- reading the master ----------------------------------------------------------------------


def test_read_master_carries_every_field(corpus):
    photo = corpus["colour16.tif"]
    master = read_master(photo.path)
    assert master.sha256 == sha256(photo.path)
    assert (master.name, master.format, master.bit_depth) == ("colour16.tif", "TIFF", 16)
    assert master.icc_profile == ICC
    assert master.dpi == (600.0, 600.0)
    assert master.orientation == 6
    assert master.xmp and b"dc:rights" in master.xmp
    assert master.iptc and b"Angstrom family archive" in master.iptc
    for key, value in FIELDS.items():
        assert master.tag(key) == value, key
    assert "IFD0:StripOffsets" not in master.tags and "IFD0:BitsPerSample" not in master.tags


@pytest.mark.parametrize("name", ["colour16.tif", "colour16.png", "grey_print.tif",
                                  "sepia_print.png"])
def test_pixels16_are_the_decoders_image_at_full_precision(corpus, name):
    photo = corpus[name]
    pixels = read_master_pixels16(photo.path)
    decoded = read_image(photo.path).rgb
    assert pixels.dtype == np.float32 and pixels.shape == decoded.shape
    assert np.array_equal(master_levels8(pixels), decoded)
    if photo.bits == 16:
        assert level_count(pixels) > 256


def test_missing_master_is_a_bad_image(tmp_path):
    with pytest.raises(BadImageError, match="file not found"):
        read_master(tmp_path / "absent.tif")


# --- colour -----------------------------------------------------------------------------------


def test_working_srgb_round_trip_and_conversion_happens():
    rng = np.random.default_rng(1)
    srgb = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    adobe = from_working_srgb(srgb, ICC)
    assert np.abs(adobe.astype(int) - srgb).max() > 10  # the profiles really differ
    back = to_working_srgb(adobe, ICC)
    error = np.abs(back.astype(int) - srgb)
    # 8-bit quantisation: Adobe RGB has fewer levels in the deep shadows than sRGB.
    assert error.mean() <= 0.6
    assert error[srgb.min(axis=2) >= 32].max() <= 3
    floats = to_working_srgb(adobe.astype(np.float32) / 255, ICC)
    assert floats.dtype == np.float32 and np.array_equal(np.rint(floats * 255), back)
    assert to_working_srgb(srgb, None) is srgb


def test_unchanged_photo_renders_the_same_colour_managed(corpus, tmp_path):
    photo = corpus["colour16.tif"]
    master = read_master(photo.path)
    master16, working = identity_final(photo.path)
    final = final_16bit(master16, working, master.icc_profile)
    out = tmp_path / "out.tif"
    write_derivative(out, final, fmt="tiff", bits=16, master=master)
    out_icc = icc_of(out)
    assert out_icc == ICC
    shown_output = render_srgb(read_master_pixels16(out), out_icc)
    shown_master = render_srgb(master16, master.icc_profile)
    assert np.array_equal(shown_output, shown_master)
    # Sensitivity: the working (sRGB) values written under the master's profile look different.
    assert np.abs(render_srgb(working, ICC).astype(int) - shown_master).max() > 10


# --- 16-bit -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["png", "tiff"])
def test_16bit_final_keeps_the_masters_levels(corpus, tmp_path, fmt):
    photo = corpus["colour16.png"]
    master = read_master(photo.path)
    master16, working = identity_final(photo.path)
    changed = working.copy()
    changed[30:40, 40:60] = 255 - changed[30:40, 40:60]  # a "repaired" area
    final = final_16bit(master16, changed, master.icc_profile)
    out = tmp_path / f"out.{fmt}"
    write_derivative(out, final, fmt=fmt, bits=16, master=master)
    written = to_uint16(read_master_pixels16(out))
    stored = photo.pixels  # the master's own 16-bit samples (orientation 1)
    outside = np.ones(stored.shape[:2], bool)
    outside[30:40, 40:60] = False
    assert np.array_equal(written[outside], stored[outside])
    restored_master_space = from_working_srgb(changed, ICC).astype(np.float64) * 257
    inside = written[~outside].astype(np.float64)
    assert np.abs(inside - restored_master_space[~outside]).max() <= 0.5 * 257 + 1
    assert level_count(written) > 256
    tags = read_tags(out)
    bits = tags.get("PNG:BitDepth") or tags.get("IFD0:BitsPerSample")
    assert str(bits).split()[0] == "16"


def test_tone_curve_on_a_16bit_gradient_is_not_posterised():
    gradient = np.linspace(0.2, 0.6, 4096, dtype=np.float32)
    master16 = np.repeat(np.tile(gradient, (4, 1))[:, :, None], 3, axis=2)
    working = master_levels8(master16)
    brightened = np.clip(working.astype(int) + 20, 0, 255).astype(np.uint8)
    final = final_16bit(master16, brightened, None)
    values = to_uint16(final)[0, :, 0]
    assert level_count(values) > 2000  # 8-bit data scaled up would have about 100
    assert np.all(np.diff(values.astype(int)) >= 0)  # still a gradient
    assert np.abs(final * 255 - brightened).max() <= 0.5 + 1e-4


# --- writing derivatives ----------------------------------------------------------------------


@pytest.mark.parametrize("fmt,bits", [("png", 16), ("tiff", 16), ("jpeg", 8), ("png", 8)])
def test_derivative_carries_metadata_profile_and_provenance(corpus, tmp_path, fmt, bits):
    photo = corpus["colour16.tif"]
    master = read_master(photo.path)
    master16, working = identity_final(photo.path)
    final = final_16bit(master16, working, master.icc_profile)
    record = provenance_record(master, backend="pretrained", checkpoints=CHECKPOINTS,
                               settings=SETTINGS, created="2024-03-01T12:00:00+00:00")
    out = tmp_path / f"derivative.{fmt}"
    write_derivative(out, final, fmt=fmt, bits=bits, master=master, provenance=record,
                     jpeg_quality=92)
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no temporary left
    tags = read_tags(out)
    for key, value in FIELDS.items():
        assert tags.get(key) == value, key
    assert tags["IFD0:Orientation"] == 1
    assert (tags["IFD0:XResolution"], tags["IFD0:YResolution"], tags["IFD0:ResolutionUnit"]) \
        == (600, 600, 2)
    assert icc_of(out) == ICC
    height, width = final.shape[:2]
    assert (tags.get("PNG:ImageWidth") or tags.get("IFD0:ImageWidth")
            or tags.get("File:ImageWidth")) == width
    if fmt == "tiff":
        assert tags["IFD0:Compression"] == 8  # deflate: lossless
    if fmt == "png":
        assert tags["PNG:BitDepth"] == bits
        assert round(tags["PNG-pHYs:PixelsPerUnitX"] * 0.0254) == 600
    if fmt == "jpeg":
        assert tags["File:BitsPerSample"] == 8
        assert (tags["JFIF:XResolution"], tags["JFIF:ResolutionUnit"]) == (600, 1)
    # Provenance.
    assert tags["XMP-iptcExt:DigitalSourceType"] == COMPOSITE_TRAINED
    assert tags["XMP-xmpMM:DerivedFrom"] == {"FilePath": "colour16.tif",
                                             "DocumentID": f"sha256:{master.sha256}"}
    event = tags["XMP-xmpMM:History"][-1]
    assert event["Action"] == "derived"
    assert event["SoftwareAgent"] == tags["XMP-xmp:CreatorTool"] == tags["IFD0:Software"]
    assert event["SoftwareAgent"].startswith("oldphoto ")
    parameters = json.loads(event["Parameters"])
    assert parameters == {"backend": "pretrained", "source_sha256": master.sha256,
                          "checkpoints": CHECKPOINTS, "settings": SETTINGS}
    if fmt != "jpeg":
        assert np.array_equal(master_levels8(read_master_pixels16(out)),
                              master_levels8(master16))


def test_classical_backend_is_algorithmically_enhanced(corpus):
    master = read_master(corpus["sepia_print.png"].path)
    record = provenance_record(master, backend="classical", checkpoints={}, settings={})
    assert record["digital_source_type"] == ALGORITHMICALLY_ENHANCED
    assert digital_source_type("pretrained") == COMPOSITE_TRAINED
    with pytest.raises(ValueError):
        digital_source_type("auto")


def test_sidecar_has_the_record_and_timings(corpus, tmp_path):
    master = read_master(corpus["grey_print.tif"].path)
    record = provenance_record(master, backend="classical", checkpoints={},
                               settings={"tone": "keep"}, changes={"changed_fraction": 0.5})
    sidecar = tmp_path / "grey_print.json"
    write_sidecar(sidecar, record, timings={"restore_global": 1.23456, "blend_faces": 0.2},
                  output={"file": "grey_print.png", "format": "png", "bits": 16})
    data = json.loads(sidecar.read_text(encoding="utf-8"))
    assert data["source"]["sha256"] == sha256(corpus["grey_print.tif"].path)
    assert data["source"]["bit_depth"] == 16 and data["source"]["dpi"] == [600.0, 600.0]
    assert data["timings_s"] == {"restore_global": 1.235, "blend_faces": 0.2}
    assert data["changes"] == {"changed_fraction": 0.5}
    assert data["output"]["bits"] == 16
    assert {k: data[k] for k in record} == json.loads(json.dumps(record))


def test_failed_metadata_write_leaves_nothing(corpus, tmp_path, monkeypatch):
    import oldphoto.archival.derivative as derivative

    def fail(args, path, **_kw):
        raise BadImageError(path, "exiftool failed: simulated")

    monkeypatch.setattr(derivative, "run_exiftool", fail)
    master = read_master(corpus["sepia_print.png"].path)
    out = tmp_path / "x.png"
    with pytest.raises(BadImageError, match="simulated"):
        write_derivative(out, np.zeros((4, 4, 3), np.uint8), fmt="png", master=master)
    assert list(tmp_path.iterdir()) == []


def test_output_format_for():
    assert output_format_for("same", "TIFF") == "tiff"
    assert output_format_for("same", "JPEG") == "jpeg"
    assert output_format_for("same", "BMP") == "png"
    assert output_format_for("jpeg", "PNG") == "jpeg"
    with pytest.raises(ValueError):
        output_format_for("webp", "PNG")


# --- change map -------------------------------------------------------------------------------


def test_change_map_shows_and_counts_what_changed():
    before = np.full((40, 50, 3), 100, np.uint8)
    after = before.copy()
    after[0:10, 0:10] = 200                      # 100 px changed by 100 levels
    scratch = np.zeros((40, 50), np.uint8)
    scratch[20:24, 0:50] = 255                    # 200 px scratch (repaired, not changed here)
    preview, stats = change_map(before, after, scratch, face_boxes=[(30, 0, 50, 20)])
    assert stats["changed_fraction"] == pytest.approx(100 / 2000)
    assert stats["mean_abs_change"] == pytest.approx(100 * 100 / 2000)
    assert stats["max_abs_change"] == 100
    assert stats["scratch_area_fraction"] == pytest.approx(200 / 2000)
    assert stats["face_area_fraction"] == pytest.approx(400 / 2000)
    assert stats["faces"] == 1
    assert preview.shape == after.shape and preview.dtype == np.uint8
    red, green, blue = (int(v) for v in preview[5, 5])
    assert red == 255 and blue == 0               # changed: heat colour
    assert tuple(preview[20, 10]) == (255, 0, 255)  # scratch outline
    assert tuple(preview[0, 40]) == (0, 255, 255)   # face box edge
    r, g, b = preview[35, 10]
    assert r == g == b                            # unchanged, outside everything: grey


# --- tone ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["grey_print.tif", "sepia_print.png"])
def test_tone_keep_returns_a_print_in_its_own_tone(corpus, name):
    original = read_image(corpus[name].path).rgb
    assert is_monochrome(original)
    # What a restoration may do: stretch the tones and cast or remove colour.
    stretched = np.clip((original.astype(np.float32) - 40) * 1.3, 0, 255)
    if name.startswith("grey"):
        cast = stretched + np.array([-12, 0, 18])          # a blue cast invented
    else:
        cast = np.repeat(stretched.mean(axis=2, keepdims=True), 3, axis=2)  # sepia removed
    restored = np.clip(cast, 0, 255).astype(np.uint8)
    kept = apply_tone_keep(original, restored)
    want, got, before = tone_stats(original), tone_stats(kept), tone_stats(restored)
    assert abs(got["mean_cb"] - want["mean_cb"]) <= 1.5
    assert abs(got["mean_cr"] - want["mean_cr"]) <= 1.5
    assert abs(before["mean_cb"] - want["mean_cb"]) + abs(before["mean_cr"] - want["mean_cr"]) > 5
    assert is_monochrome(kept)
    luminance = lambda rgb: rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114])  # noqa: E731
    assert np.abs(luminance(kept) - luminance(restored)).max() <= 2.5


def test_tone_keep_leaves_colour_photos_alone(corpus):
    colour = read_image(corpus["colour16.png"].path).rgb
    assert not is_monochrome(colour)
    restored = np.clip(colour.astype(int) + 10, 0, 255).astype(np.uint8)
    assert apply_tone_keep(colour, restored) is restored
