"""Seeded fuzzing of read_image: mutated PNG/JPEG/GIF/TIFF/WebP/BMP bytes either decode to a
well-formed image or raise BadImageError — never another exception, never a hang.

A hang is turned into a failure by ``signal.alarm`` (per case) rather than by measuring time;
``faulthandler`` is the backstop for a hang inside C code that never returns to Python.
"""

from __future__ import annotations

import faulthandler
import io
import random
import signal
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hostile import photo
from oldphoto.errors import BadImageError
from oldphoto.decode import read_image

SEED = 20200615
CASES_PER_SEED = 100
CASE_ALARM_S = 5
MAX_PIXELS = 1_000_000  # mutated headers often declare huge sizes; keep every case cheap


class CaseHung(BaseException):
    """Raised by the alarm; a BaseException so read_image cannot mistake it for a bad image."""


def _seeds() -> dict[str, bytes]:
    import cv2

    base = photo(40, 28)
    pil = Image.fromarray(base)
    exif = Image.Exif()
    exif[0x0112] = 6

    def encode(image, fmt, **params) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, format=fmt, **params)
        return buffer.getvalue()

    rgba = Image.fromarray(np.dstack([base, np.full(base.shape[:2], 128, np.uint8)]))
    frames = [pil.quantize(32), Image.fromarray(photo(40, 28, seed=1)).quantize(32)]
    return {
        "png": encode(rgba, "PNG"),
        "png16": cv2.imencode(".png", base.astype(np.uint16) * 257)[1].tobytes(),
        "jpeg": encode(pil, "JPEG", quality=85, exif=exif),
        "jpeg_progressive": encode(pil, "JPEG", quality=85, progressive=True),
        "gif": encode(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        "tiff": encode(pil, "TIFF", save_all=True, append_images=[pil.convert("L")]),
        "webp": encode(pil, "WEBP", quality=80),
        "bmp": encode(pil.quantize(16), "BMP"),
    }


def _mutate(data: bytes, rng: random.Random, donors: list[bytes]) -> bytes:
    """One random corruption: bit flips (often in the header), truncation, splice, or fill."""
    buf = bytearray(data)
    kind = rng.choice(("flip", "flip_header", "truncate", "splice", "fill", "duplicate"))
    if kind in ("flip", "flip_header"):
        span = min(len(buf), 96) if kind == "flip_header" else len(buf)
        for _ in range(rng.randint(1, 8)):
            pos = rng.randrange(span)
            buf[pos] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        del buf[rng.randrange(1, len(buf)):]
    elif kind == "splice":
        donor = rng.choice(donors)
        start = rng.randrange(len(donor))
        piece = donor[start:start + rng.randint(1, 512)]
        at = rng.randrange(len(buf))
        buf[at:at + (len(piece) if rng.random() < 0.5 else 0)] = piece
    elif kind == "fill":
        at = rng.randrange(len(buf))
        buf[at:at + rng.randint(1, 64)] = bytes([rng.choice((0x00, 0xFF, 0x7F))]) * 64
    else:
        start = rng.randrange(len(buf))
        piece = bytes(buf[start:start + rng.randint(1, 256)])
        buf[start:start] = piece * rng.randint(1, 4)
    return bytes(buf)


def _on_alarm(signum, frame):
    raise CaseHung()


@pytest.fixture
def alarm():
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    faulthandler.dump_traceback_later(600, exit=True)  # last resort for a hang in C code
    yield
    signal.alarm(0)
    faulthandler.cancel_dump_traceback_later()
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("fmt", ["png", "png16", "jpeg", "jpeg_progressive", "gif", "tiff",
                                 "webp", "bmp"])
def test_mutated_files_decode_or_fail_cleanly(fmt, tmp_path: Path, alarm):
    seeds = _seeds()
    rng = random.Random(f"{SEED}-{fmt}")
    donors = list(seeds.values())
    path = tmp_path / f"case.{fmt[:4]}"
    outcomes = {"decoded": 0, "bad": 0}
    for case in range(CASES_PER_SEED):
        data = _mutate(seeds[fmt], rng, donors)
        path.write_bytes(data)
        signal.alarm(CASE_ALARM_S)
        try:
            image = read_image(path, max_pixels=MAX_PIXELS)
        except BadImageError as err:
            outcomes["bad"] += 1
            assert err.reason and "\n" not in err.one_line(), (case, err.one_line())
            continue
        except CaseHung:
            pytest.fail(f"{fmt} case {case}: read_image still running after {CASE_ALARM_S} s")
        except Exception as err:  # noqa: BLE001 - the point of the test
            (tmp_path / f"failing-{case}.bin").write_bytes(data)
            pytest.fail(f"{fmt} case {case}: {type(err).__name__}: {err} (input kept in "
                        f"{tmp_path})")
        finally:
            signal.alarm(0)
        outcomes["decoded"] += 1
        h, w = image.rgb.shape[:2]
        assert image.rgb.dtype == np.uint8 and image.rgb.shape == (h, w, 3)
        assert image.size == (w, h) and 0 < w * h <= MAX_PIXELS
        assert image.alpha is None or (image.alpha.dtype == np.uint8
                                       and image.alpha.shape == (h, w))
    # Both outcomes must occur, or the mutations are not testing anything.
    assert outcomes["decoded"] > 0 and outcomes["bad"] > 0, outcomes
