"""Archival derivatives: carried metadata, colour, 16-bit, provenance, change map, tone, masters.

The library writes with libexiv2 (the ``exiv2`` wheel); outputs are read back with exiftool
(Debian libimage-exiftool-perl), the archivists' own tool and an independent reader; .ci/run
installs it.  Without it these tests are skipped, except under CI, where they fail.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

from archival_corpus import (FIELDS, GREY_IDENTITY, ICC_PATH, grey_icc_profile, icc_of,
                             make_corpus, make_grey_masters, read_tags, require_exiftool,
                             shown_srgb, tone_stats)
from oldphoto.archival import (apply_tone_keep, change_map, digital_source_type, final_16bit,
                               from_working_srgb, is_monochrome, output_format_for,
                               provenance_record, read_master, read_master_pixels16,
                               read_original, to_working_srgb, write_derivative, write_sidecar)
from oldphoto.archival.colour import working_profile
from oldphoto.archival.depth import master_levels8, to_uint16
from oldphoto.archival.provenance import (ALGORITHMICALLY_ENHANCED, COMPOSITE_TRAINED,
                                         content_id)
from oldphoto.errors import BadImageError
from oldphoto.decode import read_image

require_exiftool()

ICC = ICC_PATH.read_bytes()
GREY_ICC = grey_icc_profile()
UUID = re.compile(r"^uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
# libexiv2's key of each corpus field and the text it prints for it
EXIV2_KEYS = {
    "IFD0:Artist": "Exif.Image.Artist", "IFD0:Copyright": "Exif.Image.Copyright",
    "IFD0:ImageDescription": "Exif.Image.ImageDescription", "IFD0:Make": "Exif.Image.Make",
    "IFD0:Model": "Exif.Image.Model", "ExifIFD:DateTimeOriginal": "Exif.Photo.DateTimeOriginal",
    "IPTC:By-line": "Iptc.Application2.Byline",
    "IPTC:CopyrightNotice": "Iptc.Application2.Copyright",
    "IPTC:Caption-Abstract": "Iptc.Application2.Caption",
    "IPTC:Credit": "Iptc.Application2.Credit", "IPTC:ObjectName": "Iptc.Application2.ObjectName",
    "XMP-dc:Creator": "Xmp.dc.creator", "XMP-dc:Rights": "Xmp.dc.rights",
    "XMP-dc:Description": "Xmp.dc.description", "XMP-dc:Title": "Xmp.dc.title",
    "XMP-photoshop:Credit": "Xmp.photoshop.Credit",
    "XMP-iptcCore:ExtDescrAccessibility": "Xmp.iptc.ExtDescrAccessibility",
}
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
    """(master16, restored_working) for a restoration that changes nothing: the photo as the
    jobs read it (``read_original``; a grey profile is not converted)."""
    return read_master_pixels16(path), read_original(path).rgb


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
    assert master.colour_model == "rgb"
    for key, value in FIELDS.items():
        text = master.tags.get(EXIV2_KEYS[key])
        want = value[0] if isinstance(value, list) else value
        # libexiv2 prints a language alternative as 'lang="x-default" <text>'
        assert text in (want, f'lang="x-default" {want}'), (key, text)
    assert "Exif.Image.StripOffsets" not in master.tags
    assert "Exif.Image.BitsPerSample" not in master.tags


@pytest.mark.parametrize("name", ["colour16.tif", "colour16.png", "grey_print.tif",
                                  "sepia_print.png"])
def test_pixels16_are_the_decoders_image_at_full_precision(corpus, name):
    photo = corpus[name]
    pixels = read_master_pixels16(photo.path)
    decoded = read_image(photo.path).rgb
    assert pixels.dtype == np.float32 and pixels.shape == decoded.shape
    assert np.array_equal(master_levels8(pixels), decoded)
    if photo.bits == 16:
        assert np.unique(pixels).size > 256


def test_missing_master_is_a_bad_image(tmp_path):
    with pytest.raises(BadImageError, match="file not found"):
        read_master(tmp_path / "absent.tif")


def test_read_original_converts_an_rgb_profile_to_the_working_space(corpus):
    path = corpus["colour16.png"].path  # Adobe RGB (1998)-compatible profile
    decoded = read_image(path)
    photo = read_original(path)
    assert np.array_equal(photo.rgb, to_working_srgb(decoded.rgb, ICC))
    assert np.abs(photo.rgb.astype(int) - decoded.rgb).max() > 10  # it did convert
    assert photo.notes == [*decoded.notes, "converted from its ICC profile to sRGB"]
    assert (photo.size, photo.mode, photo.format) == (decoded.size, decoded.mode, decoded.format)


@pytest.mark.parametrize("name", ["sepia_print.png", "grey8.png"])
def test_read_original_leaves_no_profile_and_a_grey_profile_as_decoded(corpus, greys, name):
    path = {**corpus, **greys}[name].path
    assert (read_master(path).icc_profile is None) == (name == "sepia_print.png")
    decoded, photo = read_image(path), read_original(path)
    assert np.array_equal(photo.rgb, decoded.rgb) and photo.notes == decoded.notes


def test_read_original_names_the_file_of_an_unreadable_profile(tmp_path):
    from PIL import Image

    path = tmp_path / "bad profile.png"
    Image.new("RGB", (8, 8), (120, 90, 60)).save(path, icc_profile=b"not an ICC profile")
    assert read_image(path).rgb.shape == (8, 8, 3)  # the pixels themselves decode
    with pytest.raises(BadImageError, match="unreadable ICC profile") as caught:
        read_original(path)
    assert caught.value.path == str(path)


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
    shown_output = shown_srgb(read_master_pixels16(out), out_icc)
    shown_master = shown_srgb(master16, master.icc_profile)
    assert np.array_equal(shown_output, shown_master)
    # Sensitivity: the working (sRGB) values written under the master's profile look different.
    assert np.abs(shown_srgb(working, ICC).astype(int) - shown_master).max() > 10


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
    assert np.unique(written).size > 256
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
    assert np.unique(values).size > 2000  # 8-bit data scaled up would have about 100
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
    # a master without XMP identifiers: DerivedFrom names its file only, and the derivative's
    # OriginalDocumentID is the content identifier of the master's bytes
    assert tags["XMP-xmpMM:DerivedFrom"] == {"FilePath": "colour16.tif"}
    assert tags["XMP-xmpMM:OriginalDocumentID"] == content_id(master.sha256)
    assert UUID.match(tags["XMP-xmpMM:DocumentID"]) and UUID.match(tags["XMP-xmpMM:InstanceID"])
    assert tags["XMP-xmpMM:DocumentID"] != tags["XMP-xmpMM:InstanceID"]
    event = tags["XMP-xmpMM:History"][-1]
    assert event["Action"] == "derived"
    assert event["When"] == "2024:03:01 12:00:00+00:00"
    assert event["InstanceID"] == tags["XMP-xmpMM:InstanceID"]
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
    import oldphoto.archival.metadata as metadata

    def fail(encoded, carried, *, path=None):
        raise BadImageError(path, "metadata could not be written: simulated")

    monkeypatch.setattr(metadata, "write_metadata", fail)
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


# --- identity (XMP Media Management) ----------------------------------------------------------


@pytest.fixture(scope="module")
def greys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("grey-masters")
    photos = make_grey_masters(folder)
    before = {p.name: (sha256(p), p.stat().st_mtime_ns) for p in folder.iterdir()}
    yield photos
    after = {p.name: (sha256(p), p.stat().st_mtime_ns) for p in folder.iterdir()}
    assert after == before, "a master was modified, touched, renamed, or a file was added"


def derive(master_path: Path, out: Path, *, settings=None, created="2024-03-01T12:00:00+00:00",
           restored: np.ndarray | None = None, fmt: str | None = None) -> dict:
    """write_derivative as the final-output job calls it (identity restoration by default)."""
    from oldphoto.archival import grey_from_rgb

    master = read_master(master_path)
    master16, working = identity_final(master_path)
    final = final_16bit(master16, working if restored is None else restored,
                        working_profile(master.icc_profile))
    record = provenance_record(master, backend="classical", checkpoints={},
                               settings=settings or {"tone": "official"}, created=created)
    if master.colour_model == "grey":
        final = grey_from_rgb(final)
    fmt = fmt or {".png": "png", ".tif": "tiff", ".jpg": "jpeg"}[out.suffix]
    write_derivative(out, final, fmt=fmt, bits=16 if master.bit_depth == 16 else 8,
                     master=master, provenance=record)
    return record


def test_identity_follows_xmp_media_management(greys, tmp_path):
    master_path = greys["grey16.png"].path
    master_tags = read_tags(master_path)
    assert master_tags["XMP-xmpMM:DocumentID"] == GREY_IDENTITY["DocumentID"] == "uuid:abc"
    out = tmp_path / "d.png"
    derive(master_path, out, created="2024-03-01T12:00:00+00:00")
    tags = read_tags(out)
    # a new document: its own DocumentID and InstanceID, never the master's
    assert UUID.match(tags["XMP-xmpMM:DocumentID"]) and UUID.match(tags["XMP-xmpMM:InstanceID"])
    assert tags["XMP-xmpMM:DocumentID"] not in ("uuid:abc", GREY_IDENTITY["InstanceID"])
    assert tags["XMP-xmpMM:InstanceID"] not in ("uuid:abc", GREY_IDENTITY["InstanceID"])
    # derived from the master: its DocumentID and InstanceID; the original is the master
    assert tags["XMP-xmpMM:DerivedFrom"] == {"FilePath": "grey16.png", "DocumentID": "uuid:abc",
                                             "InstanceID": GREY_IDENTITY["InstanceID"]}
    assert tags["XMP-xmpMM:OriginalDocumentID"] == "uuid:abc"
    # the master's history, then the derivation, with a valid time and the new instance
    history = tags["XMP-xmpMM:History"]
    assert [e["Action"] for e in history] == ["created", "derived"]
    assert history[0] == {"Action": "created", "When": "2019:04:01 09:30:00+02:00",
                          "SoftwareAgent": "Epson Scan 2"}
    when = dt.datetime.strptime(history[1]["When"], "%Y:%m:%d %H:%M:%S%z")
    assert when == dt.datetime(2024, 3, 1, 12, tzinfo=dt.timezone.utc)
    assert history[1]["InstanceID"] == tags["XMP-xmpMM:InstanceID"]
    assert json.loads(history[1]["Parameters"])["source_sha256"] == sha256(master_path)


def test_identity_of_a_master_with_an_original_and_reproducible_ids(corpus, greys, tmp_path):
    from archival_corpus import exiftool

    master_path = tmp_path / "masters" / "renamed.png"
    master_path.parent.mkdir()
    master_path.write_bytes(greys["grey16.png"].path.read_bytes())
    exiftool("-overwrite_original", "-XMP-xmpMM:OriginalDocumentID=uuid:first-scan",
             str(master_path))
    first, again, other, later = (tmp_path / f"{n}.png" for n in ("a", "b", "c", "d"))
    derive(master_path, first)
    derive(master_path, again)
    derive(master_path, other, settings={"tone": "keep"})
    derive(master_path, later, created="2024-03-02T08:00:00+00:00")
    a, b, c, d = (read_tags(p) for p in (first, again, other, later))
    # the original stays the master's original, also in DerivedFrom
    assert a["XMP-xmpMM:OriginalDocumentID"] == "uuid:first-scan"
    assert a["XMP-xmpMM:DerivedFrom"]["OriginalDocumentID"] == "uuid:first-scan"
    # same master, settings, software and time: the same file, byte for byte
    assert first.read_bytes() == again.read_bytes()
    # other settings: another document; another time: the same document, another instance
    assert c["XMP-xmpMM:DocumentID"] != a["XMP-xmpMM:DocumentID"]
    assert d["XMP-xmpMM:DocumentID"] == a["XMP-xmpMM:DocumentID"]
    assert d["XMP-xmpMM:InstanceID"] != a["XMP-xmpMM:InstanceID"]
    # a format is a document of its own
    tiff = tmp_path / "a.tif"
    derive(master_path, tiff)
    assert read_tags(tiff)["XMP-xmpMM:DocumentID"] != a["XMP-xmpMM:DocumentID"]


def test_derivation_time_is_now_or_source_date_epoch():
    from oldphoto.archival.final import derivation_time
    from oldphoto.errors import ConfigError

    assert derivation_time({"SOURCE_DATE_EPOCH": "1700000000"}) == "2023-11-14T22:13:20+00:00"
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    now = dt.datetime.fromisoformat(derivation_time({}))
    assert before <= now <= dt.datetime.now(dt.timezone.utc) and now.utcoffset().seconds == 0
    with pytest.raises(ConfigError, match="SOURCE_DATE_EPOCH"):
        derivation_time({"SOURCE_DATE_EPOCH": "yesterday"})


# --- greyscale masters ------------------------------------------------------------------------


def luminance_grey(rgb: np.ndarray) -> np.ndarray:
    """The reference: sRGB-encoded relative luminance, float64, written out step by step."""
    def linear(v):
        return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)

    y = 0.2126 * linear(rgb[..., 0]) + 0.7152 * linear(rgb[..., 1]) + 0.0722 * linear(rgb[..., 2])
    return np.where(y <= 0.0031308, 12.92 * y, 1.055 * y ** (1 / 2.4) - 0.055)


def test_grey_from_rgb_is_the_luminance_and_exact_on_neutral_pixels():
    from oldphoto.archival import grey_from_rgb

    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    rgb[:4] = rgb[:4, :, :1]  # neutral rows
    grey = grey_from_rgb(rgb)
    assert grey.dtype == np.uint8 and grey.shape == (16, 16)
    assert np.array_equal(grey[:4], rgb[:4, :, 0])
    reference = np.rint(luminance_grey(rgb.astype(np.float64) / 255) * 255)
    assert np.abs(grey.astype(int) - reference).max() <= 0
    assert grey_from_rgb(np.array([[[255, 0, 0], [0, 0, 255]]], np.uint8)).tolist() == [[127, 76]]
    floats = rng.random((8, 8, 3)).astype(np.float32)
    floats[0] = floats[0, :, :1]
    out = grey_from_rgb(floats)
    assert out.dtype == np.float32 and np.array_equal(out[0], floats[0, :, 0])
    assert np.abs(out - luminance_grey(floats.astype(np.float64))).max() < 1e-6


@pytest.mark.parametrize("name,fmt", [("grey8.png", "png"), ("grey16.png", "png"),
                                      ("grey16.tif", "tiff"), ("grey16.png", "tiff"),
                                      ("grey8.jpg", "jpeg"), ("grey16.tif", "jpeg")])
def test_greyscale_master_gives_greyscale_derivative(greys, tmp_path, name, fmt):
    import tifffile
    from PIL import Image

    photo = greys[name]
    master16, working = identity_final(photo.path)
    restored = working.copy()
    restored[10:20, 10:30] = (200, 170, 120)   # a repair the restoration coloured
    restored[30:40, 40:60] += np.array([0, 4, 12], np.uint8)  # an invented blue cast
    out = tmp_path / ("out" + {"png": ".png", "tiff": ".tif", "jpeg": ".jpg"}[fmt])
    derive(photo.path, out, restored=restored)
    bits = 16 if photo.bits == 16 and fmt != "jpeg" else 8
    tags = read_tags(out)
    if fmt == "png":
        assert (tags["PNG:ColorType"], tags["PNG:BitDepth"]) == (0, bits)  # 0: greyscale
    elif fmt == "tiff":
        assert (tags["IFD0:PhotometricInterpretation"], tags["IFD0:SamplesPerPixel"],
                tags["IFD0:BitsPerSample"]) == (1, 1, bits)  # 1: BlackIsZero
        samples = tifffile.imread(out)
        assert samples.ndim == 2 and samples.dtype == (np.uint16 if bits == 16 else np.uint8)
    else:
        assert (tags["File:ColorComponents"], tags["File:BitsPerSample"]) == (1, 8)
    assert icc_of(out) == (GREY_ICC if photo.icc is not None else b"")
    with Image.open(out) as im:
        assert im.mode == ("I;16" if bits == 16 else "L")
        written = np.asarray(im).astype(np.float64) / (65535 if bits == 16 else 255)
    # unchanged pixels: the master's own samples; changed ones: the luminance of the result
    stored = photo.pixels.astype(np.float64) / (65535 if photo.bits == 16 else 255)
    changed = np.zeros(stored.shape, bool)
    changed[10:20, 10:30] = changed[30:40, 40:60] = True
    if fmt != "jpeg":
        assert np.abs(written - stored)[~changed].max() <= 0.5 / (65535 if bits == 16 else 255)
    levels = np.rint(stored * 255)
    fine = stored * 255 - levels  # the master's gradation below 8-bit levels, kept
    expected = luminance_grey((restored.astype(np.float64) + fine[:, :, None]) / 255)
    error = np.abs(written - expected)
    if fmt == "jpeg":  # lossy: ringing at the repair's sharp edges, right on average
        assert error[changed].mean() <= 1 / 255 and error.max() <= 8 / 255
    else:  # within one level (the final is built in float32, then rounded)
        assert error[changed].max() <= 1 / (65535 if bits == 16 else 255)
    # the coloured repair is as light as its colour (sRGB (200, 170, 120): grey 174.1)
    assert abs(np.median(written[10:20, 10:30]) * 255 - 174.1) < 1.0


# --- resolution -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["png", "tiff", "jpeg"])
@pytest.mark.parametrize("name", ["grey16.png", "grey8.jpg", "no_res.tif"])
def test_no_resolution_is_invented(greys, tmp_path, fmt, name):
    from PIL import Image

    if name == "no_res.tif":  # a TIFF without resolution tags (Pillow reads it as 1 dpi)
        path = tmp_path / name
        Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(path)
        with Image.open(path) as im:
            assert 282 not in im.tag_v2 and im.info.get("dpi") == (1, 1)
    else:  # no pHYs, no EXIF resolution; a JPEG with EXIF but no resolution (Pillow: 72 dpi)
        path = greys[name].path
    master = read_master(path)
    assert master.dpi is None
    out = tmp_path / ("out" + {"png": ".png", "tiff": ".tif", "jpeg": ".jpg"}[fmt])
    record = derive(path, out)
    assert record["source"]["dpi"] is None
    tags = read_tags(out)
    assert not [k for k in tags if k.endswith(("XResolution", "YResolution", "PixelsPerUnitX"))
                and not k.startswith(("IFD0", "JFIF"))]
    if fmt == "png":
        assert "PNG-pHYs:PixelsPerUnitX" not in tags and "IFD0:XResolution" not in tags
    elif fmt == "tiff":  # TIFF requires the fields: unit 1 is its "no absolute unit"
        assert (tags["IFD0:XResolution"], tags["IFD0:YResolution"],
                tags["IFD0:ResolutionUnit"]) == (1, 1, 1)
    else:  # JFIF requires a density: units 0 states the pixel aspect ratio only
        assert (tags["JFIF:ResolutionUnit"], tags["JFIF:XResolution"]) == (0, 1)
        assert "IFD0:XResolution" not in tags and "IFD0:ResolutionUnit" not in tags


@pytest.mark.parametrize("fmt", ["png", "tiff", "jpeg"])
def test_a_stated_resolution_is_carried(greys, tmp_path, fmt):
    out = tmp_path / ("out" + {"png": ".png", "tiff": ".tif", "jpeg": ".jpg"}[fmt])
    derive(greys["grey8.png"].path, out)  # 300 dpi
    tags = read_tags(out)
    assert (tags["IFD0:XResolution"], tags["IFD0:YResolution"], tags["IFD0:ResolutionUnit"]) \
        == (300, 300, 2)
    if fmt == "png":
        assert round(tags["PNG-pHYs:PixelsPerUnitX"] * 0.0254) == 300
    if fmt == "jpeg":
        assert (tags["JFIF:XResolution"], tags["JFIF:ResolutionUnit"]) == (300, 1)


def test_stated_dpi_reads_units_and_no_defaults(tmp_path):
    import tifffile
    from PIL import Image

    from oldphoto.archival.master import stated_dpi

    pixels = np.zeros((4, 4), np.uint8)
    cases = {"cm.tif": dict(resolution=(100, 50), resolutionunit="CENTIMETER"),
             "none.tif": dict(resolution=(300, 300), resolutionunit="NONE")}
    for name, options in cases.items():
        tifffile.imwrite(tmp_path / name, pixels, metadata=None, **options)
    Image.fromarray(pixels).save(tmp_path / "jfif.jpg", dpi=(150, 150))
    Image.fromarray(pixels).save(tmp_path / "plain.png")
    found = {}
    for name in ("cm.tif", "none.tif", "jfif.jpg", "plain.png"):
        with Image.open(tmp_path / name) as im:
            found[name] = stated_dpi(im)
    assert found == {"cm.tif": (254.0, 127.0), "none.tif": None, "jfif.jpg": (150.0, 150.0),
                     "plain.png": None}


# --- masters libexiv2 cannot read -------------------------------------------------------------


def test_a_gif_master_carries_nothing_but_gets_its_provenance(tmp_path):
    from PIL import Image

    path = tmp_path / "masters" / "scan.gif"
    path.parent.mkdir()
    Image.fromarray(np.full((8, 12, 3), 120, np.uint8)).save(path)
    out = tmp_path / "out.png"
    derive(path, out)
    tags = read_tags(out)
    assert tags["XMP-xmpMM:DerivedFrom"] == {"FilePath": "scan.gif"}
    assert tags["XMP-iptcExt:DigitalSourceType"] == ALGORITHMICALLY_ENHANCED
    assert "IFD0:Artist" not in tags and "IPTC:ObjectName" not in tags


def test_unreadable_metadata_names_the_file():
    from oldphoto.archival.metadata import read_carried

    with pytest.raises(BadImageError, match=r"broken\.png: unreadable metadata: Failed to read"):
        read_carried(b"\x89PNG\r\n\x1a\n" + b"garbage" * 5, "broken.png")
