"""The compute floor of the pretrained backend on tiny photos: the official networks' own work.

What a photo of the scale benchmark (``bench/scale.py``: 160×160 px, `test_mode: Full`) costs in
the networks alone, measured in this process with everything loaded and warmed up — no job, no
worker, no file: the stage-1 generator of the quality path (VAE_A encoder → mapping → VAE_B
decoder) and, for a photo with a face, one face enhancement (SPADE at 256 px).  Each network's
multiply-adds are counted from its convolutions (forward hooks), so the floor can be compared with
the machine's arithmetic rate.  Weights are random: the arithmetic does not depend on them.

The pretrained scale run can never be faster than ``photos × stage-1 floor + faces × face floor``
divided by the cores that compute in parallel; this script gives those floors next to the
classical run's time per photo.

    .venv/bin/python bench/network_floor.py [--size 160] [--repeat 5] [--threads 1 2]
        [--out bench/results/network_floor.md]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fmt, loadavg, machine_info, machine_markdown, median, write_results  # noqa: E402


def conv_macs(module: Any, run: Callable[[], Any]) -> int:
    """Multiply-adds of every Conv2d in ``module`` during ``run()``."""
    import torch

    total = [0]

    def hook(conv: torch.nn.Conv2d, _inputs: Any, output: torch.Tensor) -> None:
        kh, kw = conv.kernel_size
        per_output = conv.in_channels // conv.groups * kh * kw
        total[0] += per_output * output.numel()

    handles = [m.register_forward_hook(hook) for m in module.modules()
               if isinstance(m, torch.nn.Conv2d)]
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    return total[0]


def timed(run: Callable[[], Any], repeat: int) -> float:
    run()  # warm-up: oneDNN picks its kernels on the first call
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=160, help="photo side, px (Full mode)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    info = machine_info()
    info["scontrol_s"] = None  # no snakemake runs here: its scontrol line does not apply

    import torch

    from oldphoto.checkpoints.registry import build_network

    torch.manual_seed(0)
    encoder, mapping, decoder = (build_network(n).eval() for n in
                                 ("VAE_A_quality", "mapping_quality", "VAE_B_quality"))
    face = build_network("Setting_9_epoch_100").eval()
    side = args.size
    x = torch.rand(1, 3, side, side) * 2 - 1
    face_x = torch.rand(1, 3, 256, 256) * 2 - 1
    with torch.inference_mode():
        z = encoder.encode(x)
        w = mapping(z)
    parts: list[tuple[str, Any, Callable[[], Any]]] = [
        (f"VAE_A encoder ({side}² → {tuple(z.shape[1:])})", encoder, lambda: encoder.encode(x)),
        ("mapping_quality (six 512-channel ResBlocks)", mapping, lambda: mapping(z)),
        ("VAE_B decoder", decoder, lambda: decoder.decode(w)),
        ("stage 1, whole generator", torch.nn.ModuleList([encoder, mapping, decoder]),
         lambda: decoder.decode(mapping(encoder.encode(x)))),
        ("one face, SPADE 256²", face, lambda: face(face_x)),
    ]
    rows = []
    for name, module, run in parts:
        with torch.inference_mode():
            macs = conv_macs(module, run)
            seconds = {}
            for threads in args.threads:
                torch.set_num_threads(threads)
                seconds[threads] = timed(run, args.repeat)
        rows.append((name, macs, seconds))

    lines = [f"## Network floor, {side}-px photo ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
             "", machine_markdown(info, loadavg()),
             f"- command: `python bench/network_floor.py --size {side} --repeat {args.repeat} "
             f"--threads {' '.join(map(str, args.threads))}`", "",
             "| network | GMAC | " + " | ".join(f"{t} thread{'s' if t > 1 else ''} s (GMAC/s)"
                                              for t in args.threads) + " |",
             "|---|---|" + "---|" * len(args.threads)]
    for name, macs, seconds in rows:
        cells = " | ".join(f"{fmt(seconds[t], 3)} ({macs / 1e9 / seconds[t]:.0f})"
                           for t in args.threads)
        lines.append(f"| {name} | {macs / 1e9:.1f} | {cells} |")
    stage1 = rows[3][2]
    one_thread = min(args.threads)
    lines += ["", f"Stage 1 alone costs {fmt(stage1[one_thread], 2)} s of one core per "
              f"{side}-px photo: on {info['nproc']} cores at best "
              f"{fmt(stage1[one_thread] / (info['nproc'] or 1), 2)} s of wall time per photo "
              "before any face, file or job.", ""]
    write_results("\n".join(lines), args.out, append=True)


if __name__ == "__main__":
    main()
