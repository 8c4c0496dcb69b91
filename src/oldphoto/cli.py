"""``oldphoto``: the official ``run.py`` command line on top of the Snakemake workflow.

Every option maps to a config key of the workflow (config/README.md); the command writes those
settings to ``OUTPUT_FOLDER/oldphoto_config.yaml`` and runs this checkout's Snakefile in a
subprocess::

    python -m snakemake --snakefile <repo>/Snakefile --directory OUTPUT_FOLDER
        --configfile OUTPUT_FOLDER/oldphoto_config.yaml --cores N --keep-going --rerun-incomplete
        [--resources gpu=<number of GPUs>] [extra snakemake arguments]

so a run is incremental and resumable like any Snakemake run, and the same folder can be
reported on or rerun with plain ``snakemake`` (the command is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from oldphoto.locks import FolderInUse, Ownership

from oldphoto.checkout import UsageError, workflow_root
from oldphoto.errors import OldPhotoError

CONFIG_NAME = "oldphoto_config.yaml"
EXT_CHOICES = ("png", "tiff", "tif", "jpeg", "jpg", "same", "auto")
"""``--ext``: the ``output_format`` spellings of config and sheet, and GFPGAN's ``auto`` for
``same`` (:mod:`oldphoto.spellings`); written to the config as the canonical value."""
REPORT_TARGET = "gallery"
EXIT_FOLDER_IN_USE = 3
"""Exit status when another run holds the output folder (or its lock's owner is unknown)."""


def parse_gpus(text: str | None) -> list[int] | None:
    """``--GPU``: None (not given), [] for ``-1`` (CPU), else the distinct GPU indices."""
    if text is None:
        return None
    items = [item.strip() for item in text.split(",")]
    if items == ["-1"]:
        return []
    gpus = []
    for item in items:
        if not item.isdigit():
            raise UsageError(f"--GPU {text!r}: expected -1 (CPU) or a comma-separated list of "
                             "GPU indices such as 0 or 0,1")
        if int(item) in gpus:
            raise UsageError(f"--GPU {text!r}: GPU {item} is listed twice")
        gpus.append(int(item))
    return gpus


def check_checkpoint_name(name: str, hr: bool) -> None:
    """run.py's ``--checkpoint_name``: the face model, which ``--HR`` decides
    (:attr:`oldphoto.mode.Mode.face_network`)."""
    from oldphoto.mode import Mode

    standard, large = Mode(hr=False).face_network, Mode(hr=True).face_network
    if name == Mode(hr=hr).face_network or (hr and name == standard):
        # run.py's default stays Setting_9_epoch_100 with --HR and then uses FaceSR_512
        return
    if name == large:
        raise UsageError(f"--checkpoint_name {large} is the 512-px face model of --HR; add --HR "
                         "(or leave --checkpoint_name out)")
    raise UsageError(
        f"--checkpoint_name {name!r}: only the official face checkpoints are supported: "
        f"{standard} (default) or {large} with --HR. The "
        "networks are built for those weights; a retrained checkpoint of the same architecture "
        "goes in place of the official file under --checkpoints_dir"
    )


HELP_EPILOG = """\
Every option is a config key of the workflow (config/README.md); the settings are written to
OUTPUT_FOLDER/oldphoto_config.yaml and the workflow runs with
  python -m snakemake --snakefile <repo>/Snakefile --directory OUTPUT_FOLDER
      --configfile OUTPUT_FOLDER/oldphoto_config.yaml --cores N --keep-going --rerun-incomplete
      [--resources gpu=<number of GPUs>] [EXTRA]
  oldphoto sheet INPUT_DIR [-o PATH] [--force]  writes a starter photo sheet (per-photo
               settings, --photo-sheet; see oldphoto sheet --help)
  oldphoto review OUTPUT_DIR  review the restorations in the browser: accept, reject, rerun
               with other settings, keep the record (see oldphoto review --help)
Anything after -- goes to snakemake unchanged (e.g. -- --forceall).
Run it again to finish an interrupted run or add photos: only missing work is done; with nothing
left to do it says so and exits 0.
The console shows one line per photo and one summary (every failure with its reason); --verbose
shows every job and its shell line, and OUTPUT_FOLDER/.snakemake/log/ keeps everything.

  --GPU -1     config device=cpu, gpu_per_job=0
  --GPU 0,1    config device=cuda; --resources gpu=2; CUDA_VISIBLE_DEVICES=0,1 (each network
               job takes one of those GPUs)
  (no --GPU)   config device=auto: a GPU when CUDA is available, else the CPU
  --checkpoint_name  the face model, fixed by --HR: Setting_9_epoch_100, or FaceSR_512 with --HR
               (no config key; anything else is an error)

Exit status: 0 when every photo was restored, 1 when any failed or did not run (each is named
with its reason; the others are finished), 2 for a command line or configuration error (an
input folder without photos is one) or when a library, program or model file the run needs is
missing (named with how to get it; nothing is run), 3 when the output folder is locked by a run
that is alive or cannot be checked from here (nothing was done; the message names its owner). A
lock left by a dead run of this machine is removed by itself; --unlock removes any lock, for
when no run is alive anywhere (docs/resume.md).
"""


def build_parser() -> argparse.ArgumentParser:
    from oldphoto.mode import Mode

    parser = argparse.ArgumentParser(
        prog="oldphoto",
        usage="%(prog)s [options] [-- EXTRA snakemake arguments]\n"
              "       %(prog)s sheet INPUT_DIR [-o PATH] [--force]\n"
              "       %(prog)s review OUTPUT_DIR [--reviewer NAME] [--export TSV] ...",
        description="Restore old photos (Bringing Old Photos Back to Life, Wan et al. 2020) with "
                    "the same options as the official run.py, as an incremental Snakemake "
                    "workflow.",
        epilog=HELP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--input_folder", default="./test_images/old", metavar="DIR",
                        help="folder with the photos (config: input_dir; default: %(default)s)")
    parser.add_argument("--output_folder", default="./output", metavar="DIR",
                        help="where the stage folders and final_output/ go; also Snakemake's "
                             "working directory (config: output_dir; default: %(default)s)")
    parser.add_argument("--GPU", default=None, metavar="LIST",
                        help="-1 for the CPU, or GPU indices such as 0 or 0,1 (config: device, "
                             "gpu_per_job; snakemake --resources gpu=N; CUDA_VISIBLE_DEVICES)")
    parser.add_argument("--checkpoint_name", default=Mode(hr=False).face_network, metavar="NAME",
                        help="face model: Setting_9_epoch_100, or FaceSR_512 with --HR (config: "
                             "hr decides it; default: %(default)s)")
    parser.add_argument("--with_scratch", action="store_true",
                        help="detect and repair scratches (config: with_scratch)")
    parser.add_argument("--HR", action="store_true",
                        help="high-resolution mode: patch attention, 512-px faces (config: hr)")
    parser.add_argument("--backend", choices=("auto", "pretrained", "classical"), default="auto",
                        help="official networks, the classical no-weights methods, or auto: "
                             "pretrained where the checkpoints are present (config: backend; "
                             "default: %(default)s)")
    parser.add_argument("--checkpoints_dir", default=None, metavar="DIR",
                        help="official checkpoint layout (Global/checkpoints/..., "
                             "Face_Enhancement/checkpoints/...), e.g. an official clone (config: "
                             "checkpoints_dir; default: <repo>/resources/checkpoints)")
    parser.add_argument("--slurm", type=int, default=None, metavar="PHOTOS_PER_JOB",
                        help="restore on a SLURM cluster as one sbatch --array: one task per "
                             "shard of about PHOTOS_PER_JOB photos, each running the workflow "
                             "inside its allocation with warm workers (oldphoto.slurm); waits "
                             "for the array and merges the run summaries")
    parser.add_argument("--slurm-cpus", type=int, default=2, metavar="N",
                        help="CPUs of each array task (default: %(default)s)")
    parser.add_argument("--slurm-mem", type=int, default=8000, metavar="MB",
                        help="memory of each array task (default: %(default)s)")
    parser.add_argument("--slurm-time", type=int, default=24 * 60, metavar="MINUTES",
                        help="time limit of each array task (default: %(default)s)")
    parser.add_argument("--sbatch", default="", metavar="ARGS",
                        help="further sbatch arguments, e.g. \"-p gpu -A lab\"")
    parser.add_argument("--ext", type=str.lower, choices=EXT_CHOICES, default=None,
                        help="format of final_output: png, tiff (tif), jpeg (jpg), or same "
                             "(each photo in its input's format; GFPGAN's auto is the same); "
                             "any case (config: output_format; default: png)")
    parser.add_argument("--cores", default="all", metavar="N",
                        help="CPU cores for Snakemake's jobs (snakemake --cores; default: "
                             "%(default)s)")
    parser.add_argument("--dry-run", "-n", action="store_true", dest="dry_run",
                        help="show the jobs that would run and the files skipped, run nothing "
                             "(snakemake --dry-run)")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="show every job and its shell command as Snakemake prints them "
                             "(snakemake --printshellcmds); by default one line per photo")
    parser.add_argument("--photo-sheet", default=None, metavar="TSV", dest="photo_sheet",
                        help="per-photo settings (docs/photo_sheet.md; config: photo_sheet); "
                             "write a starter one with: %(prog)s sheet INPUT_FOLDER")
    parser.add_argument("--report", nargs="?", const="", default=None, metavar="FILE",
                        help="after the run, build the Snakemake report of every finished photo "
                             "(snakemake --report FILE gallery; default FILE: "
                             "OUTPUT_FOLDER/report.html, .zip for big runs)")
    parser.add_argument("--unlock", action="store_true",
                        help="remove the output folder's lock (Snakemake's lock files and "
                             "oldphoto's owner record), saying what was removed, and exit; only "
                             "when no run is alive anywhere (snakemake --unlock)")
    return parser


def settings(args: argparse.Namespace, root: Path) -> dict:
    """The config keys this command line sets (the rest keep config/config.yaml's defaults)."""
    gpus = parse_gpus(args.GPU)
    check_checkpoint_name(args.checkpoint_name, args.HR)
    input_dir = Path(args.input_folder).expanduser().resolve()
    if not input_dir.is_dir():
        raise UsageError(f"--input_folder {args.input_folder}: not a folder")
    checkpoints = (Path(args.checkpoints_dir).expanduser().resolve() if args.checkpoints_dir
                   else root / "resources" / "checkpoints")
    config = {
        "input_dir": str(input_dir),
        "output_dir": str(Path(args.output_folder).expanduser().resolve()),
        "with_scratch": bool(args.with_scratch),
        "hr": bool(args.HR),
        "backend": args.backend,
        "checkpoints_dir": str(checkpoints),
        # relative paths of config.yaml are relative to the repository; --directory moves them
        "cache_dir": str(root / "resources" / "cache"),
    }
    if args.photo_sheet is not None:
        photo_sheet = Path(args.photo_sheet).expanduser().resolve()
        if not photo_sheet.is_file():
            raise UsageError(f"--photo-sheet {args.photo_sheet}: no such file (write one with: "
                             f"oldphoto sheet {args.input_folder})")
        config["photo_sheet"] = str(photo_sheet)
    if args.ext is not None:
        from oldphoto.spellings import ext_option

        config["output_format"] = ext_option(args.ext)
    if gpus == []:
        config.update(device="cpu", gpu_per_job=0)
    elif gpus:
        config["device"] = "cuda"
    return config


def snakemake_command(root: Path, out: Path, config_file: Path, args: argparse.Namespace,
                      gpus: list[int] | None, extra: Sequence[str] = ()) -> list[str]:
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(root / "Snakefile"),
        "--directory", str(out), "--configfile", str(config_file),
        "--cores", str(args.cores), "--keep-going", "--rerun-incomplete",
    ]
    if gpus:
        command += ["--resources", f"gpu={len(gpus)}"]
    if args.dry_run:
        command.append("--dry-run")
    if args.verbose:
        command.append("--printshellcmds")
    return command + list(extra)


def report_command(root: Path, out: Path, config_file: Path, report: Path) -> list[str]:
    return [
        sys.executable, "-m", "snakemake", "--snakefile", str(root / "Snakefile"),
        "--directory", str(out), "--configfile", str(config_file), "--cores", "1",
        "--report", str(report), REPORT_TARGET,
    ]


def run_to_the_end(command: Sequence[str], env: dict, ownership: Ownership | None = None) -> int:
    """Run ``command``; on Ctrl-C keep waiting while Snakemake (which got the same SIGINT from
    the terminal) stops its jobs and cleans up, instead of killing it half-way.  With an
    :class:`oldphoto.locks.Ownership` of the folder, the process shares its lock and is named in
    its owner record."""
    pass_fds = ownership.pass_fds if ownership is not None else ()
    process = subprocess.Popen(list(command), env=env, pass_fds=pass_fds)
    if ownership is not None:
        ownership.started(process.pid)
    while True:
        try:
            code = process.wait()
        except KeyboardInterrupt:
            continue
        if ownership is not None:
            ownership.ended(code)
        return code


def read_summary(out: Path, since: float) -> dict | None:
    """This run's run_summary.json (None if the run ended before writing one)."""
    path = out / "run_summary.json"
    try:
        if path.stat().st_mtime < since:
            return None
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def build_sheet_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oldphoto sheet",
        description="Write a starter photo sheet: every photo of INPUT_DIR with "
                    "with_scratch=auto and the other settings empty (= the run's). Edit it, "
                    "then run: oldphoto --input_folder INPUT_DIR --photo-sheet FILE "
                    "(docs/photo_sheet.md)",
    )
    parser.add_argument("input_dir", metavar="INPUT_DIR", help="folder with the photos")
    parser.add_argument("-o", "--output", default="photo_sheet.tsv", metavar="PATH",
                        help="the sheet to write (default: %(default)s in the current folder)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing sheet")
    return parser


def sheet_main(argv: Sequence[str]) -> int:
    """``oldphoto sheet INPUT_DIR [-o PATH] [--force]``: exit 0, or 2 with the reason."""
    from oldphoto.errors import ConfigError
    from oldphoto.sheet import write_starter_sheet

    args = build_sheet_parser().parse_args(list(argv))
    input_dir = Path(args.input_dir).expanduser()
    if not input_dir.is_dir():
        print(f"oldphoto sheet: error: {args.input_dir}: not a folder", file=sys.stderr)
        return 2
    target = Path(args.output).expanduser()
    if target.exists() and not args.force:
        print(f"oldphoto sheet: error: {target} exists and was left as it is; add --force to "
              "replace it", file=sys.stderr)
        return 2
    try:
        names = write_starter_sheet(input_dir, target, overwrite=args.force)
    except ConfigError as err:
        print(f"oldphoto sheet: error: {err.path}: {err.reason}", file=sys.stderr)
        return 2
    print(f"oldphoto sheet: {target}: {len(names)} photo(s), with_scratch=auto; edit it, then "
          f"run oldphoto --input_folder {shlex.quote(str(input_dir))} --photo-sheet "
          f"{shlex.quote(str(target))}")
    return 0


def review_main(argv: Sequence[str]) -> int:
    """``oldphoto review OUTPUT_DIR ...``: the review server (docs/review.md)."""
    from oldphoto.review.main import main as review

    return review(argv)


def slurm_main(root: Path, out: Path, config: dict, config_file: Path, args: argparse.Namespace,
               gpus: list[int] | None, extra: Sequence[str]) -> int:
    """``--slurm N``: one ``sbatch --array`` over shards of the folder; wait; merge summaries."""
    from oldphoto import slurm
    from oldphoto.inputs import discover_inputs
    from oldphoto.summary import summary_line

    photos = len(discover_inputs(config["input_dir"]).images)
    shards = slurm.shard_count(photos, args.slurm)
    gpu_count = 0 if gpus == [] else (len(gpus) if gpus else (1 if config.get("gpu_per_job", 1)
                                                               else 0))
    run_dir = out / ".oldphoto"
    run_dir.mkdir(parents=True, exist_ok=True)
    script = run_dir / "slurm-task.sh"
    script.write_text(slurm.task_script(snakefile=root / "Snakefile", output_dir=out,
                                        config_file=config_file, shards=shards, gpus=gpu_count,
                                        extra=extra), encoding="utf-8")
    script.chmod(0o755)
    command = slurm.sbatch_command(script, shards=shards, cpus=args.slurm_cpus,
                                   mem_mb=args.slurm_mem, gpus=gpu_count,
                                   time_minutes=args.slurm_time, log_dir=run_dir,
                                   sbatch_args=shlex.split(args.sbatch))
    print(f"oldphoto: {photos} photo(s) in {shards} array task(s): " + shlex.join(command),
          file=sys.stderr, flush=True)
    if args.dry_run:
        return 0
    code, job_id = slurm.submit(command)
    summary = slurm.merge_summaries(out, shards)
    print(f"oldphoto: SLURM job {job_id or '?'} ended (sbatch exit {code})")
    summary.setdefault("backend", "?")
    print(summary_line(summary))
    for stem, entry in summary["photos"].items():
        if entry.get("status") == "failed":
            for reason in entry.get("reasons") or ["see its log under logs/"]:
                print(f"oldphoto: FAILED {entry.get('input', stem)}: {reason}")
    failed = summary["counts"].get("failed", 0) + summary["counts"].get("not_run", 0)
    return 1 if (code or failed or not summary["snakemake_ok"]) else 0


def preflight(root: Path, config: dict, args: argparse.Namespace, extra: Sequence[str]) -> None:
    """Refuse, before anything is written, a run whose libraries, programs or model files are
    not installed (:func:`oldphoto.requirements.refuse_missing_for_config`, with the defaults of
    config/config.yaml under this command's settings).  Extra Snakemake arguments that change
    the config (``--config``, ``--configfile``) leave the decision to the Snakefile, which checks
    the same when it builds the DAG."""
    if any(a.split("=", 1)[0] in ("--config", "-C", "--configfile", "--configfiles")
           for a in extra):
        return
    import yaml

    from oldphoto.requirements import refuse_missing_for_config

    defaults = yaml.safe_load((root / "config" / "config.yaml").read_text(encoding="utf-8"))
    refuse_missing_for_config({**defaults, **config}, slurm=args.slurm is not None)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["sheet"]:
        return sheet_main(argv[1:])
    if argv[:1] == ["review"]:
        return review_main(argv[1:])
    extra: list[str] = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1:]
        argv = argv[:argv.index("--")]
    args = build_parser().parse_args(argv)
    if args.unlock:
        return unlock_main(Path(args.output_folder).expanduser().resolve())
    try:
        root = workflow_root()
        config = settings(args, root)
        gpus = parse_gpus(args.GPU)
        check_photos(config["input_dir"], args.input_folder)
        preflight(root, config, args, extra)
    except UsageError as err:
        print(f"oldphoto: error: {err}", file=sys.stderr)
        return 2
    except OldPhotoError as err:
        print(f"oldphoto: error: {err.one_line()}", file=sys.stderr)
        return 2

    from oldphoto.locks import FolderInUse, take_ownership

    out = Path(config["output_dir"])
    out.mkdir(parents=True, exist_ok=True)
    # Before anything is written: a lock is removed only when its owner is known to be dead.
    try:
        ownership, removed = take_ownership(out, dry_run=args.dry_run)
    except FolderInUse as err:
        print(folder_in_use_message(err, root), file=sys.stderr)
        return EXIT_FOLDER_IN_USE
    except OSError as err:
        print(f"oldphoto: error: cannot claim the output folder {out}: {err}", file=sys.stderr)
        return 2
    for what in removed:
        print(f"oldphoto: removed {what}", file=sys.stderr)
    try:
        return run_in_folder(root, out, config, args, gpus, extra, ownership)
    finally:
        if ownership is not None:
            ownership.release()


def unlock_main(out: Path) -> int:
    """``oldphoto --output_folder OUT --unlock``: exit 0 (saying what was removed), or 3 when a
    run is alive on this machine."""
    from oldphoto.locks import FolderInUse, unlock

    try:
        removed = unlock(out)
    except FolderInUse as err:
        print(f"oldphoto: error: not unlocked: {out} is in use by a live run: {err.owner} "
              f"({err.verdict.reason}); stop that run first", file=sys.stderr)
        return EXIT_FOLDER_IN_USE
    for what in removed:
        print(f"oldphoto: removed {what}")
    if not removed:
        print(f"oldphoto: {out} has no lock; nothing removed")
    return 0


def folder_in_use_message(err: FolderInUse, root: Path) -> str:
    """Why a run did not start (:class:`oldphoto.locks.FolderInUse`), its owner and the way out."""
    out = err.workdir
    state = ("is in use by a live run" if err.verdict.state == "alive"
             else "is locked by a run that cannot be checked from here")
    snakemake_unlock = shlex.join([
        sys.executable, "-m", "snakemake", "--snakefile", str(root / "Snakefile"),
        "--directory", str(out), "--configfile", str(out / CONFIG_NAME), "--unlock"])
    return "\n".join([
        f"oldphoto: error: {out} {state}; nothing was done",
        f"oldphoto:   owner: {err.owner}",
        f"oldphoto:   why: {err.verdict.reason}",
        *(["oldphoto:   wait for that run to end (or stop it) and run this command again; a lock "
           "it leaves behind on this machine is removed then"] if err.verdict.state == "alive"
          else []),
        "oldphoto:   only if no run is alive anywhere (no machine, no container works in this "
        "folder), remove the lock with",
        f"oldphoto:     oldphoto --output_folder {shlex.quote(str(out))} --unlock",
        f"oldphoto:   or: {snakemake_unlock}",
    ])


def run_in_folder(root: Path, out: Path, config: dict, args: argparse.Namespace,
                  gpus: list[int] | None, extra: Sequence[str],
                  ownership: Ownership | None) -> int:
    """The run, once its output folder is this process's (``ownership``; None for a dry run)."""
    import yaml

    config_file = out / CONFIG_NAME
    config_file.write_text(
        "# Written by the oldphoto command; rerun with the snakemake command it printed.\n"
        + yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    env = dict(os.environ)
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in gpus)

    if args.slurm is not None:
        return slurm_main(root, out, config, config_file, args, gpus, extra)

    command = snakemake_command(root, out, config_file, args, gpus, extra)
    print("oldphoto: " + shlex.join(command), file=sys.stderr, flush=True)
    started = time.time() - 1.0  # file systems with coarse timestamps
    code = run_to_the_end(command, env, ownership)
    if args.dry_run:
        return code

    # The workflow printed the end of the run once (oldphoto.summary.finish_run: counts, every
    # failure with its reason, what did not run; or "nothing to do: all N photos are up to
    # date"); this command adds only the report.
    summary = read_summary(out, started)
    if summary is None:
        if code:
            print(f"oldphoto: the workflow stopped before running (exit {code}); see the "
                  "messages above", file=sys.stderr)
        return code

    report = out / "report.html"
    if args.report is not None:
        report = Path(args.report).expanduser().resolve() if args.report else report
        built = run_to_the_end(report_command(root, out, config_file, report), env)
        if built == 0:
            print(f"oldphoto: report in {report}", file=sys.stderr)
        else:
            print(f"oldphoto: building the report failed (exit {built}); see the messages "
                  "above", file=sys.stderr)
            code = code or built
    else:
        print("oldphoto: report: " + shlex.join(report_command(root, out, config_file, report)),
              file=sys.stderr)

    failed = summary["counts"].get("failed", 0) + summary["counts"].get("not_run", 0)
    if failed and code == 0:
        code = 1
    return code


def check_photos(input_dir: str, given: str) -> None:
    """The input folder holds at least one photo (else a UsageError naming the folder and what
    was skipped there), before any output folder is made."""
    from oldphoto.inputs import discover_inputs
    from oldphoto.errors import ConfigError

    try:
        discover_inputs(input_dir)
    except ConfigError as err:
        raise UsageError(f"--input_folder {given}: {err.reason}") from None


if __name__ == "__main__":
    sys.exit(main())
