#!/usr/bin/env python3
"""The README's first command, as CI runs it for a new user (scripts/ci/newcomer.sh).

Standard library only: it runs before anything is installed.

    python3 scripts/ci/newcomer.py command [README.md]      # print the first command
    python3 scripts/ci/newcomer.py check --returncode RC --since EPOCH [README.md]

``command`` prints the first fenced shell block of the README (the command the README gives a
new user before anything else), exactly as written.  ``check`` reads from that command where
the run's photos and outputs are (its ``--config`` values, else ``config/config.yaml``) and
fails unless the command exited 0 and every photo of the input folder has its final output,
written by this run (modified after ``--since``), a PNG of the input's size where both are PNG,
and marked restored in ``run_summary.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import struct
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```(?:bash|sh|shell|console)?\s*\n(.*?)^```", re.MULTILINE | re.DOTALL)
# what the workflow takes as photos (src/oldphoto/inputs.py), kept apart on purpose: an
# independent count of what a user would call the photos of the folder
PHOTO_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif"}
FINAL_SUFFIXES = {"png": ".png", "tiff": ".tif", "jpeg": ".jpg"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def first_command(readme: str) -> str:
    """The first fenced shell block of a README, as written (lines joined by newlines)."""
    match = FENCE.search(readme)
    if match is None:
        raise ValueError("the README has no fenced shell block")
    command = match.group(1).strip("\n")
    if not command.strip():
        raise ValueError("the README's first fenced block is empty")
    return command


def config_value(config_yaml: str, key: str) -> str | None:
    """A top-level scalar of config/config.yaml (no YAML library before the install)."""
    match = re.search(rf"^{re.escape(key)}:[ \t]*([^#\n]*?)[ \t]*(?:#.*)?$", config_yaml,
                      re.MULTILINE)
    if match is None:
        return None
    value = match.group(1).strip().strip("'\"")
    return None if value in ("", "null", "~") else value


def run_settings(command: str, config_yaml: str) -> dict[str, str]:
    """``input_dir``, ``output_dir`` and ``output_format`` of the command's run: its
    ``--config key=value`` words, else the defaults of config/config.yaml."""
    given: dict[str, str] = {}
    words = shlex.split(command.replace("\\\n", " "))
    in_config = False
    for word in words:
        if word in ("--config", "-C"):
            in_config = True
        elif word.startswith("-") or word in ("&&", "||", ";"):
            in_config = False
        elif in_config and "=" in word:
            key, value = word.split("=", 1)
            given[key] = value
    return {key: given.get(key) or config_value(config_yaml, key) or default
            for key, default in (("input_dir", ""), ("output_dir", "results"),
                                 ("output_format", "png"))}


def photos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                  and p.suffix.lower() in PHOTO_SUFFIXES)


def png_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from a PNG's header, None for anything else."""
    with open(path, "rb") as handle:
        head = handle.read(24)
    if len(head) < 24 or not head.startswith(PNG_MAGIC) or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", head[16:24])


def final_output(output_dir: Path, photo: Path, output_format: str) -> Path:
    suffix = FINAL_SUFFIXES.get(output_format)
    if suffix is None:  # same: the input's own format
        suffix = {".tiff": ".tif", ".jpeg": ".jpg", ".tif": ".tif", ".jpg": ".jpg"}.get(
            photo.suffix.lower(), ".png")
    return output_dir / "final_output" / (photo.stem + suffix)


def problems(repo: Path, command: str, returncode: int, since: float) -> list[str]:
    """Why the newcomer run failed; empty when every photo was restored by this run."""
    settings = run_settings(command, (repo / "config" / "config.yaml").read_text("utf-8"))
    found = []
    if returncode != 0:
        found.append(f"the command exited {returncode}")
    input_dir = repo / settings["input_dir"]
    output_dir = repo / settings["output_dir"]
    if not settings["input_dir"] or not input_dir.is_dir():
        return found + [f"its input folder {settings['input_dir']!r} is not a folder"]
    inputs = photos(input_dir)
    if not inputs:
        found.append(f"{input_dir} holds no photo")
    summary: dict = {}
    try:
        summary = json.loads((output_dir / "run_summary.json").read_text("utf-8"))
    except (OSError, ValueError) as err:
        found.append(f"no readable {output_dir / 'run_summary.json'} ({err})")
    for photo in inputs:
        final = final_output(output_dir, photo, settings["output_format"])
        if not final.is_file():
            found.append(f"{photo.name}: no final output {final}")
            continue
        if final.stat().st_mtime < since:
            found.append(f"{photo.name}: {final} was not written by this run (remove "
                         f"{output_dir} for a fresh check)")
        size_in, size_out = png_size(photo), png_size(final)
        if final.suffix == ".png" and size_out is None:
            found.append(f"{photo.name}: {final} is not a PNG")
        elif size_in and size_out and size_in != size_out:
            found.append(f"{photo.name}: {final} is {size_out[0]}x{size_out[1]}, the input "
                         f"{size_in[0]}x{size_in[1]}")
        status = summary.get("photos", {}).get(photo.stem, {}).get("status")
        if summary and status != "restored":
            found.append(f"{photo.name}: run_summary.json says {status!r}, not 'restored'")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    show = sub.add_parser("command", help="print the README's first command")
    show.add_argument("readme", nargs="?", type=Path, default=REPO / "README.md")
    check = sub.add_parser("check", help="did the first command restore every photo?")
    check.add_argument("readme", nargs="?", type=Path, default=REPO / "README.md")
    check.add_argument("--returncode", type=int, required=True)
    check.add_argument("--since", type=float, required=True, help="start time (epoch seconds)")
    args = parser.parse_args(argv)
    command = first_command(args.readme.read_text(encoding="utf-8"))
    if args.what == "command":
        print(command)
        return 0
    repo = args.readme.resolve().parent
    found = problems(repo, command, args.returncode, args.since)
    settings = run_settings(command, (repo / "config" / "config.yaml").read_text("utf-8"))
    if found:
        print(f"newcomer check FAILED: the README's first command did not restore every photo "
              f"of {settings['input_dir']}:", file=sys.stderr)
        for line in found:
            print(f"  - {line}", file=sys.stderr)
        return 1
    count = len(photos(repo / settings["input_dir"]))
    print(f"newcomer check passed: all {count} photo(s) of {settings['input_dir']} restored into "
          f"{settings['output_dir']}/final_output by the README's first command")
    return 0


if __name__ == "__main__":
    sys.exit(main())
