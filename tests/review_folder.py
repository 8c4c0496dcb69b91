"""A synthetic output folder for the review's tests and ``bench/review_scale.py``: tiny originals
and finals, provenance sidecars, ``run_summary.json``, the input manifest and the
``oldphoto_config.yaml`` the ``oldphoto`` command writes — the files a run leaves, without
running one."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

SETTINGS = {"with_scratch": False, "hr": False, "faces": True, "tone": "official",
            "output_format": "png", "jpeg_quality": 95, "face_blending": "official",
            "face_detector": "hog", "face_upsample": 0, "only_center_face": False,
            "max_faces": None}


def stem_of(i: int) -> str:
    return f"scan {i:05d}"


def changed_fraction(i: int) -> float:
    return round(((i * 7919) % 1000) / 1000, 6)


def make_folder(root: Path, count: int, *, failed_every: int = 0, faces_every: int = 10,
                size: tuple[int, int] = (24, 16)) -> Path:
    """``root/in`` (originals) and ``root/out`` (the run's folder) with ``count`` photos; every
    ``failed_every``-th photo failed (no final).  Returns the output folder."""
    rng = np.random.default_rng(0)
    inp, out = root / "in", root / "out"
    for folder in (inp, out / "final_output", out / "provenance", out / ".oldphoto",
                   out / "logs" / "blend_faces"):
        folder.mkdir(parents=True, exist_ok=True)
    photos, images = {}, {}
    for i in range(count):
        stem = stem_of(i)
        original = inp / f"{stem}.png"
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(original)
        images[stem] = str(original)
        failed = failed_every and i % failed_every == failed_every - 1
        faces = 1 if faces_every and i % faces_every == 0 else 0
        entry = {"input": str(original), "settings": dict(SETTINGS), "from_sheet": [],
                 "mode": "quality", "faces": faces}
        if failed:
            entry["status"] = "failed"
            entry["reasons"] = [f"BadImageError: {original.name}: corrupt PNG (synthetic)"]
            (out / "logs" / "blend_faces" / f"{stem}.log").write_text(
                f"FAILED blend_faces {stem} :: corrupt PNG (synthetic)\n", encoding="utf-8")
        else:
            entry["status"] = "restored"
            final = out / "final_output" / f"{stem}.png"
            Image.fromarray(255 - pixels).save(final)
            sidecar = {
                "schema": "oldphoto.provenance/1", "created": "2026-12-01T10:00:00+00:00",
                "software": {"name": "oldphoto", "version": "0.1.0"}, "backend": "classical",
                "source": {"file_name": original.name,
                           "sha256": hashlib.sha256(original.read_bytes()).hexdigest()},
                "checkpoints": {}, "settings": {"mode": "quality"},
                "changes": {"changed_fraction": changed_fraction(i), "faces": faces},
                "output": {"file": final.name, "format": "png", "bits": 8,
                           "width": size[0], "height": size[1]},
            }
            (out / "provenance" / f"{stem}.json").write_text(json.dumps(sidecar),
                                                             encoding="utf-8")
        photos[stem] = entry
    summary = {"version": "0.1.0", "backend": "classical", "finished": "2026-12-01T10:00:00+0000",
               "counts": {}, "photos": photos, "skipped": []}
    (out / "run_summary.json").write_text(json.dumps(summary), encoding="utf-8")
    (out / ".oldphoto" / "inputs.json").write_text(json.dumps(
        {"input_dir": str(inp.resolve()), "images": images, "skipped": []}), encoding="utf-8")
    (out / "oldphoto_config.yaml").write_text(yaml.safe_dump(
        {"input_dir": str(inp.resolve()), "output_dir": str(out.resolve()),
         "with_scratch": False, "hr": False, "backend": "classical"}), encoding="utf-8")
    return out
