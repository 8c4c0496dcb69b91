"""Peak memory of the scratch mapping (``mapping_scratch``) with chunked non-local attention.

For each image size (megapixels, square, sides a multiple of 16) a fresh interpreter builds
``oldphoto.checkpoints.build_network("mapping_scratch")`` (seeded random weights: memory does not depend on the
values), feeds it a 1/4-resolution latent and an image-size scratch mask, and reports the peak
memory above the pre-run baseline: VmHWM growth on CPU (the process's peak resident set), or
``torch.cuda.max_memory_allocated`` growth on CUDA. The full N x N attention matrix the official
code would allocate is shown for comparison.

    python bench/attention_memory.py                      # 1, 2, 4 MP on CPU, 1 GiB budget
    python bench/attention_memory.py --device cuda --budget-mib 4096
    python bench/attention_memory.py --max-chunks 2       # memory only (see below)

``--max-chunks K`` computes only the first K query chunks of the attention (the rest of its
output stays zero): every chunk allocates the same buffers, so the peak is already reached, while
the quadratic compute (about 140 TFLOP at 4 MP) is skipped. Everything else runs in full.

Measured (torch 2.13.0 CPU, 2 shared cores, 1 GiB budget; peak = VmHWM growth; times are with
other jobs running). The full 1 MP run peaks exactly where the 2-chunk run does. Beyond the
budget, the peak is the 512-channel activations of the mapping (512 MiB each at 4 MP), linear in
the image size:

       MP       image  features       N   full NxN rows/chunk    chunks      peak     time
        1  1024x1024   256x256    65536   16.0 GiB       2048   32/32    1.63 GiB   272.2s
        1  1024x1024   256x256    65536   16.0 GiB       2048    2/32    1.63 GiB    85.1s
        2  1456x1456   364x364   132496   65.4 GiB       1012    2/131   2.54 GiB   311.1s
        4  2048x2048   512x512   262144  256.0 GiB        512    2/512   5.02 GiB   444.3s
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import time


def image_side(megapixels: float) -> int:
    return max(16, round(math.sqrt(megapixels * 2**20) / 16) * 16)


def synthetic_mask(torch, side: int):
    """About 5% scratched: thin diagonal lines, a vertical line and a blotch."""
    y = torch.arange(side).view(-1, 1).float()
    x = torch.arange(side).view(1, -1).float()
    mask = ((y - (0.35 * x + side * 0.05)).abs() < 2) | ((y - (0.9 * side - 0.5 * x)).abs() < 2)
    mask |= (x - side * 0.8).abs() < 2
    mask |= (y > side * 0.4) & (y < side * 0.55) & (x > side * 0.3) & (x < side * 0.5)
    return mask.float().view(1, 1, side, side)


def peak_rss_bytes() -> int:
    status = open("/proc/self/status").read()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) * 1024


def child(megapixels: float, budget: int, device: str, max_chunks: int | None) -> dict:
    import torch

    from oldphoto import nets
    from oldphoto.checkpoints.registry import build_network
    from oldphoto.nets import nonlocal_arch

    torch.manual_seed(0)
    torch.set_grad_enabled(False)
    nets.set_attention_budget(budget)
    side = image_side(megapixels)
    h = w = side // 4
    n = h * w
    rows = nonlocal_arch.attention_chunk_rows(1, n, 4, budget)
    chunks = math.ceil(n / rows)
    if max_chunks is not None and max_chunks < chunks:
        full_attention = nonlocal_arch.masked_attention

        def first_chunks(theta_x, phi_x, g_x, keep, chunk_budget):
            out = theta_x.new_zeros(theta_x.shape[0], theta_x.shape[1], g_x.shape[2])
            head = max_chunks * rows
            out[:, :head] = full_attention(theta_x[:, :head], phi_x, g_x, keep, chunk_budget)
            return out

        nonlocal_arch.masked_attention = first_chunks
        chunks_run = max_chunks
    else:
        chunks_run = chunks

    mapping = build_network("mapping_scratch").to(device)
    latent = torch.randn(1, 64, h, w, device=device)
    mask = synthetic_mask(torch, side).to(device)
    with torch.inference_mode():
        mapping(latent[..., :16, :16], mask[..., :64, :64])  # warm-up: kernels, allocator
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            baseline = torch.cuda.memory_allocated()
        else:
            baseline = peak_rss_bytes()
        start = time.perf_counter()
        out = mapping(latent, mask)
        if device == "cuda":
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated() - baseline
        else:
            peak = peak_rss_bytes() - baseline
        seconds = time.perf_counter() - start
    assert out.shape == latent.shape and torch.isfinite(out).all()
    return {"megapixels": megapixels, "side": side, "features": [h, w], "n": n,
            "full_matrix_bytes": n * n * 4, "chunk_rows": rows, "chunks": chunks,
            "chunks_run": chunks_run, "peak_bytes": peak, "seconds": seconds,
            "device": device, "budget_bytes": budget,
            "scratched": float(mask.mean())}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, nargs="+", default=[1, 2, 4])
    parser.add_argument("--budget-mib", type=int, default=1024)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--max-chunks", type=int, default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    budget = args.budget_mib << 20
    if args.child:
        print(json.dumps(child(args.megapixels[0], budget, args.device, args.max_chunks)))
        return

    gib = 2**30
    print(f"scratch mapping, chunked non-local attention: budget {args.budget_mib} MiB, "
          f"device {args.device}" + (f", first {args.max_chunks} chunks only" if args.max_chunks else ""))
    print(f"{'MP':>5} {'image':>11} {'features':>9} {'N':>7} {'full NxN':>10} {'rows/chunk':>10} "
          f"{'chunks':>9} {'peak':>9} {'time':>8}")
    for megapixels in args.megapixels:
        cmd = [sys.executable, __file__, "--child", "--megapixels", str(megapixels),
               "--budget-mib", str(args.budget_mib), "--device", args.device]
        if args.max_chunks:
            cmd += ["--max-chunks", str(args.max_chunks)]
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode:
            print(f"{megapixels:>5g} failed:\n{run.stderr[-2000:]}")
            continue
        r = json.loads(run.stdout.strip().splitlines()[-1])
        print(f"{r['megapixels']:>5g} {r['side']:>5}x{r['side']:<5} {r['features'][0]:>4}x{r['features'][1]:<4} "
              f"{r['n']:>7} {r['full_matrix_bytes'] / gib:>6.1f} GiB {r['chunk_rows']:>10} "
              f"{r['chunks_run']:>4}/{r['chunks']:<4} {r['peak_bytes'] / gib:>5.2f} GiB {r['seconds']:>7.1f}s",
              flush=True)


if __name__ == "__main__":
    main()
