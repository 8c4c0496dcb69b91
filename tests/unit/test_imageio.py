"""oldphoto.inputs, .decode, .atomic: discovery, decoding of the hostile corpus, atomic writes,
output helpers."""

from __future__ import annotations

import json
import os
import unicodedata
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps

from hostile import Expected, make_hostile_corpus, photo
from oldphoto.errors import BadImageError, ConfigError
from oldphoto.atomic import TEMP_PREFIX, read_png_text, write_bytes_atomic, write_json, write_png
from oldphoto.decode import DecodedImage, apply_alpha, orient, read_image, resize_to
from oldphoto.inputs import IMAGE_EXTENSIONS, InputSet, list_inputs, safe_stem


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict[str, Expected]]:
    folder = tmp_path_factory.mktemp("hostile")
    return folder, make_hostile_corpus(folder)


def _temp_files(folder: Path) -> list[str]:
    return [name for name in os.listdir(folder) if name.startswith(TEMP_PREFIX)]


# ---------------------------------------------------------------------------------------------
# Discovery


def test_corpus_listing_matches_expectations(corpus):
    folder, cases = corpus
    inputs = list_inputs(folder)
    assert isinstance(inputs, InputSet)
    listed = {path.name: stem for stem, path in inputs.images.items()}
    wanted = {name for name, e in cases.items() if e != "skipped"}
    assert set(listed) == wanted
    for name, stem in listed.items():
        assert stem == cases[name].stem
        assert inputs.images[stem] == folder / name
    assert list(inputs.images) == sorted(inputs.images)
    skipped = {path.name: reason for path, reason in inputs.skipped}
    assert set(skipped) == {name for name, e in cases.items() if e == "skipped"}
    assert all(reason for reason in skipped.values())
    assert [p.name for p, _ in inputs.skipped] == sorted(p.name for p, _ in inputs.skipped)
    assert skipped[".DS_Store"] == "hidden file"
    assert "folder" in skipped["folder.png"]
    assert "sidecar" in skipped["photo.xmp"] and "sidecar" in skipped["notes.txt"]
    assert "unknown extension" in skipped["data.xyz"]
    assert "symbolic link" in skipped["dangling.png"]
    assert "wildcards" in skipped["{braces}.png"] and "wildcards" in skipped["x<y>.png"]
    assert "control characters" in skipped["new\nline.png"]


def test_corpus_subset(tmp_path):
    cases = make_hostile_corpus(tmp_path, only=["plain.png", "bomb.png", "folder.png"])
    assert set(cases) == {"plain.png", "bomb.png", "folder.png"}
    assert sorted(os.listdir(tmp_path)) == ["bomb.png", "folder.png", "plain.png"]
    assert cases["plain.png"] == "ok" and cases["plain.png"].size == (96, 64)
    assert cases["bomb.png"].reason == "over the limit" and cases["folder.png"] == "skipped"


def test_stems_are_full_splitext_stems(tmp_path):
    for name in ("a.jpeg", "a.b.png", "UPPER.JPG", "x.TiFf", "-dash.webp", "sp ace [1].gif"):
        (tmp_path / name).write_bytes(b"")
    images, skipped = list_inputs(tmp_path)  # a NamedTuple: unpacks like the design's tuple
    assert list(images) == sorted(["a", "a.b", "UPPER", "x", "-dash", "sp ace [1]"])
    assert skipped == []
    assert {ext for ext in IMAGE_EXTENSIONS} == {
        ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif"}


@pytest.mark.parametrize("names", [
    ("a.jpg", "a.png"),
    ("A.png", "a.png"),
    ("Face.JPG", "face.png"),
    (unicodedata.normalize("NFC", "café.png"), unicodedata.normalize("NFD", "café.jpg")),
])
def test_output_name_collisions_raise_naming_both(tmp_path, names):
    for name in (*names, "other.png"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(ConfigError) as info:
        list_inputs(tmp_path)
    for name in names:
        assert repr(name) in info.value.reason
    assert "\n" not in info.value.one_line()


def test_missing_input_folder_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError):
        list_inputs(tmp_path / "nope")
    (tmp_path / "file.png").write_bytes(b"")
    with pytest.raises(ConfigError):
        list_inputs(tmp_path / "file.png")


def test_safe_stem():
    for stem in ("a", "a.b", "-x", "sp ace", "[1] 'q' \"d\"", "写真", "a,b", "50%", "$x",
                 "back\\slash", "(1)"):
        assert safe_stem(stem), stem
    for stem in ("", ".", "..", "a/b", "a\0b", "caf\udce9", "{braces}", "x<y>", "a\nb",
                 "a\tb"):
        assert not safe_stem(stem), stem


# ---------------------------------------------------------------------------------------------
# Decoding the corpus


def test_every_corpus_file_decodes_as_expected(corpus):
    folder, cases = corpus
    problems = []
    for name, expected in sorted(cases.items()):
        if expected == "skipped":
            continue
        path = folder / name
        if expected.startswith("bad:"):
            try:
                read_image(path)
            except BadImageError as err:
                if expected.reason not in err.reason:
                    problems.append(f"{name}: reason {err.reason!r} lacks {expected.reason!r}")
                if err.path != str(path) or "\n" in err.one_line():
                    problems.append(f"{name}: error line {err.one_line()!r}")
            else:
                problems.append(f"{name}: decoded, expected {expected}")
            continue
        image = read_image(path)
        assert isinstance(image, DecodedImage)
        if image.rgb.dtype != np.uint8 or image.rgb.shape != (*expected.size[::-1], 3):
            problems.append(f"{name}: rgb {image.rgb.dtype} {image.rgb.shape}")
            continue
        if image.size != expected.size:
            problems.append(f"{name}: size {image.size} != {expected.size}")
        error = np.abs(image.rgb.astype(np.int16) - expected.rgb.astype(np.int16)).mean()
        if error > expected.tol:
            problems.append(f"{name}: mean abs error {error:.2f} > {expected.tol}")
        if (image.alpha is None) != (expected.alpha is None):
            problems.append(f"{name}: alpha {image.alpha is not None}, "
                            f"expected {expected.alpha is not None}")
        elif image.alpha is not None:
            alpha_error = np.abs(image.alpha.astype(np.int16) - expected.alpha).max()
            if image.alpha.dtype != np.uint8 or alpha_error > 1:
                problems.append(f"{name}: alpha off by {alpha_error}")
        if expected.note and not any(expected.note in note for note in image.notes):
            problems.append(f"{name}: no note with {expected.note!r} in {image.notes}")
    assert not problems, "\n".join(problems)


def test_sixteen_bit_is_scaled_not_saturated(corpus):
    folder, _ = corpus
    for name in ("gray16.png", "gray16_tiff.tif", "int32.tif", "rgb16.png", "rgb16_tiff.tif"):
        row = read_image(folder / name).rgb[0, :5, 0]
        # 0, 255, 256, 32896, 65535 → round(v/257)
        assert row.tolist() == [0, 1, 1, 128, 255], name


def test_sixteen_bit_colour_uses_full_precision(tmp_path):
    import cv2

    # PIL alone keeps only the high byte of 48-bit PNGs: 200, 1000, 60000 -> 0, 3, 234.
    values = np.array([[200, 1000, 60000]], np.uint16)
    cv2.imwrite(str(tmp_path / "v.png"), np.dstack([values] * 3))
    with Image.open(tmp_path / "v.png") as im:
        assert np.asarray(im)[0, :, 0].tolist() == [0, 3, 234]  # what we must not do
    assert read_image(tmp_path / "v.png").rgb[0, :, 0].tolist() == [1, 4, 233]


def test_exif_orientation_matches_pil_for_all_eight(tmp_path):
    base = photo(12, 7)
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        path = tmp_path / f"o{orientation}.png"
        Image.fromarray(base).save(path, exif=exif)
        with Image.open(path) as im:
            reference = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
        decoded = read_image(path)
        assert np.array_equal(decoded.rgb, reference), orientation
        assert np.array_equal(orient(base, orientation), reference), orientation
        assert decoded.size == (reference.shape[1], reference.shape[0])
        assert (f"EXIF orientation {orientation} applied" in decoded.notes) == (orientation != 1)


def test_orientation_six_swaps_width_and_height(corpus):
    folder, _ = corpus
    image = read_image(folder / "exif_rot6.jpg")
    assert image.size == (64, 96) and image.rgb.shape == (96, 64, 3)


def test_alpha_composited_on_white_and_kept(corpus):
    folder, _ = corpus
    image = read_image(folder / "rgba.png")
    assert image.alpha[:, 0].max() == 0 and image.alpha[:, -1].min() == 255
    assert (image.rgb[:, 0] == 255).all()  # fully transparent: white, not the hidden colour
    assert np.array_equal(image.rgb[:, -1], photo()[:, -1])  # opaque: untouched
    assert image.mode == "RGBA"


def test_transparent_pixel_shows_white_not_hidden_colour(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., :3] = (10, 20, 30)
    rgba[0, 0, 3] = 0
    rgba[0, 1, 3] = 128
    rgba[1, :, 3] = 255
    Image.fromarray(rgba).save(tmp_path / "a.png")
    image = read_image(tmp_path / "a.png")
    assert image.rgb[0, 0].tolist() == [255, 255, 255]
    assert image.rgb[0, 1].tolist() == [round(10 * 128 / 255 + 255 * 127 / 255),
                                        round(20 * 128 / 255 + 255 * 127 / 255),
                                        round(30 * 128 / 255 + 255 * 127 / 255)]
    assert image.rgb[1, 0].tolist() == [10, 20, 30]
    assert image.alpha.tolist() == [[0, 128], [255, 255]]


def test_cmyk_jpeg_colours_are_roughly_right(tmp_path):
    colours = {(255, 0, 0): (0, 255, 255, 0), (0, 255, 0): (255, 0, 255, 0),
               (0, 0, 255): (255, 255, 0, 0), (255, 255, 255): (0, 0, 0, 0),
               (0, 0, 0): (0, 0, 0, 255)}
    for rgb, cmyk in colours.items():
        Image.new("CMYK", (16, 16), cmyk).save(tmp_path / "c.jpg", quality=95)
        image = read_image(tmp_path / "c.jpg")
        assert image.mode == "CMYK"
        assert np.abs(image.rgb[8, 8].astype(int) - rgb).max() <= 8, (rgb, image.rgb[8, 8])


def test_pixel_limit(corpus):
    folder, _ = corpus
    with pytest.raises(BadImageError, match="over the limit of 1000 pixels"):
        read_image(folder / "plain.png", max_pixels=1000)
    assert read_image(folder / "plain.png", max_pixels=96 * 64).size == (96, 64)
    # Between the limit and twice the limit PIL only warns; we still refuse.
    with pytest.raises(BadImageError, match="over the limit"):
        read_image(folder / "plain.png", max_pixels=96 * 64 - 1)


def test_decoding_leaves_pil_globals_alone(corpus):
    folder, _ = corpus
    before = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES, list(warnings.filters))
    for name in ("plain.png", "bomb.png", "truncated.png"):
        try:
            read_image(folder / name, max_pixels=5000)
        except BadImageError:
            pass
    assert (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES,
            list(warnings.filters)) == before
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_unreadable_paths_are_bad_images(tmp_path):
    with pytest.raises(BadImageError, match="not found"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(BadImageError, match="folder"):
        read_image(tmp_path / "dir.png")


# ---------------------------------------------------------------------------------------------
# Writing


def test_write_png_round_trip_with_text_and_no_temp_left(tmp_path):
    rgb = photo(20, 10)
    alpha = np.tile(np.arange(0, 200, 10, dtype=np.uint8), (10, 1))
    text = {"oldphoto:backend": "classical", "note": "café 写真", "n": 3}
    target = tmp_path / "new folder" / "out [1].png"
    write_png(target, rgb, text=text)
    with Image.open(target) as im:
        assert im.mode == "RGB" and np.array_equal(np.asarray(im), rgb)
    assert read_png_text(target) == {k: str(v) for k, v in text.items()}
    write_png(target, rgb, alpha=alpha)
    with Image.open(target) as im:
        assert im.mode == "RGBA"
        assert np.array_equal(np.asarray(im), np.dstack([rgb, alpha]))
    assert _temp_files(target.parent) == []
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_interrupted_png_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    write_png(target, photo(8, 8))
    before = target.read_bytes()

    def half_save(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG\r\n\x1a\n half a file")
        raise RuntimeError("disk full, say")

    monkeypatch.setattr(Image.Image, "save", half_save)
    with pytest.raises(RuntimeError, match="disk full"):
        write_png(target, photo(16, 16))
    assert target.read_bytes() == before
    assert _temp_files(tmp_path) == []


def test_interrupted_byte_and_json_writes_keep_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "record.json"
    write_json(target, {"faces": [1, 2], "name": "写真"})
    assert json.loads(target.read_text(encoding="utf-8")) == {"faces": [1, 2], "name": "写真"}
    before = target.read_bytes()

    def failing_fsync(fd):
        raise OSError(5, "I/O error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError):
        write_json(target, {"faces": []})
    with pytest.raises(OSError):
        write_bytes_atomic(target, b"new")
    assert target.read_bytes() == before
    assert _temp_files(tmp_path) == []
    monkeypatch.undo()
    write_bytes_atomic(target, b"new")
    assert target.read_bytes() == b"new" and _temp_files(tmp_path) == []


def test_write_png_rejects_wrong_arrays(tmp_path):
    with pytest.raises(ValueError):
        write_png(tmp_path / "a.png", np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError):
        write_png(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8),
                  alpha=np.zeros((3, 4), np.uint8))
    assert not (tmp_path / "a.png").exists() and _temp_files(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# Output helpers


def test_resize_to_uses_lanczos_down_and_bicubic_up():
    rgb = photo(40, 30)
    down = resize_to(rgb, (20, 15))
    assert np.array_equal(down, np.asarray(Image.fromarray(rgb).resize((20, 15), Image.LANCZOS)))
    up = resize_to(rgb, (81, 61))
    assert up.shape == (61, 81, 3) and up.dtype == np.uint8
    assert np.array_equal(up, np.asarray(Image.fromarray(rgb).resize((81, 61), Image.BICUBIC)))
    assert resize_to(rgb, (40, 30)) is rgb
    assert resize_to(rgb[:, :, 0], (20, 15)).shape == (15, 20)


def test_apply_alpha():
    rgb, alpha = photo(5, 4), np.full((4, 5), 7, np.uint8)
    rgba = apply_alpha(rgb, alpha)
    assert rgba.shape == (4, 5, 4) and rgba.dtype == np.uint8
    assert np.array_equal(rgba[..., :3], rgb) and (rgba[..., 3] == 7).all()
    assert apply_alpha(rgb, None) is rgb
    with pytest.raises(ValueError):
        apply_alpha(rgb, np.zeros((5, 4), np.uint8))
