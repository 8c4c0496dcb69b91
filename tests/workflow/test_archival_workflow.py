"""Archival derivatives through the real workflow (issue 14): the generated tagged corpus
(``tests/archival_corpus.py``) and a greyscale master with XMP identifiers and no resolution,
restored by Snakemake with the classical backend in every output format and with the pretrained
backend (recipe weights), read back with exiftool (the workflow itself writes with libexiv2).

Every run reads the same input folder, whose files are hashed (sha256, size, modification and
change times, inode) and listed before the first run and after every run, including runs killed
with SIGKILL midway and resumed: no run writes, renames, touches or adds a file there.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from archival_corpus import (FIELDS, GREY_IDENTITY, ICC_PATH, icc_of, make_clean_photo,
                             make_corpus, make_grey_masters, read_tags, require_exiftool,
                             shown_srgb, tone_stats)
from conftest import make_tiny_photos, run_snakemake, snakemake_invocation, workflow_config
from oldphoto.archival.provenance import content_id

pytestmark = pytest.mark.workflow

require_exiftool()

ICC = ICC_PATH.read_bytes()
IPTC_TYPES = "http://cv.iptc.org/newscodes/digitalsourcetype/"
# input file -> (bits, dpi, stored (width, height)); the corpus's PNG twin is renamed so that
# its stem differs from the TIFF's (two inputs may not share an output name).
MASTERS = {
    "colour16.tif": (16, 600.0, (64, 48)),       # orientation 6: the output is 48 x 64
    "colour16_png.png": (16, 1200.0, (64, 48)),
    "grey_print.tif": (16, 600.0, (64, 48)),     # RGB with R = G = B: an RGB master
    "sepia_print.png": (8, 1200.0, (64, 48)),
    "clean.tif": (16, 600.0, (64, 48)),
    "grey16.png": (16, None, (64, 48)),          # greyscale, no resolution, xmpMM identifiers
}
GREY = {"grey16.png"}
EXT = {"png": ".png", "tiff": ".tif", "jpeg": ".jpg"}


def make_scratched_print(path: Path) -> None:
    """A 160x120 print with two thin bright scratches (the classical detector finds them; the
    tiny crops of the bundled scratched sample are too small for it)."""
    import cv2

    y, x = np.mgrid[0:120, 0:160]
    base = 90 + 60 * np.sin(x / 15.0) * np.cos(y / 21.0)
    rgb = np.dstack([base, base * 0.9, base * 0.8]).astype(np.uint8)
    for x0, y0, x1, y1 in ((10, 5, 150, 100), (30, 110, 140, 20)):
        cv2.line(rgb, (x0, y0), (x1, y1), (245, 245, 240), 1)
    cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1]))


def snapshot(folder: Path) -> dict:
    """Everything a run could change about the masters: listing, bytes, times, identity."""
    state = {}
    for path in sorted(folder.iterdir()):
        st = path.stat()
        state[path.name] = (hashlib.sha256(path.read_bytes()).hexdigest(), st.st_size,
                            st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode)
    return state


def last_event(found: dict) -> dict:
    """The derivation's event: the last of the XMP History (one event comes as a dict)."""
    history = found["XMP-xmpMM:History"]
    return (history if isinstance(history, list) else [history])[-1]


def stem(name: str) -> str:
    return name.rsplit(".", 1)[0]


def output_ext(name: str, output_format: str) -> str:
    if output_format == "same":
        return ".tif" if name.endswith(".tif") else ".png"
    return EXT[output_format]


@pytest.fixture(scope="module")
def masters(tmp_path_factory):
    """The shared input folder (the corpus, the clean photo, a tiny face and a scratched photo)
    and its snapshot; checked once more when every test of this module is done."""
    root = tmp_path_factory.mktemp("archival-masters")
    corpus = make_corpus(root / "corpus")
    folder = root / "in"
    folder.mkdir()
    for name, photo in corpus.items():
        shutil.copy2(photo.path, folder / ("colour16_png.png" if name == "colour16.png"
                                           else name))
    make_clean_photo(folder)
    shutil.copy2(make_grey_masters(root / "grey")["grey16.png"].path, folder / "grey16.png")
    shutil.copy2(make_tiny_photos(root / "tiny")["face"], folder / "face.png")
    make_scratched_print(folder / "scratched.png")
    before = snapshot(folder)
    yield folder, before
    assert snapshot(folder) == before, "a master was written, touched, renamed, or a file added"


def start_and_kill(workdir: Path, config: dict, first_job: str) -> None:
    """Start a run and SIGKILL its whole process group once the first ``first_job`` log exists
    (the job has started); then unlock, as after any killed Snakemake."""
    cmd, env = snakemake_invocation(workdir, config)
    proc = subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    logs = Path(config["output_dir"]) / "logs" / first_job
    deadline = time.monotonic() + 300
    while not (logs.is_dir() and any(logs.iterdir())):
        assert proc.poll() is None, "the run ended before its first job started"
        assert time.monotonic() < deadline, "no job started within 300 s"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    run_snakemake(workdir, config, "--unlock")


RUNS = {
    # output_format -> config overrides; the png run also repairs scratches, the same run keeps
    # the prints' tone, the tiff run is killed midway and resumed first.
    "png": {"with_scratch": True},
    "tiff": {},
    "jpeg": {},
    "same": {"tone": "keep"},
}


@pytest.fixture(scope="module")
def classical(masters, tmp_path_factory):
    folder, before = masters
    outputs = {}
    for output_format, overrides in RUNS.items():
        tmp = tmp_path_factory.mktemp(f"classical-{output_format}")
        config = workflow_config(tmp, input_dir=str(folder), output_format=output_format,
                                 **overrides)
        if output_format == "tiff":
            start_and_kill(tmp / "work", config, "restore_global")
            assert snapshot(folder) == before, "the killed run changed a master"
        run_snakemake(tmp / "work", config)
        assert snapshot(folder) == before, f"the {output_format} run changed a master"
        outputs[output_format] = Path(config["output_dir"])
    return outputs


def final_of(out: Path, name: str, output_format: str) -> Path:
    return out / "final_output" / (stem(name) + output_ext(name, output_format))


def check_carried(path: Path, name: str, output_format: str, backend: str) -> dict:
    """The fields, profile, resolution, orientation, bit depth and provenance of one final
    output of the master ``name``; returns its tags."""
    bits, dpi, (width, height) = MASTERS[name]
    found = read_tags(path)
    for key, value in FIELDS.items():
        assert found.get(key) == value, (path.name, key, found.get(key))
    assert found["IFD0:Orientation"] == 1
    fmt = {".png": "png", ".tif": "tiff", ".jpg": "jpeg"}[path.suffix]
    if dpi is not None:
        assert (found["IFD0:XResolution"], found["IFD0:YResolution"]) == (dpi, dpi)
        assert found["IFD0:ResolutionUnit"] == 2
        if fmt == "png":
            assert round(found["PNG-pHYs:PixelsPerUnitX"] * 0.0254) == dpi
    else:  # none invented: TIFF's "no absolute unit", JFIF's aspect ratio, nothing in PNG
        assert {"png": None, "tiff": 1, "jpeg": None}[fmt] == found.get("IFD0:ResolutionUnit")
        assert "PNG-pHYs:PixelsPerUnitX" not in found
        assert found.get("JFIF:ResolutionUnit", 0) == 0
    if name.startswith(("colour", "clean")):
        assert icc_of(path) == ICC, path.name
    grey = name in GREY
    colour_type = found.get("PNG:ColorType", found.get("IFD0:PhotometricInterpretation",
                                                       found.get("File:ColorComponents")))
    # PNG colour type 0 / TIFF BlackIsZero / one JPEG component: grey; otherwise RGB
    assert colour_type == ({"png": 0, "tiff": 1, "jpeg": 1}[fmt] if grey
                           else {"png": 2, "tiff": 2, "jpeg": 3}[fmt]), (path.name, colour_type)
    rotated = name == "colour16.tif"
    with Image.open(path) as im:
        assert im.size == ((height, width) if rotated else (width, height)), path.name
    want_bits = 16 if bits == 16 and fmt != "jpeg" else 8
    sample_bits = found.get("IFD0:BitsPerSample") or found.get("PNG:BitDepth") or \
        found.get("File:BitsPerSample")
    assert int(str(sample_bits).split()[0]) == want_bits, (path.name, sample_bits)
    # provenance
    source_type = "compositeWithTrainedAlgorithmicMedia" if backend == "pretrained" \
        else "algorithmicallyEnhanced"
    assert found["XMP-iptcExt:DigitalSourceType"] == IPTC_TYPES + source_type
    assert found["XMP-xmpMM:DerivedFrom"]["FilePath"] == name
    assert found["XMP-xmp:CreatorTool"].startswith("oldphoto ")
    event = last_event(found)
    assert event["Action"] == "derived" and event["SoftwareAgent"].startswith("oldphoto ")
    parameters = json.loads(event["Parameters"])
    assert parameters["backend"] == backend
    assert parameters["settings"]["output_format"] == output_format
    # identity (XMP Media Management): the derivative's own IDs; DerivedFrom and the original
    # name the master's where it has them, else the content ID of its bytes
    assert found["XMP-xmpMM:DocumentID"].startswith("uuid:")
    assert found["XMP-xmpMM:InstanceID"] == event["InstanceID"] != found["XMP-xmpMM:DocumentID"]
    if name in GREY:
        assert found["XMP-xmpMM:DocumentID"] != GREY_IDENTITY["DocumentID"]
        assert found["XMP-xmpMM:DerivedFrom"] == {"FilePath": name, **GREY_IDENTITY}
        assert found["XMP-xmpMM:OriginalDocumentID"] == GREY_IDENTITY["DocumentID"]
    else:
        assert found["XMP-xmpMM:DerivedFrom"] == {"FilePath": name}
        assert found["XMP-xmpMM:OriginalDocumentID"] == content_id(parameters["source_sha256"])
    assert re.fullmatch(r"\d{4}:\d\d:\d\d \d\d:\d\d:\d\d\+00:00", event["When"]), event
    if os.environ.get("SOURCE_DATE_EPOCH"):  # conftest pins it: the time the job was given
        epoch = dt.datetime.fromtimestamp(int(os.environ["SOURCE_DATE_EPOCH"]), dt.timezone.utc)
        assert event["When"] == epoch.strftime("%Y:%m:%d %H:%M:%S+00:00")
    return found


def read16(path: Path) -> np.ndarray:
    """The samples of a PNG or TIFF as stored (uint16 or uint8), RGB."""
    import cv2

    array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return np.ascontiguousarray(array[:, :, 2::-1])


# -- every format, classical backend -----------------------------------------------------------


@pytest.mark.parametrize("output_format", list(RUNS))
def test_every_format_carries_fields_profile_depth_and_provenance(masters, classical,
                                                                   output_format):
    folder, _ = masters
    out = classical[output_format]
    finals = sorted(p.name for p in (out / "final_output").iterdir())
    expected = sorted(stem(n) + output_ext(n, output_format)
                      for n in [*MASTERS, "face.png", "scratched.png"])
    assert finals == expected
    for name in MASTERS:
        path = final_of(out, name, output_format)
        found = check_carried(path, name, output_format, "classical")
        parameters = json.loads(last_event(found)["Parameters"])
        assert parameters["source_sha256"] == hashlib.sha256(
            (folder / name).read_bytes()).hexdigest()
        if path.suffix == ".png":  # the backend stays readable as PNG text too
            with Image.open(path) as im:
                assert im.text["oldphoto:backend"] == "classical"


@pytest.mark.parametrize("output_format", ["png", "tiff"])
def test_16bit_masters_give_real_16bit_finals(classical, output_format):
    out = classical[output_format]
    for name in ("colour16.tif", "colour16_png.png", "grey_print.tif"):
        samples = read16(final_of(out, name, output_format))
        assert samples.dtype == np.uint16, name
        # the corpus's smooth gradients: far more than the 256 levels 8-bit data could have,
        # and not 8-bit values scaled up (those would all be multiples of 257)
        assert np.unique(samples[:, :, 0]).size > 256, name
        assert np.any(samples % 257 != 0), name


@pytest.mark.parametrize("output_format", list(RUNS))
def test_greyscale_master_gives_a_greyscale_final_at_its_depth(classical, output_format):
    """grey16.png (16-bit, one channel) comes back with one channel, 16 bits in PNG and TIFF,
    whatever colour the restoration added (tone official in the png, tiff and jpeg runs)."""
    from PIL import Image

    out = classical[output_format]
    path = final_of(out, "grey16.png", output_format)
    with Image.open(path) as im:
        assert im.mode == ("L" if path.suffix == ".jpg" else "I;16"), (path.name, im.mode)
        samples = np.asarray(im)
    assert samples.ndim == 2
    if path.suffix != ".jpg":
        assert len(np.unique(samples)) > 256  # real 16-bit levels, not 8-bit ones scaled up
    sidecar = json.loads((out / "provenance" / "grey16.json").read_text())
    assert sidecar["output"]["colour_model"] == "grey"
    assert sidecar["source"]["dpi"] is None


def test_jpeg_finals_are_8bit_with_the_quality_asked(classical):
    out = classical["jpeg"]
    with Image.open(out / "final_output" / "colour16.jpg") as im:
        assert im.format == "JPEG" and im.mode == "RGB"


def test_sidecar_holds_provenance_changes_and_timings(masters, classical):
    folder, _ = masters
    out = classical["png"]
    for name in [*MASTERS, "face.png", "scratched.png"]:
        sidecar = json.loads((out / "provenance" / f"{stem(name)}.json").read_text())
        assert sidecar["source"]["file_name"] == name
        assert sidecar["source"]["sha256"] == hashlib.sha256(
            (folder / name).read_bytes()).hexdigest()
        assert sidecar["digital_source_type"] == IPTC_TYPES + "algorithmicallyEnhanced"
        assert sidecar["backend"] == "classical" and sidecar["checkpoints"] == {}
        settings = sidecar["settings"]
        assert settings["mode"] == "scratch" and settings["output_format"] == "png"
        assert settings["tone"] == "official" and settings["blending"] == "official"
        for rule in ("detect_scratches", "restore_global", "detect_and_enhance_faces",
                     "blend_faces"):
            assert sidecar["timings_s"][rule] > 0, (name, rule)
        assert sidecar["output"]["file"] == f"{stem(name)}.png"
        assert sidecar["output"]["bits"] == (16 if MASTERS.get(name, (8,))[0] == 16 else 8)
        changes = sidecar["changes"]
        assert 0.0 <= changes["changed_fraction"] <= 1.0
        preview = out / "report" / "changes" / f"{stem(name)}.changes.jpg"
        with Image.open(preview) as im:
            assert im.format == "JPEG"
    scratched = json.loads((out / "provenance" / "scratched.json").read_text())["changes"]
    assert scratched["scratch_area_fraction"] > 0 and scratched["changed_fraction"] > 0
    face = json.loads((out / "provenance" / "face.json").read_text())["changes"]
    assert face["faces"] >= 1 and face["face_area_fraction"] > 0


def test_change_map_shows_the_replaced_face(classical):
    out = classical["png"]
    face = json.loads((out / "provenance" / "face.json").read_text())
    record = json.loads((out / "stage_2_detection_output" / "face" / "faces.json").read_text())
    assert face["changes"]["faces"] == len(record["faces"])
    with Image.open(out / "report" / "changes" / "face.changes.jpg") as im:
        preview = np.asarray(im.convert("RGB")).astype(int)
    # the cyan box of the replaced face region stands where stage 4 pastes the face: the
    # aligned square through face_to_photo (the photo is the final's size, no scaling)
    [entry] = record["faces"]
    side = record["face_size"]
    corners = np.array([[0, 0, 1], [side, 0, 1], [0, side, 1], [side, side, 1]], float)
    points = corners @ np.array(entry["face_to_photo"])[:2].T
    height, width = preview.shape[:2]
    x0, y0 = np.clip(np.rint(points.min(axis=0)), 0, [width, height]).astype(int)
    x1, y1 = np.clip(np.rint(points.max(axis=0)), 0, [width, height]).astype(int)
    left, top, right, bottom = entry["rect"]
    assert x0 <= left and y0 <= top and right <= x1 and bottom <= y1  # it covers the face
    # cyan: green and blue far above red (a 1-px JPEG line keeps most of it)
    cyan = (preview[:, :, 1] + preview[:, :, 2] - 2 * preview[:, :, 0]) > 100
    assert cyan[y0, x0 + 3:x1 - 3].mean() > 0.9 and cyan[y0 + 3:y1 - 3, x0].mean() > 0.9
    assert cyan[y1 - 1, x0 + 3:x1 - 3].mean() > 0.9 and cyan[y0 + 3:y1 - 3, x1 - 1].mean() > 0.9
    assert cyan[y0 + 4:y1 - 4, x0 + 4:x1 - 4].mean() < 0.01  # an outline, nothing inside


def test_clean_photo_renders_the_same_colour_managed(masters, classical):
    """The classical backend leaves clean.tif unchanged; a colour-managed rendering (ImageCms to
    sRGB) of the final output equals the master's, and its 16-bit samples are the master's."""
    from oldphoto.archival import read_master_pixels16, to_working_srgb
    from oldphoto.decode import read_image

    folder, _ = masters
    out = classical["tiff"]
    master_path = folder / "clean.tif"
    master8 = read_image(master_path).rgb
    working = to_working_srgb(master8, ICC)
    # the restoration saw sRGB values (converted from Adobe RGB), and left them as they were
    stage1 = np.asarray(Image.open(out / "stage_1_restore_output/restored_image/clean.png")
                        .convert("RGB"))
    assert np.array_equal(stage1, working)
    assert not np.array_equal(working, master8)
    sidecar = json.loads((out / "provenance" / "clean.json").read_text())
    assert sidecar["changes"]["max_abs_change"] == 0
    final = out / "final_output" / "clean.tif"
    assert np.array_equal(read16(final), read16(master_path))
    rendered = shown_srgb(read_master_pixels16(final), icc_of(final))
    assert np.array_equal(rendered, shown_srgb(read_master_pixels16(master_path), ICC))
    # what a mistake would look like: the working values written under the master's profile
    assert np.abs(shown_srgb(working, ICC).astype(int) - rendered.astype(int)).max() > 8


def test_tone_keep_returns_prints_in_their_own_tone(masters, classical):
    from oldphoto.archival import is_monochrome
    from oldphoto.decode import read_image

    folder, _ = masters
    for name in ("sepia_print.png", "grey_print.tif"):
        original = read_image(folder / name).rgb
        kept = read_image(final_of(classical["same"], name, "same")).rgb
        assert is_monochrome(kept), name
        want, got = tone_stats(original), tone_stats(kept)
        for key in ("mean_cb", "mean_cr"):
            assert abs(got[key] - want[key]) < 2.0, (name, key, got, want)
    # with tone: official (the tiff run) the classical backend takes most of the sepia away
    official = tone_stats(read_image(final_of(classical["tiff"], "sepia_print.png", "tiff")).rgb)
    assert abs(official["mean_cb"] - tone_stats(read_image(folder / "sepia_print.png").rgb)
               ["mean_cb"]) > 5.0


# -- the pretrained backend ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def pretrained(masters, recipe_checkpoints, tmp_path_factory):
    """The corpus (without the tiny photos) with the official networks (recipe weights),
    killed once midway through stage 1 and resumed."""
    folder, before = masters
    tmp = tmp_path_factory.mktemp("pretrained")
    small = tmp / "in"
    small.mkdir()
    # a folder of its own (the tiny photos would cost minutes on CPU); copies keep the corpus
    # snapshot of `masters`, and this folder gets its own
    for name in MASTERS:
        shutil.copy2(folder / name, small / name)
    small_before = snapshot(small)
    config = workflow_config(tmp, input_dir=str(small), backend="pretrained",
                             checkpoints_dir=str(recipe_checkpoints), threads=2)
    start_and_kill(tmp / "work", config, "restore_global")
    assert snapshot(small) == small_before, "the killed run changed a master"
    run_snakemake(tmp / "work", config)
    assert snapshot(small) == small_before, "the pretrained run changed a master"
    return Path(config["output_dir"]), recipe_checkpoints


def test_pretrained_finals_state_trained_media_and_checkpoints(pretrained):
    from oldphoto.checkpoints import official_path, sha256_file

    out, checkpoints_dir = pretrained
    for name in MASTERS:
        path = final_of(out, name, "png")
        found = check_carried(path, name, "png", "pretrained")
        parameters = json.loads(last_event(found)["Parameters"])
        record = json.loads((out / "stage_2_detection_output" / stem(name) / "faces.json")
                            .read_text())
        used = ["VAE_A_quality", "mapping_quality", "VAE_B_quality"]
        used += ["Setting_9_epoch_100"] if record["faces"] else []
        expected = {n: sha256_file(official_path(checkpoints_dir, n)) for n in used}
        assert parameters["checkpoints"] == expected, name
        sidecar = json.loads((out / "provenance" / f"{stem(name)}.json").read_text())
        assert sidecar["checkpoints"] == expected
        assert sidecar["digital_source_type"] == IPTC_TYPES + "compositeWithTrainedAlgorithmicMedia"
        assert sidecar["settings"]["test_mode"] == "Full"
        assert sidecar["timings_s"]["restore_global"] > 0
