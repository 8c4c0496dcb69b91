"""Quality benchmark of the classical backend on synthetic old photos with a known truth.

Clean images are scikit-image's bundled sample photographs (they ship inside the wheel and load
offline): astronaut, camera (grey), chelsea, coffee, coins (grey), rocket, at native size.
Each is degraded by :mod:`oldphoto.testing.degrade` — every degradation alone and the combined ``old``
one (blur, fade + sepia cast, scratches, noise, JPEG) — with a seed fixed per (image,
degradation).  The backend then runs as the workflow runs it, the official ``with_scratch``
switch set as a user would set it: for degradations with scratches (``scratch``, ``old``)
``restored = restore(degraded, detect_scratches(degraded))``, otherwise
``restored = restore(degraded, None)``.  The detector still runs on every image, and the share
of pixels it marks is reported (on scratch-free images: false alarms).

Measures, per image and degradation:

- PSNR (dB) and SSIM (``skimage.metrics``, data range 255, SSIM over the RGB channels) of the
  degraded and of the restored image, both against the clean original, and their gains.
- Scratch detection against the drawn scratches (the truth mask of :func:`degrade`: stroke
  pixels the scratch visibly changed), with a tolerance of ``TOLERANCE`` = 2 px:
  precision = fraction of predicted pixels within 2 px of a true scratch pixel;
  recall = fraction of true scratch pixels within 2 px of a predicted pixel;
  F1 = their harmonic mean.  The per-degradation and summary figures pool the pixel counts of
  all rows with scratches (``scratch`` and ``old``).  Every row also shows the share of pixels
  the detector marked (on scratch-free degradations these are false alarms), and the seconds
  detection + restoration took (informative only).

``--draws N`` repeats everything with N independent degradation draws per image (draw 0 is the
fixed seed), to check that a result is not the luck of one draw.

Targets (the summary line; the exit status is 1 if one fails):
mean PSNR gain ≥ +1.5 dB, mean SSIM gain ≥ +0.05, scratch F1 ≥ 0.6, and no image made worse by
more than 0.5 dB (minimum PSNR gain ≥ −0.5 dB).

Usage: ``python bench/quality.py [--subset small|full] [--draws N] [--markdown OUT.md]``
(``small``: astronaut, camera and coffee downscaled to 256 px, about 10 s — the subset the
test suite asserts the targets on.)
"""

from __future__ import annotations

import argparse
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

TOLERANCE = 2
DEGRADATIONS = ("blur", "fade", "scratch", "noise", "jpeg", "old")
FULL_IMAGES = ("astronaut", "camera", "chelsea", "coffee", "coins", "rocket")
SMALL_IMAGES = ("astronaut", "camera", "coffee")
TARGETS = {"psnr_gain": 1.5, "ssim_gain": 0.05, "f1": 0.6, "worst_psnr_gain": -0.5}


def load_clean(name: str, max_side: int | None = None) -> np.ndarray:
    """A bundled scikit-image sample as uint8 RGB, optionally downscaled (area) to ``max_side``."""
    import cv2
    from skimage import data

    image = getattr(data, name)()
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    image = np.ascontiguousarray(image[:, :, :3])
    if max_side and max(image.shape[:2]) > max_side:
        scale = max_side / max(image.shape[:2])
        size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return image


def seed_for(image: str, degradation: str, draw: int = 0) -> int:
    """The fixed seed of one synthetic photo (``draw`` > 0: further independent draws)."""
    return zlib.crc32(f"{image}/{degradation}".encode()) + draw


@dataclass
class Counts:
    """Tolerant pixel counts of a predicted mask against a true one."""

    predicted: int = 0
    predicted_near_truth: int = 0
    truth: int = 0
    truth_near_prediction: int = 0

    def __iadd__(self, other: "Counts") -> "Counts":
        self.predicted += other.predicted
        self.predicted_near_truth += other.predicted_near_truth
        self.truth += other.truth
        self.truth_near_prediction += other.truth_near_prediction
        return self

    @property
    def precision(self) -> float:
        return self.predicted_near_truth / self.predicted if self.predicted else 1.0

    @property
    def recall(self) -> float:
        return self.truth_near_prediction / self.truth if self.truth else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def mask_counts(predicted: np.ndarray, truth: np.ndarray, tolerance: int = TOLERANCE) -> Counts:
    """Pixel counts for tolerant precision/recall (distance ≤ ``tolerance`` px, Euclidean)."""
    import cv2

    pred, true = predicted > 0, truth > 0

    def near(m: np.ndarray) -> np.ndarray:
        if not m.any():
            return np.zeros_like(m)
        distance = cv2.distanceTransform(np.where(m, 0, 255).astype(np.uint8), cv2.DIST_L2, 5)
        return distance <= tolerance

    return Counts(int(pred.sum()), int((pred & near(true)).sum()),
                  int(true.sum()), int((true & near(pred)).sum()))


@dataclass
class Row:
    image: str
    degradation: str
    psnr_before: float
    psnr_after: float
    ssim_before: float
    ssim_after: float
    counts: Counts | None
    false_alarm_pct: float
    seconds: float

    @property
    def psnr_gain(self) -> float:
        return self.psnr_after - self.psnr_before

    @property
    def ssim_gain(self) -> float:
        return self.ssim_after - self.ssim_before


def evaluate(name: str, clean: np.ndarray, degradation: str, draw: int = 0) -> Row:
    """Degrade ``clean``, run the classical backend, measure."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from oldphoto import classical
    from oldphoto.testing.degrade import degrade, normalise_kinds

    degraded, truth = degrade(clean, degradation, seed=seed_for(name, degradation, draw))
    has_scratches = "scratch" in normalise_kinds(degradation)
    start = time.perf_counter()
    mask = classical.detect_scratches(degraded)
    restored = classical.restore(degraded, mask if has_scratches else None)
    seconds = time.perf_counter() - start

    def psnr(x):
        return float(peak_signal_noise_ratio(clean, x, data_range=255))

    def ssim(x):
        return float(structural_similarity(clean, x, channel_axis=2, data_range=255))

    label = name if draw == 0 else f"{name} #{draw}"
    return Row(label, degradation, psnr(degraded), psnr(restored), ssim(degraded), ssim(restored),
               mask_counts(mask, truth) if has_scratches else None,
               100.0 * float((mask > 0).mean()), seconds)


@dataclass
class Summary:
    rows: list[Row]
    scratch: Counts = field(default_factory=Counts)

    def __post_init__(self):
        for row in self.rows:
            if row.counts is not None:
                self.scratch += row.counts

    @property
    def psnr_gain(self) -> float:
        return float(np.mean([r.psnr_gain for r in self.rows]))

    @property
    def ssim_gain(self) -> float:
        return float(np.mean([r.ssim_gain for r in self.rows]))

    @property
    def worst(self) -> Row:
        return min(self.rows, key=lambda r: r.psnr_gain)

    def checks(self) -> dict[str, tuple[float, bool]]:
        return {
            "mean PSNR gain (dB)": (self.psnr_gain, self.psnr_gain >= TARGETS["psnr_gain"]),
            "mean SSIM gain": (self.ssim_gain, self.ssim_gain >= TARGETS["ssim_gain"]),
            "scratch F1": (self.scratch.f1, self.scratch.f1 >= TARGETS["f1"]),
            "worst PSNR gain (dB)": (self.worst.psnr_gain,
                                     self.worst.psnr_gain >= TARGETS["worst_psnr_gain"]),
        }

    @property
    def passed(self) -> bool:
        return all(ok for _, ok in self.checks().values())


def run(images: tuple[str, ...], degradations: tuple[str, ...] = DEGRADATIONS,
        max_side: int | None = None, draws: int = 1, progress=None) -> Summary:
    """Evaluate every image × degradation × draw (draw 0 is the documented fixed seed)."""
    rows = []
    for name in images:
        clean = load_clean(name, max_side)
        for draw in range(draws):
            for degradation in degradations:
                rows.append(evaluate(name, clean, degradation, draw))
                if progress:
                    progress(rows[-1])
    return Summary(rows)


def markdown(summary: Summary, title: str = "") -> str:
    lines = [f"### {title}", ""] if title else []
    lines += [
        "| image | degradation | PSNR degraded | PSNR restored | gain | SSIM degraded | "
        "SSIM restored | gain | scratch P / R / F1 (mask %) | s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for r in summary.rows:
        if r.counts is not None:
            scratch = (f"{r.counts.precision:.2f} / {r.counts.recall:.2f} / {r.counts.f1:.2f} "
                       f"({r.false_alarm_pct:.2f} %)")
        else:
            scratch = f"— ({r.false_alarm_pct:.2f} %)"
        lines.append(
            f"| {r.image} | {r.degradation} | {r.psnr_before:.2f} | {r.psnr_after:.2f} | "
            f"{r.psnr_gain:+.2f} | {r.ssim_before:.3f} | {r.ssim_after:.3f} | "
            f"{r.ssim_gain:+.3f} | {scratch} | {r.seconds:.2f} |")
    lines += ["", "| degradation | mean PSNR gain | mean SSIM gain | scratch P / R / F1 |",
              "| --- | ---: | ---: | --- |"]
    for degradation in dict.fromkeys(r.degradation for r in summary.rows):
        sub = Summary([r for r in summary.rows if r.degradation == degradation])
        scratch = (f"{sub.scratch.precision:.2f} / {sub.scratch.recall:.2f} / {sub.scratch.f1:.2f}"
                   if sub.scratch.truth else "—")
        lines.append(f"| {degradation} | {sub.psnr_gain:+.2f} | {sub.ssim_gain:+.3f} | "
                     f"{scratch} |")
    lines += ["", summary_line(summary)]
    return "\n".join(lines) + "\n"


def summary_line(summary: Summary) -> str:
    parts = []
    for label, (value, ok) in summary.checks().items():
        parts.append(f"{label} {value:+.3f} {'ok' if ok else 'FAIL'}")
    worst = summary.worst
    targets = (f"targets: PSNR gain ≥ +{TARGETS['psnr_gain']} dB, SSIM gain ≥ "
               f"+{TARGETS['ssim_gain']}, F1 ≥ {TARGETS['f1']}, worst ≥ "
               f"{TARGETS['worst_psnr_gain']} dB")
    verdict = "PASS" if summary.passed else "FAIL"
    return (f"**{verdict}** — " + "; ".join(parts) +
            f" (worst: {worst.image}/{worst.degradation}). {targets}.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subset", choices=("small", "full"), default="full")
    parser.add_argument("--markdown", type=Path, help="also write the tables to this file")
    parser.add_argument("--draws", type=int, default=1,
                        help="independent degradation draws per image and degradation "
                             "(default 1: the fixed seeds)")
    args = parser.parse_args(argv)

    if args.subset == "small":
        images, max_side = SMALL_IMAGES, 256
    else:
        images, max_side = FULL_IMAGES, None
    summary = run(images, max_side=max_side, draws=args.draws,
                  progress=lambda r: print(f"  {r.image}/{r.degradation}: "
                                           f"{r.psnr_gain:+.2f} dB", file=sys.stderr))
    from oldphoto.classical import CLASSICAL_VERSION

    title = (f"Classical backend {CLASSICAL_VERSION} — subset {args.subset}"
             + (f", {args.draws} draws" if args.draws > 1 else "")
             + (f" (downscaled to {max_side} px)" if max_side else " (native size)"))
    text = markdown(summary, title)
    print(text)
    if args.markdown:
        args.markdown.write_text(text, encoding="utf-8")
    return 0 if summary.passed else 1


if __name__ == "__main__":
    sys.exit(main())
