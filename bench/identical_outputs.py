"""Every file a run writes, hashed: to show that a change of the code left the outputs alone.

A refactoring of the middle layer (how settings reach jobs, where the DAG is computed) must not
change a single output byte.  This script runs the workflow on the bundled samples in a few
representative configurations, with both backends, and writes the sha256 of every file the runs
produced (the images of every stage, ``faces.json``, triage decisions, the report's views, the
finals and their sidecars) to a JSON file; ``--compare`` tells which files differ between two
such files.  Run it on the commit before a change and on the commit after::

    git stash; .venv/bin/python bench/identical_outputs.py /tmp/before.json; git stash pop
    .venv/bin/python bench/identical_outputs.py /tmp/after.json
    .venv/bin/python bench/identical_outputs.py --compare /tmp/before.json /tmp/after.json

What is left out, and why: logs, benchmarks, ``run_summary.json`` and Snakemake's own folders
hold times and durations.  A provenance sidecar is hashed without its ``created`` and
``timings_s`` keys (the time of the run, stage durations).  The finals' embedded time (the XMP
History event's ``when``, which also enters the InstanceID) is fixed by ``SOURCE_DATE_EPOCH``,
the reproducible-builds convention that ``oldphoto.archival.final.derivation_time`` honours.
Run both sides with the same interpreter (one ``.venv``): the stage-2 images record the landmark
model's path, which lies inside the virtual environment.

Cases: ``scratch`` (the four scratched samples, ``with_scratch: true``, classical),
``sheet`` (the eight ``old/`` samples, classical, a photo sheet giving photos ``auto``, ``hr``,
TIFF, JPEG and ``tone: keep``), ``pretrained`` (recipe-weight checkpoints, the official
networks' layout and compute: one scratched and one clean photo with faces, per-face jobs).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, SAMPLES, run_snakemake, workflow_config, write_recipe  # noqa: E402

SKIPPED_FOLDERS = {"logs", "benchmarks", ".snakemake", ".oldphoto"}
SKIPPED_FILES = {"run_summary.json", "bench-config.yaml"}
EPOCH = "1765000000"  # 2025-12-06 05:46:40 UTC: any fixed value


def sheet_case(tmp: Path) -> dict:
    folder = tmp / "in"
    shutil.copytree(SAMPLES / "old", folder)
    sheet = tmp / "sheet.tsv"
    sheet.write_text(
        "photo\twith_scratch\thr\tfaces\toutput_format\ttone\n"
        "a.png\tauto\t\t\t\t\n"
        "b.png\t\tyes\t\t\t\n"
        "c.png\t\t\t\ttiff\t\n"
        "d.png\t\t\t\tjpeg\tkeep\n", encoding="utf-8")
    return workflow_config(tmp, photo_sheet=str(sheet))


def scratch_case(tmp: Path) -> dict:
    shutil.copytree(SAMPLES / "old_w_scratch", tmp / "in")
    return workflow_config(tmp, with_scratch=True)


def pretrained_case(tmp: Path) -> dict:
    folder = tmp / "in"
    folder.mkdir()
    shutil.copy(SAMPLES / "old_w_scratch" / "a.png", folder / "scratched.png")
    shutil.copy(SAMPLES / "old" / "a.png", folder / "clean.png")
    sheet = tmp / "sheet.tsv"
    sheet.write_text("photo\twith_scratch\thr\tfaces\nscratched.png\tyes\t\t\n",
                     encoding="utf-8")
    checkpoints = write_recipe(tmp / "checkpoints")
    return workflow_config(tmp, backend="pretrained", checkpoints_dir=str(checkpoints),
                           photo_sheet=str(sheet), face_jobs="per_face")


CASES = {"scratch": scratch_case, "sheet": sheet_case, "pretrained": pretrained_case}


def file_digest(path: Path) -> str:
    if path.parent.name == "provenance" and path.suffix == ".json":
        record = json.loads(path.read_text(encoding="utf-8"))
        record.pop("created", None)
        record.pop("timings_s", None)
        data = json.dumps(record, sort_keys=True).encode()
    else:
        data = path.read_bytes()
    return hashlib.sha256(data).hexdigest()


def output_digests(out: Path) -> dict[str, str]:
    digests = {}
    for path in sorted(out.rglob("*")):
        relative = path.relative_to(out)
        if not path.is_file() or relative.parts[0] in SKIPPED_FOLDERS \
                or path.name in SKIPPED_FILES:
            continue
        digests[str(relative)] = file_digest(path)
    return digests


def run_cases(names: list[str]) -> dict[str, dict[str, str]]:
    results = {}
    for name in names:
        with tempfile.TemporaryDirectory(prefix=f"identical-{name}-") as scratch:
            tmp = Path(scratch)
            config = CASES[name](tmp)
            _, wall = run_snakemake(tmp / "work", config, env={"SOURCE_DATE_EPOCH": EPOCH})
            results[name] = output_digests(Path(config["output_dir"]))
            print(f"{name}: {len(results[name])} files in {wall:.0f} s", file=sys.stderr)
    return results


def compare(before: dict, after: dict) -> list[str]:
    lines = []
    for case in sorted(set(before) | set(after)):
        a, b = before.get(case, {}), after.get(case, {})
        for path in sorted(set(a) | set(b)):
            if path not in b:
                lines.append(f"{case}: {path} only before")
            elif path not in a:
                lines.append(f"{case}: {path} only after")
            elif a[path] != b[path]:
                lines.append(f"{case}: {path} differs")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", nargs="?", help="JSON file for the digests")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated subset")
    parser.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"))
    args = parser.parse_args()
    if args.compare:
        before, after = (json.loads(Path(p).read_text()) for p in args.compare)
        differences = compare(before, after)
        files = sum(len(v) for v in before.values())
        print("\n".join(differences) or f"identical: {files} files in {len(before)} cases")
        return 1 if differences else 0
    if not args.output:
        parser.error("give an output file, or --compare BEFORE AFTER")
    results = run_cases([c for c in args.cases.split(",") if c])
    Path(args.output).write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    print(f"wrote {args.output} ({REPO.name} at {sum(len(v) for v in results.values())} files)",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
