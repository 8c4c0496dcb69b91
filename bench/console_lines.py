"""Console lines per photo: what ``oldphoto`` and plain ``snakemake`` print for a run.

Runs the workflow (classical backend, ``--cores 2``, the workstation profile as Snakemake loads
it) on N tiny photos plus one corrupt file, for two values of N, with ``oldphoto`` and with plain
``snakemake``, and counts the lines each prints (stdout and stderr together).  Lines per photo is
the slope between the two runs, ``(lines(N2) - lines(N1)) / (N2 - N1)``; the fixed part is what
is left at N1.  Also counted: lines naming ``Traceback``, ``CalledProcessError``,
``WorkflowError`` or ``Error in rule`` (the corrupt file is an expected failure) and the lines that
mention the corrupt file's failure reason.

``--repo DIR`` measures another checkout of oldphoto (e.g. an export of an earlier commit:
``git archive <commit> | tar -x -C DIR``), whose ``src/`` and Snakefile are used for both
commands; the default is this checkout.

    .venv/bin/python bench/console_lines.py --markdown bench/results/console_lines.md
    .venv/bin/python bench/console_lines.py --repo /tmp/before --label "before"
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PYTHON, REPO, SAMPLES, loadavg, machine_info, machine_markdown, stub_path  # noqa: E402

NOISE = ("Traceback", "CalledProcessError", "WorkflowError", "Error in rule")
BROKEN = "broken scan.png"


def make_photos(folder: Path, count: int) -> None:
    """``count`` small photos (crops of the bundled samples) and one corrupt PNG."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    sources = sorted((SAMPLES / "old").glob("*.png"))
    for k in range(count):
        with Image.open(sources[k % len(sources)]) as im:
            rgb = im.convert("RGB")
            side = min(rgb.size) // 2
            left = (k * 17) % (rgb.width - side + 1)
            rgb.crop((left, 0, left + side, side)).resize((128, 128)).save(
                folder / f"photo {k:03d}.png")
    (folder / BROKEN).write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)


def run(command: list[str], repo: Path, cwd: Path) -> str:
    env = dict(os.environ, PYTHONPATH=str(repo / "src"), PATH=stub_path())
    env.pop("OLDPHOTO_CONSOLE", None)
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=1800)
    return proc.stdout + proc.stderr


def count(text: str) -> dict[str, int]:
    lines = text.splitlines()
    return {
        "lines": len(lines),
        "noise": sum(any(word in line for word in NOISE) for line in lines),
        "failure_lines": sum(("FAILED" in line or "failed" in line) and "broken" in line
                             for line in lines),
    }


def measure(repo: Path, photos: int, tmp: Path) -> dict[str, dict[str, int]]:
    folder = tmp / f"in-{photos}"
    make_photos(folder, photos)
    results = {}
    oldphoto = [PYTHON, "-m", "oldphoto.cli", "--input_folder", str(folder), "--output_folder",
                str(tmp / f"out-oldphoto-{photos}"), "--backend", "classical", "--GPU", "-1",
                "--cores", "2"]
    results["oldphoto"] = count(run(oldphoto, repo, tmp))
    snakemake = [PYTHON, "-m", "snakemake", "--snakefile", str(repo / "Snakefile"), "--cores",
                 "2", "--directory", str(tmp / f"work-{photos}"), "--config",
                 f"input_dir={folder}", f"output_dir={tmp / f'out-snakemake-{photos}'}",
                 "backend=classical", "device=cpu", "gpu_per_job=0"]
    results["snakemake"] = count(run(snakemake, repo, tmp))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=REPO, help="oldphoto checkout to measure")
    parser.add_argument("--label", default=None, help="name of the measured version")
    parser.add_argument("--photos", type=int, nargs=2, default=(4, 12), metavar=("N1", "N2"))
    parser.add_argument("--markdown", type=Path, default=None, help="append the table here")
    args = parser.parse_args()
    repo = args.repo.resolve()
    label = args.label or ("this checkout" if repo == REPO else str(repo))
    info = machine_info()
    tmp = Path(tempfile.mkdtemp(prefix="oldphoto-console-"))
    try:
        n1, n2 = args.photos
        first, second = measure(repo, n1, tmp), measure(repo, n2, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows = [f"### {label}", "",
            f"N tiny photos + 1 corrupt file, classical backend, `--cores 2`; N = {n1} and {n2}.",
            "",
            "| command | lines (N1) | lines (N2) | lines per photo | fixed lines | "
            "error-block lines (N2) | lines about the corrupt file (N2) |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for command in ("oldphoto", "snakemake"):
        a, b = first[command], second[command]
        per_photo = (b["lines"] - a["lines"]) / (n2 - n1)
        rows.append(f"| `{command}` | {a['lines']} | {b['lines']} | {per_photo:.1f} | "
                    f"{a['lines'] - per_photo * n1:.0f} | {b['noise']} | {b['failure_lines']} |")
    text = "\n".join(rows + ["", machine_markdown(info, loadavg()), ""])
    print(text)
    if args.markdown:
        with open(args.markdown, "a", encoding="utf-8") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
