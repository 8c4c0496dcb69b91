"""Face recall and time of stage 2's detectors: dlib HOG (official) and CNN (MMOD), × upsampling.

Photos with known faces:

- the 12 bundled samples.  Ground truth (``SAMPLE_FACES``, annotated by eye): the 10 frontal
  faces — the 9 that HOG finds with the official settings (their HOG boxes) and the small,
  downcast face of the girl in ``old/b.png`` (box drawn by hand).  Not counted: the woman under the
  umbrella in ``old/e.png`` (a profile under a hat brim) and the boatman in ``old/f.png`` (a few
  pixels): no frontal detector is meant to find them.
- generated group photos: the 9 sample faces, cut out with their surroundings (1.6× the box),
  scaled so that their box is 24-110 px wide and pasted with a feathered edge at known positions
  onto face-free scenes (``old/d.png``, ``old/f.png``), six faces per 640×480 photo, three photos.
  The box, scaled with the crop, is the ground truth.

A detection counts for a true face if their IoU is ≥ 0.3 or the detection's centre lies inside the
true box (one detection per face, greedily by IoU); other detections are false positives.

Every configuration runs on every photo, except the CNN with 2 upsamplings on the samples
(16× the CNN's cost at 0; pass ``--cnn-sample-upsample 2`` to include it).  Times are wall
seconds per photo (and CPU seconds: the shared machine's load stretches wall time), models loaded
beforehand.

Usage: ``python bench/face_detectors.py [--markdown bench/results/face_detectors.md]``
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from _common import SAMPLES, loadavg, machine_info, machine_markdown, write_results

Box = tuple[float, float, float, float]

#: Frontal faces of the bundled samples (left, top, right, bottom), see the module docstring.
SAMPLE_FACES: dict[str, list[Box]] = {
    "old/a.png": [(74, 114, 254, 293)],
    "old/b.png": [(267, 261, 323, 317)],
    "old/c.png": [(237, 373, 309, 445)],
    "old/d.png": [],
    "old/e.png": [],
    "old/f.png": [],
    "old/g.png": [(261, 211, 410, 360)],
    "old/h.png": [(161, 128, 311, 277)],
    "old_w_scratch/a.png": [(214, 194, 393, 373)],
    "old_w_scratch/b.png": [(83, 74, 170, 160)],
    "old_w_scratch/c.png": [(101, 141, 173, 213)],
    "old_w_scratch/d.png": [(102, 102, 189, 189), (169, 42, 273, 146)],
}
FACE_SIDES = (24, 32, 44, 60, 80, 110)
CANVAS = (480, 640)  # H, W
BACKGROUNDS = ("old/d.png", "old/f.png", "old/d.png")
CONFIGS = tuple((detector, upsample) for detector in ("hog", "cnn") for upsample in (0, 1, 2))


@dataclass
class Photo:
    name: str
    group: str
    rgb: np.ndarray
    truth: list[Box]


def read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).copy()


def sample_photos() -> list[Photo]:
    return [Photo(name, "samples", read_rgb(SAMPLES / name), list(boxes))
            for name, boxes in SAMPLE_FACES.items()]


def group_photos(seed: int = 0) -> list[Photo]:
    """Three 640×480 group photos of six pasted sample faces each (see the module docstring)."""
    import cv2

    rng = np.random.default_rng(seed)
    sources = [(name, box) for name, boxes in SAMPLE_FACES.items() for box in boxes
               if name != "old/b.png"]  # the hand-drawn box is not a detector's box
    height, width = CANVAS
    photos = []
    for number, background in enumerate(BACKGROUNDS):
        scene = read_rgb(SAMPLES / background)
        canvas = cv2.resize(scene, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32)
        truth = []
        sides = list(FACE_SIDES)
        rng.shuffle(sides)
        for cell, side in enumerate(sides):
            name, (left, top, right, bottom) = sources[(number * 6 + cell) % len(sources)]
            photo = read_rgb(SAMPLES / name)
            cx, cy, half = (left + right) / 2, (top + bottom) / 2, 0.8 * (right - left)
            x0, y0 = int(max(cx - half, 0)), int(max(cy - half, 0))
            x1, y1 = int(min(cx + half, photo.shape[1])), int(min(cy + half, photo.shape[0]))
            scale = side / (right - left)
            crop = cv2.resize(photo[y0:y1, x0:x1], None, fx=scale, fy=scale,
                              interpolation=cv2.INTER_AREA).astype(np.float32)
            ch, cw = crop.shape[:2]
            # cell of a 3×2 grid, the crop placed at random inside it
            col, row = cell % 3, cell // 3
            cell_w, cell_h = width // 3, height // 2
            px = col * cell_w + int(rng.integers(0, max(cell_w - cw, 0) + 1))
            py = row * cell_h + int(rng.integers(0, max(cell_h - ch, 0) + 1))
            cw, ch = min(cw, width - px), min(ch, height - py)
            alpha = np.zeros((ch, cw), np.float32)
            cv2.ellipse(alpha, (cw // 2, ch // 2), (max(cw // 2 - 2, 1), max(ch // 2 - 2, 1)),
                        0, 0, 360, 1.0, -1)
            alpha = cv2.GaussianBlur(alpha, (0, 0), max(cw / 16, 1.0))[:, :, None]
            region = canvas[py:py + ch, px:px + cw]
            region[:] = alpha * crop[:ch, :cw] + (1 - alpha) * region
            truth.append(((left - x0) * scale + px, (top - y0) * scale + py,
                          (right - x0) * scale + px, (bottom - y0) * scale + py))
        photos.append(Photo(f"group {number + 1} ({background} scene)", "generated",
                            np.clip(np.rint(canvas), 0, 255).astype(np.uint8), truth))
    return photos


def iou(a: Box, b: Box) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0) * max(h, 0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match(found: list[Box], truth: list[Box]) -> tuple[list[bool], int]:
    """(per true face: found?, false positives), greedy one-to-one by IoU."""
    pairs = []
    for i, t in enumerate(truth):
        for j, d in enumerate(found):
            cx, cy = (d[0] + d[2]) / 2, (d[1] + d[3]) / 2
            inside = t[0] <= cx <= t[2] and t[1] <= cy <= t[3]
            overlap = iou(d, t)
            if overlap >= 0.3 or inside:
                pairs.append((overlap, i, j))
    hit, used = [False] * len(truth), set()
    for _, i, j in sorted(pairs, reverse=True):
        if not hit[i] and j not in used:
            hit[i] = True
            used.add(j)
    return hit, len(found) - len(used)


@dataclass
class Result:
    hits: list[tuple[float, bool]] = field(default_factory=list)  # (true box side, found?)
    false_positives: int = 0
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)


def main(argv: list[str] | None = None) -> int:
    from oldphoto import faces

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cnn-sample-upsample", type=int, default=1, choices=(0, 1, 2),
                        help="largest CNN upsampling run on the samples (default 1)")
    parser.add_argument("--markdown", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)

    info = machine_info()
    models = faces.load_face_models(detector="cnn")
    photos = sample_photos() + group_photos()
    results: dict[tuple[str, str, int], Result] = {}
    for photo in photos:
        for detector, upsample in CONFIGS:
            if (photo.group == "samples" and detector == "cnn"
                    and upsample > args.cnn_sample_upsample):
                continue
            wall, cpu = time.perf_counter(), time.process_time()
            found = faces.detect_faces(photo.rgb, models, detector, upsample)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            result = results.setdefault((photo.group, detector, upsample), Result())
            hit, false_positives = match([tuple(map(float, f.rect)) for f in found], photo.truth)
            result.hits += [(box[2] - box[0], h) for box, h in zip(photo.truth, hit)]
            result.missed += [f"{photo.name} ({box[2] - box[0]:.0f} px)"
                              for box, h in zip(photo.truth, hit) if not h]
            result.false_positives += false_positives
            result.seconds.append(wall)
            result.cpu.append(cpu)
            print(f"{photo.name} {detector} {upsample}: {sum(hit)}/{len(hit)} found, "
                  f"{false_positives} false, {wall:.2f} s", file=sys.stderr, flush=True)

    lines = ["# Face detectors — bench/face_detectors.py", "", machine_markdown(info), "",
             f"{len(SAMPLE_FACES)} samples ({sum(map(len, SAMPLE_FACES.values()))} frontal "
             f"faces); {len(BACKGROUNDS)} generated 640×480 group photos of "
             f"{len(FACE_SIDES)} faces (box sides {', '.join(map(str, FACE_SIDES))} px).", ""]
    for group in ("samples", "generated"):
        lines += [f"## {group}", "",
                  "| detector | upsample | faces found | recall | false positives | "
                  "s/photo median (max) | CPU s/photo median | missed |",
                  "|---|---|---|---|---|---|---|---|"]
        for detector, upsample in CONFIGS:
            result = results.get((group, detector, upsample))
            if result is None:
                lines.append(f"| {detector} | {upsample} | not run (slow; "
                             "--cnn-sample-upsample 2) | | | | | |")
                continue
            found = sum(h for _, h in result.hits)
            total = len(result.hits)
            missed = "; ".join(result.missed) if group == "samples" else \
                f"{total - found} face(s)"
            lines.append(f"| {detector} | {upsample} | {found} / {total} | {found / total:.2f} | "
                         f"{result.false_positives} | {np.median(result.seconds):.2f} "
                         f"({max(result.seconds):.2f}) | {np.median(result.cpu):.2f} | "
                         f"{missed} |")
        lines.append("")
    lines += ["## generated: recall by face size", "",
              "| detector | upsample | " + " | ".join(f"{s} px" for s in FACE_SIDES) + " |",
              "|---|---|" + "---|" * len(FACE_SIDES)]
    for detector, upsample in CONFIGS:
        result = results[("generated", detector, upsample)]
        cells = []
        for side in FACE_SIDES:
            of_size = [h for s, h in result.hits if abs(s - side) < 0.5]
            cells.append(f"{sum(of_size)}/{len(of_size)}")
        lines.append(f"| {detector} | {upsample} | " + " | ".join(cells) + " |")
    lines += ["", f"Load average at end: {loadavg()}."]
    write_results("\n".join(lines) + "\n", args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
