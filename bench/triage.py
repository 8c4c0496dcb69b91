"""Accuracy of the automatic scratch triage (``with_scratch: auto``, :mod:`oldphoto.triage`).

Photos with a known answer:

- the 12 bundled samples: ``resources/samples/old`` (8, no scratch path wanted) and
  ``resources/samples/old_w_scratch`` (4, the official scratched examples);
- generated photos: scikit-image sample images (downscaled to 512 px) degraded by
  :mod:`oldphoto.testing.degrade` without scratches (``blur+fade+noise+jpeg``: clean) and with them
  (``old``: the same chain plus drawn scratches).  Draw 0 of each is the set the thresholds of
  :mod:`oldphoto.triage` were chosen on; draws 1 and 2 (other seeds: other scratches, noise and
  fading) are held out.  Textures (brick, grass, gravel) are hard negatives.

For each backend's detector — the classical one (``oldphoto.classical.detect_scratches``) and the
pretrained U-Net (``oldphoto.scratch.detect_scratches``) with the weights available here —
the mask goes through :func:`oldphoto.triage.scratch_decision`, and accuracy, precision and
recall (positive = scratch path) are reported per set.  Without the official checkpoint the U-Net
runs with the recipe weights (``oldphoto.testing.recipe``), whose masks are noise: they mark ~99 % of
every photo, so the figures for that backend describe the rule's fallback, not the official
detector.  Pass ``--checkpoints DIR`` (official layout) to measure the official U-Net.

Usage: ``python bench/triage.py [--draws 3] [--markdown bench/results/triage.md]``
(about 4 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from _common import SAMPLES, loadavg, machine_info, machine_markdown, write_results
from quality import load_clean, seed_for

GENERATED = ("astronaut", "camera", "chelsea", "coffee", "coins", "rocket",
             "immunohistochemistry", "hubble_deep_field", "moon", "brick", "grass", "gravel")
MAX_SIDE = 512


@dataclass
class Case:
    name: str
    group: str  # "samples", "generated (design)", "generated (held out)"
    scratched: bool
    rgb: np.ndarray


def cases(draws: int) -> list[Case]:
    from PIL import Image

    from oldphoto.testing.degrade import degrade

    found = []
    for folder, scratched in (("old", False), ("old_w_scratch", True)):
        for path in sorted((SAMPLES / folder).glob("*.png")):
            with Image.open(path) as image:
                found.append(Case(f"{folder}/{path.name}", "samples", scratched,
                                  np.asarray(image.convert("RGB")).copy()))
    for draw in range(draws):
        group = "generated (design)" if draw == 0 else "generated (held out)"
        for name in GENERATED:
            clean = load_clean(name, MAX_SIDE)
            for kinds, scratched in (("blur+fade+noise+jpeg", False), ("old", True)):
                rgb, _ = degrade(clean, kinds, seed=seed_for(name, "old", draw))
                found.append(Case(f"{name} {'scratched' if scratched else 'clean'} draw {draw}",
                                  group, scratched, rgb))
    return found


def unet_detector(checkpoints: Path | None) -> tuple[str, Callable[[np.ndarray], np.ndarray]]:
    import torch

    from oldphoto import checkpoints as ckpt
    from oldphoto import scratch
    from oldphoto.checkpoints.registry import build_network
    from oldphoto.testing.recipe import recipe_weights

    net = build_network("detection")
    if checkpoints is not None:
        net.load_state_dict(ckpt.read_official(ckpt.official_path(checkpoints, "detection"),
                                               "detection"))
        label = f"pretrained U-Net (official weights from {checkpoints})"
    else:
        net.load_state_dict(recipe_weights("detection"))
        label = "pretrained U-Net, recipe weights (no official checkpoint here)"
    net.eval()
    torch.set_num_threads(2)
    return label, lambda rgb: scratch.detect_scratches(rgb, net)[1]


@dataclass
class Scores:
    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0

    def add(self, truth: bool, decided: bool) -> None:
        if truth:
            self.tp += decided
            self.fn += not decided
        else:
            self.fp += decided
            self.tn += not decided

    def line(self, label: str) -> str:
        n = self.tp + self.fp + self.tn + self.fn
        def ratio(part: int, whole: int) -> str:
            return f"{part / whole:.2f}" if whole else "— (none)"

        accuracy = ratio(self.tp + self.tn, n)
        precision = ratio(self.tp, self.tp + self.fp)
        recall = ratio(self.tp, self.tp + self.fn)
        return (f"| {label} | {n} | {accuracy} | {precision} | {recall} | "
                f"{self.tp} / {self.fp} / {self.tn} / {self.fn} |")


def main(argv: list[str] | None = None) -> int:
    from oldphoto import classical, triage

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=3,
                        help="degradation draws per generated image (draw 0 = design set)")
    parser.add_argument("--checkpoints", type=Path, default=None,
                        help="official checkpoint folder for the U-Net (default: recipe weights)")
    parser.add_argument("--markdown", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)

    info = machine_info()
    all_cases = cases(args.draws)
    unet_label, unet = unet_detector(args.checkpoints)
    detectors = {"classical": ("classical (oldphoto.classical.detect_scratches)",
                               classical.detect_scratches),
                 "pretrained": (unet_label, unet)}
    groups = ("samples", "generated (design)", "generated (held out)")
    lines = ["# Scratch triage (`with_scratch: auto`) — bench/triage.py", "",
             machine_markdown(info), "",
             f"Rule (oldphoto.triage): coverage ≤ {triage.MAX_COVERAGE}, line components "
             f"(skeleton ≥ {triage.MIN_LINE_LENGTH} diagonal, mean width ≤ "
             f"max({triage.MAX_WIDTH_PX:g} px, {triage.MAX_WIDTH_FRACTION} diagonal), "
             f"elongation ≥ {triage.MIN_ELONGATION:g}), scratch path when their skeletons total "
             f"≥ {triage.MIN_LINE_SCORE} diagonals.", ""]
    per_photo: dict[str, list[str]] = {}
    for key, (label, detect) in detectors.items():
        scores = {group: Scores() for group in groups}
        total = Scores()
        seconds = []
        rows = []
        for case in all_cases:
            start = time.perf_counter()
            mask = detect(case.rgb)
            seconds.append(time.perf_counter() - start)
            decision = triage.scratch_decision(mask)
            scores[case.group].add(case.scratched, decision.with_scratch)
            total.add(case.scratched, decision.with_scratch)
            mark = "ok" if decision.with_scratch == case.scratched else "**wrong**"
            rows.append(f"| {case.name} | {'scratched' if case.scratched else 'clean'} | "
                        f"{'scratch' if decision.with_scratch else 'clean'} ({mark}) | "
                        f"{decision.coverage:.2%} | {decision.line_score:.3f} | "
                        f"{decision.components} |")
            print(f"{key}: {case.name}: {decision.reason}", file=sys.stderr, flush=True)
        lines += [f"## {label}", "",
                  f"Detector time per photo: median {np.median(seconds):.2f} s "
                  f"(max {max(seconds):.2f} s).", "",
                  "| set | photos | accuracy | precision | recall | TP / FP / TN / FN |",
                  "|---|---|---|---|---|---|"]
        lines += [scores[group].line(group) for group in groups]
        lines += [total.line("all"), ""]
        per_photo[label] = rows
    for label, rows in per_photo.items():
        lines += [f"### Per photo — {label}", "",
                  "| photo | truth | decision | coverage | line score | components |",
                  "|---|---|---|---|---|---|", *rows, ""]
    lines.append(f"Load average at end: {loadavg()}.")
    write_results("\n".join(lines) + "\n", args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
