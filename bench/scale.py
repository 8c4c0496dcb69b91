"""How the workflow scales to archives: 50 / 200 / 1,000 photos, and the DAG of 10,000 / 100,000.

**Real runs** (``--photos``): the whole workflow (``snakemake --cores 2``, the workflow profile in
``profiles/default`` as Snakemake loads it by itself, classical or ``pretrained`` backend) on N
small synthetic old photos, a fresh output folder per run.  Measured per run:

* wall time of ``snakemake`` (start to exit), and per photo;
* **CPU of the Snakemake process itself** (user + system, its own threads, the jobs excluded):
  ``snakemake`` runs under a small launcher (:data:`LAUNCHER`) that writes
  ``getrusage(RUSAGE_SELF)`` and ``VmHWM`` of that process at exit; ``/proc/<pid>/stat``
  (utime + stime, no children) and ``/proc/<pid>/status`` (``VmHWM``) are also sampled every
  0.2 s, which is what is reported when a run is stopped at its ``--timeout``;
* the **jobs' CPU**: ``wait4`` returns the rusage of Snakemake plus every job it waited for; minus
  Snakemake's own;
* the CPU of processes that **outlived their job** (a warm worker serving later jobs): this
  process is their subreaper (:func:`become_subreaper`), so they are reaped and counted here after
  Snakemake exits (they get 90 s to stop by themselves; that wait is not in the wall time);
* **jobs** done and in total (the last ``N of M steps`` line of Snakemake's log) and jobs per second
  of wall time;
* **peak memory (RSS) of the Snakemake process** (``VmHWM``; jobs are separate processes), and
  of the **whole run**: every process of it, the warm workers included (they leave Snakemake's
  process tree), sampled with the same 0.2 s loop (``_common.RunMemory``): the largest process's
  ``VmHWM`` and the largest sum of ``Pss`` over the run's processes at one sample;
* photos with a face found and final outputs written (what the run produced, so a faster
  workflow is compared on the same work); load average before and after.

**DAG only** (``--dag-only``): ``snakemake -n --quiet rules`` (dry run: input discovery, config
validation, DAG construction, nothing executed) on N empty ``.png`` placeholders (nothing is
decoded in a dry run): wall time, jobs in the DAG (its ``total`` line), CPU and peak RSS of
Snakemake.

The photos (160×160, deterministic): crops of the 12 official samples, aged with
``oldphoto.testing.degrade`` (fading, scratches, blur, grain, JPEG; a different mix per photo), and every
``--face-every``-th photo (default 10: ~10 %) a face cut from ``resources/samples/old/a.png``
pasted into it, so that stages 3-4 run for those photos.  They are written once per N under
``--workdir`` and reused by later runs.  The pretrained backend uses recipe weights
(``oldphoto.checkpoints.write_recipe_checkpoints``, official layout, same compute) whose caches
are prepared before the timed runs (not timed; a one-off per installation).

Runs that exceed ``--timeout`` are stopped (SIGTERM, then SIGKILL to the process group) and
reported as "not finished within X s" with the jobs done by then.  Timings belong here, never
in tests.  The script only drives ``snakemake`` and reads ``/proc``: apart from counting, it does
not depend on the workflow's rule names.

    .venv/bin/python bench/scale.py --photos 50 200 [--backend classical|pretrained]
        [--dag-only 10000 100000] [--scheduler ilp|greedy] [--repeat 1] [--timeout 1800]
        [--dag-timeout 300] [--extra "--scheduler-subsample 50"] [--config key=value ...]
        [--workdir /tmp/oldphoto-scale] [--out bench/results/scale.md] [--label "before"]
        [--repo OTHER_CHECKOUT]   # measure another checkout's Snakefile and src/ (before/after)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (PYTHON, REPO, SAMPLES, RunMemory, fmt, loadavg,  # noqa: E402
                     machine_info, machine_markdown, stub_path, workflow_config, write_results)

PHOTO_SIDE = 160
# Face rectangle of resources/samples/old/a.png (as in tests/conftest.py), with a margin.
FACE_SOURCE = ("old", "a.png", (44, 84, 284, 324))
FACE_PASTE_SIDE = 124  # the face itself ends up ~95 px wide: dlib's detector finds it
AGEING = (("fade",), ("fade", "scratch"), ("blur", "fade", "noise"), ("scratch", "noise"),
          ("blur", "fade", "scratch", "noise", "jpeg"), ("fade", "jpeg"))
FACE_AGEING = (("fade",), ("fade", "scratch"))
GENERATOR_VERSION = "1"
# The checkout whose Snakefile and src/ are measured (--repo; default this one).
workflow_repo = REPO
SAMPLE_SECONDS = 0.2

# Runs Snakemake in this process and records its own rusage and peak RSS when it exits.
LAUNCHER = r"""
import atexit, json, os, resource, runpy, sys
_out = os.environ.pop("OLDPHOTO_SCALE_RUSAGE")
def _report():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    hwm = None
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
    with open(_out, "w") as handle:
        json.dump({"utime": usage.ru_utime, "stime": usage.ru_stime, "vmhwm": hwm}, handle)
atexit.register(_report)
sys.argv = ["snakemake", *sys.argv[1:]]
runpy.run_module("snakemake", run_name="__main__", alter_sys=True)
"""


# ---------------------------------------------------------------------------------------------
# Photos


def _sample_sources() -> list[Path]:
    return sorted((SAMPLES / "old").glob("*.png")) + sorted(
        (SAMPLES / "old_w_scratch").glob("*.png"))


def make_photo(index: int, sources: list[Path], face_every: int):
    """Photo ``index``: (uint8 RGB 160×160, has_pasted_face).  Deterministic in ``index``."""
    import numpy as np
    from PIL import Image

    from oldphoto.testing.degrade import degrade

    rng = np.random.default_rng([index, 7])
    with Image.open(sources[index % len(sources)]) as im:
        rgb = im.convert("RGB")
    side = int(rng.integers(PHOTO_SIDE, min(rgb.width, rgb.height, 3 * PHOTO_SIDE) + 1))
    left = int(rng.integers(0, rgb.width - side + 1))
    top = int(rng.integers(0, rgb.height - side + 1))
    photo = rgb.crop((left, top, left + side, top + side)).resize(
        (PHOTO_SIDE, PHOTO_SIDE), Image.BILINEAR)
    with_face = face_every > 0 and index % face_every == 0
    if with_face:
        folder, name, box = FACE_SOURCE
        with Image.open(SAMPLES / folder / name) as im:
            face = im.convert("RGB").crop(box).resize((FACE_PASTE_SIDE, FACE_PASTE_SIDE),
                                                      Image.BILINEAR)
        room = PHOTO_SIDE - FACE_PASTE_SIDE
        photo.paste(face, (int(rng.integers(0, room + 1)), int(rng.integers(0, room + 1))))
    kinds = FACE_AGEING[index % len(FACE_AGEING)] if with_face else AGEING[index % len(AGEING)]
    aged, _ = degrade(np.asarray(photo), kinds, seed=index)
    return aged, with_face


def make_photos(folder: Path, count: int, face_every: int) -> dict[str, Any]:
    """Write ``count`` photos into ``folder`` once (a marker records what was written)."""
    from PIL import Image

    marker = folder / ".scale-photos.json"
    wanted = {"count": count, "face_every": face_every, "version": GENERATOR_VERSION,
              "side": PHOTO_SIDE}
    if marker.is_file():
        made = json.loads(marker.read_text())
        if {k: made.get(k) for k in wanted} == wanted:
            return made
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    sources = _sample_sources()
    faces = 0
    for index in range(count):
        aged, with_face = make_photo(index, sources, face_every)
        faces += with_face
        Image.fromarray(aged).save(folder / f"photo_{index:05d}.png")
    made = {**wanted, "pasted_faces": faces}
    marker.write_text(json.dumps(made))
    return made


def make_placeholders(folder: Path, count: int) -> None:
    """``count`` empty ``.png`` files (a dry run lists inputs but decodes nothing)."""
    marker = folder / ".scale-placeholders.json"
    if marker.is_file() and json.loads(marker.read_text()).get("count") == count:
        return
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for index in range(count):
        (folder / f"scan_{index:06d}.png").touch()
    marker.write_text(json.dumps({"count": count}))


# ---------------------------------------------------------------------------------------------
# One measured snakemake process


@dataclass
class Measured:
    """What one ``snakemake`` process cost."""

    status: str  # "ok", "failed (rc N)" or "not finished within X s"
    wall_s: float
    own_cpu_s: float | None  # Snakemake's process, user + system
    children_cpu_s: float | None  # the jobs (and anything else it waited for)
    orphans_cpu_s: float  # processes that outlived their job (warm workers), reaped here
    orphans: int
    peak_rss_bytes: int | None
    run_memory: dict[str, Any]  # _common.RunMemory.summary(): every process of the run
    jobs_done: int | None
    jobs_total: int | None
    load_before: str
    load_after: str
    log: Path
    extra: dict[str, Any] = field(default_factory=dict)


def become_subreaper() -> None:
    """Adopt every orphaned descendant (``PR_SET_CHILD_SUBREAPER``).

    A job may start a process that outlives it (a warm worker serving later jobs); Snakemake
    never waits for it, so its CPU is in nobody's rusage.  As subreaper this process inherits such
    orphans, reaps them after the run and so counts their CPU (:func:`reap_orphans`).
    """
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
        print("  warning: PR_SET_CHILD_SUBREAPER failed: worker CPU is not counted",
              file=sys.stderr)


def _own_children() -> list[int]:
    me = str(os.getpid())
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if stat[stat.rindex(")") + 2:].split()[1] == me:
                found.append(int(entry.name))
    return found


def reap_orphans(wait_s: float) -> int:
    """Wait up to ``wait_s`` for the adopted orphans of a run to exit (SIGTERM, then SIGKILL to
    each by pid after that) and reap them; returns how many there were."""
    count = 0
    deadline = time.monotonic() + wait_s
    signalled: dict[int, float] = {}
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return count
        if pid:
            count += 1
            continue
        now = time.monotonic()
        if now > deadline:
            for child in _own_children():
                if child not in signalled:
                    signalled[child] = now
                    os.kill(child, signal.SIGTERM)
                elif now - signalled[child] > 10:
                    os.kill(child, signal.SIGKILL)
        time.sleep(0.2)


def _proc_sample(pid: int) -> tuple[float | None, int | None]:
    """(utime + stime s, VmHWM bytes) of ``pid`` from /proc, None where unreadable."""
    cpu = hwm = None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return cpu, hwm


def _steps(log: Path) -> tuple[int | None, int | None]:
    """The last ``N of M steps`` of Snakemake's log: (done, total)."""
    done = total = None
    with open(log, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            match = re.search(r"(\d+) of (\d+) steps", line)
            if match:
                done, total = int(match.group(1)), int(match.group(2))
    return done, total


def run_measured(workdir: Path, config: dict[str, Any], args: list[str], *, cores: int,
                 timeout: float, log: Path, orphan_wait: float = 90) -> Measured:
    """Run the repository's Snakefile under :data:`LAUNCHER`; stop it after ``timeout`` s.

    After Snakemake exits, processes it left behind (adopted: :func:`become_subreaper`) get
    ``orphan_wait`` s to exit by themselves (not part of the wall time) before they are stopped.
    """
    import yaml

    workdir.mkdir(parents=True, exist_ok=True)
    configfile = workdir / "scale-config.yaml"
    configfile.write_text(yaml.safe_dump(config), encoding="utf-8")
    rusage_file = workdir / "snakemake-rusage.json"
    rusage_file.unlink(missing_ok=True)
    cmd = [PYTHON, "-c", LAUNCHER, "--snakefile", str(workflow_repo / "Snakefile"),
           "--directory", str(workdir), "--configfile", str(configfile),
           "--cores", str(cores), *args]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(workflow_repo / "src")
    env["OLDPHOTO_SCALE_RUSAGE"] = str(rusage_file)
    if os.environ.get("OLDPHOTO_BENCH_REAL_SCONTROL") != "1":
        env["PATH"] = stub_path()
    load_before = loadavg()
    reaped_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(log, "w", encoding="utf-8") as log_handle:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=workdir, stdout=log_handle, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)
        memory = RunMemory(proc.pid, str(Path(config["output_dir"]).resolve()))
        sampled_cpu: float | None = None
        sampled_hwm: int | None = None
        stopped = False
        status = rusage = None
        while True:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                break
            cpu, hwm = _proc_sample(proc.pid)
            memory.sample()
            sampled_cpu = cpu if cpu is not None else sampled_cpu
            sampled_hwm = hwm if hwm is not None else sampled_hwm
            if not stopped and time.perf_counter() - start > timeout:
                stopped = True
                _stop_group(proc.pid)
            time.sleep(SAMPLE_SECONDS)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    total_cpu = rusage.ru_utime + rusage.ru_stime
    orphans = reap_orphans(orphan_wait)
    reaped_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    reaped_cpu = (reaped_after.ru_utime + reaped_after.ru_stime
                  - reaped_before.ru_utime - reaped_before.ru_stime)
    own_cpu, peak = sampled_cpu, sampled_hwm
    if rusage_file.is_file():
        own = json.loads(rusage_file.read_text())
        own_cpu, peak = own["utime"] + own["stime"], own["vmhwm"] or sampled_hwm
    done, total = _steps(log)
    if stopped:
        state = f"not finished within {timeout:.0f} s (stopped)"
    elif proc.returncode != 0:
        state = f"failed (rc {proc.returncode})"
    else:
        state = "ok"
    return Measured(status=state, wall_s=wall, own_cpu_s=own_cpu,
                    children_cpu_s=None if own_cpu is None else max(0.0, total_cpu - own_cpu),
                    orphans_cpu_s=max(0.0, reaped_cpu - total_cpu), orphans=orphans,
                    peak_rss_bytes=peak, run_memory=memory.summary(), jobs_done=done,
                    jobs_total=total,
                    load_before=load_before, load_after=loadavg(), log=log)


def _stop_group(pid: int) -> None:
    """SIGTERM the run's process group (Snakemake and its jobs), SIGKILL it 30 s later.

    Does not reap ``pid``: the caller's ``wait4`` collects its status and rusage.
    """
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0]
        except (OSError, IndexError):
            return
        if state == "Z":
            break
        time.sleep(0.5)
    try:
        os.killpg(pid, signal.SIGKILL)  # the jobs, should any outlive Snakemake
    except ProcessLookupError:
        pass


# ---------------------------------------------------------------------------------------------
# Real runs and dry runs


def faces_found(output_dir: Path) -> int | None:
    """Photos with at least one face found: from the run summary, else the stage-2 records."""
    summary = output_dir / "run_summary.json"
    if summary.is_file():
        photos = json.loads(summary.read_text()).get("photos", {})
        if photos:
            return sum(1 for p in photos.values() if (p.get("faces") or 0) > 0)
    records = list((output_dir / "stage_2_detection_output").glob("*/faces.json"))
    if not records:
        return None
    return sum(1 for r in records if json.loads(r.read_text()).get("faces"))


def prepare_caches(workdir: Path, config: dict[str, Any], cores: int, timeout: float) -> None:
    """Verify and convert the recipe checkpoints once (``prepare_checkpoint`` jobs, not timed).

    Asks Snakemake for the cache files of today's workflow; a workflow without that rule simply
    makes them in the first timed run (the failure here is only printed).
    """
    from oldphoto.checkpoints import OFFICIAL_FILES

    cache = Path(config["cache_dir"])
    targets = [str(cache / f"{n}.safetensors") for n in OFFICIAL_FILES
               if not (cache / f"{n}.safetensors").exists()]
    if not targets:
        return
    empty = workdir / "prepare" / "in"
    empty.mkdir(parents=True, exist_ok=True)
    prep = {**config, "input_dir": str(empty), "output_dir": str(workdir / "prepare" / "out")}
    measured = run_measured(workdir / "prepare" / "work", prep, targets, cores=cores,
                            timeout=timeout, log=workdir / "prepare" / "snakemake.log")
    print(f"  caches prepared: {measured.status} in {measured.wall_s:.0f} s", file=sys.stderr)


def real_run(workdir: Path, count: int, repeat_index: int, args: argparse.Namespace,
             base_config: dict[str, Any], snakemake_args: list[str]) -> dict[str, Any]:
    made = make_photos(workdir / f"photos_{count}", count, args.face_every)
    run_dir = workdir / f"run_{args.backend}_{count}_{repeat_index}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    config = {**base_config, "input_dir": str(workdir / f"photos_{count}"),
              "output_dir": str(run_dir / "out")}
    measured = run_measured(run_dir / "work", config, snakemake_args, cores=args.cores,
                            timeout=args.timeout, log=run_dir / "snakemake.log")
    out = run_dir / "out"
    finals = len(list((out / "final_output").glob("*.png")))
    return {"photos": count, "measured": measured, "faces_found": faces_found(out),
            "pasted_faces": made["pasted_faces"], "final_outputs": finals}


def dag_run(workdir: Path, count: int, args: argparse.Namespace, base_config: dict[str, Any],
            snakemake_args: list[str]) -> dict[str, Any]:
    make_placeholders(workdir / f"placeholders_{count}", count)
    run_dir = workdir / f"dag_{count}"
    shutil.rmtree(run_dir / "work", ignore_errors=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {**base_config, "input_dir": str(workdir / f"placeholders_{count}"),
              "output_dir": str(run_dir / "out")}
    measured = run_measured(run_dir / "work", config, ["-n", *snakemake_args], cores=args.cores,
                            timeout=args.dag_timeout, log=run_dir / "snakemake.log")
    jobs = None
    for line in measured.log.read_text(errors="replace").splitlines():
        match = re.match(r"^total\s+(\d+)", line.strip())
        if match:
            jobs = int(match.group(1))
    return {"photos": count, "measured": measured, "jobs": jobs}


# ---------------------------------------------------------------------------------------------
# Report


def _mib(value: int | None) -> str:
    return "–" if value is None else f"{value / 2**20:.0f}"


def _num(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else fmt(value, digits)


def real_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| photos | status | wall s | per photo s | Snakemake CPU s (own) | its CPU per "
             "photo s | jobs' CPU s | CPU of processes that outlived their job s (how many) | "
             "jobs done / total | jobs per s | peak RSS of Snakemake MiB | whole run: largest "
             "process MiB / Σ PSS at peak MiB | photos with faces found (pasted) | final outputs "
             "| load before → after |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        m: Measured = row["measured"]
        n = row["photos"]
        jobs = "–" if m.jobs_total is None else f"{m.jobs_done} / {m.jobs_total}"
        rate = None if m.jobs_done is None else m.jobs_done / m.wall_s
        per_own = None if m.own_cpu_s is None else m.own_cpu_s / n
        faces = "–" if row["faces_found"] is None else str(row["faces_found"])
        lines.append(
            f"| {n} | {m.status} | {fmt(m.wall_s, 1)} | {fmt(m.wall_s / n, 2)} | "
            f"{_num(m.own_cpu_s)} | {_num(per_own, 2)} | {_num(m.children_cpu_s)} | "
            f"{fmt(m.orphans_cpu_s, 1)} ({m.orphans}) | {jobs} | "
            f"{_num(rate, 2)} | {_mib(m.peak_rss_bytes)} | "
            f"{_mib(m.run_memory.get('largest_hwm'))} / {_mib(m.run_memory.get('peak_pss_sum'))} | "
            f"{faces} ({row['pasted_faces']}) | "
            f"{row['final_outputs']} | {m.load_before} → {m.load_after} |")
    return lines


def dag_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| photos (empty placeholders) | status | wall s | jobs in the dry-run DAG | "
             "Snakemake CPU s | peak RSS of Snakemake MiB | load before → after |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        m: Measured = row["measured"]
        wall = fmt(m.wall_s, 1) if m.status == "ok" else f"> {m.wall_s:.0f}"
        jobs = "–" if row["jobs"] is None else str(row["jobs"])
        lines.append(f"| {row['photos']} | {m.status} | {wall} | {jobs} | {_num(m.own_cpu_s)} | "
                     f"{_mib(m.peak_rss_bytes)} | {m.load_before} → {m.load_after} |")
    return lines


def git_commit(repo: Path) -> str:
    try:
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain"],
                               capture_output=True, text=True, check=True).stdout.strip()
        branch = subprocess.run(["git", "-C", str(repo), "rev-parse", "--abbrev-ref", "HEAD"],
                                capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit} ({branch}{', uncommitted changes' if dirty else ''})"


def snakemake_version() -> str:
    proc = subprocess.run([PYTHON, "-m", "snakemake", "--version"], capture_output=True,
                          text=True, env={**os.environ, "PATH": stub_path()})
    return proc.stdout.strip() or "unknown"


def parse_config(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs -> config overrides (values parsed as YAML scalars)."""
    import yaml

    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--config expects key=value, got {pair!r}")
        overrides[key] = yaml.safe_load(value)
    return overrides


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, nargs="*", default=[50, 200],
                        help="photo counts of the real runs (none: only --dag-only)")
    parser.add_argument("--dag-only", type=int, nargs="*", default=[],
                        help="photo counts of the dry runs (snakemake -n)")
    parser.add_argument("--backend", choices=["classical", "pretrained"], default="classical")
    parser.add_argument("--scheduler", choices=["ilp", "greedy"], default=None,
                        help="passed as --scheduler (default: Snakemake's own, ilp)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=1800, help="cap per real run, s")
    parser.add_argument("--dag-timeout", type=float, default=300, help="cap per dry run, s")
    parser.add_argument("--extra", default="", help="more snakemake arguments (one string)")
    parser.add_argument("--config", nargs="*", default=[], metavar="KEY=VALUE",
                        help="workflow config overrides")
    parser.add_argument("--face-every", type=int, default=10,
                        help="paste a face into every k-th photo (0: none)")
    parser.add_argument("--workdir", type=Path,
                        default=Path(tempfile.gettempdir()) / "oldphoto-scale")
    parser.add_argument("--out", type=Path, default=None,
                        help="append the markdown section to this file")
    parser.add_argument("--label", default="")
    parser.add_argument("--repo", type=Path, default=REPO,
                        help="checkout whose Snakefile and src/ are run (default: this one)")
    args = parser.parse_args(argv)

    global workflow_repo
    workflow_repo = args.repo.resolve()

    sys.path.insert(0, str(REPO / "src"))
    become_subreaper()
    info = machine_info()
    commit, version = git_commit(workflow_repo), snakemake_version()  # before the runs
    args.workdir.mkdir(parents=True, exist_ok=True)
    base_config = workflow_config(args.workdir, backend=args.backend)
    if args.backend == "pretrained":
        from _common import write_recipe

        checkpoints = write_recipe(args.workdir / "checkpoints")
        base_config.update(checkpoints_dir=str(checkpoints),
                           cache_dir=str(args.workdir / "cache"))
    base_config.update(parse_config(args.config))
    snakemake_args = shlex.split(args.extra)
    if args.scheduler:
        snakemake_args += ["--scheduler", args.scheduler]
    if args.backend == "pretrained" and args.photos:
        prepare_caches(args.workdir, base_config, args.cores, args.timeout)

    real_rows = []
    for repeat_index in range(args.repeat):
        for count in args.photos:
            row = real_run(args.workdir, count, repeat_index, args, base_config, snakemake_args)
            real_rows.append(row)
            m = row["measured"]
            print(f"  {count} photos: {m.status}, {m.wall_s:.1f} s, Snakemake CPU "
                  f"{_num(m.own_cpu_s)} s, jobs {m.jobs_done}/{m.jobs_total}, peak "
                  f"{_mib(m.peak_rss_bytes)} MiB (load {m.load_after})", file=sys.stderr,
                  flush=True)
    dag_rows = []
    for count in args.dag_only:
        row = dag_run(args.workdir, count, args, base_config, ["--quiet", "rules",
                                                                *snakemake_args])
        dag_rows.append(row)
        m = row["measured"]
        print(f"  dry run {count} photos: {m.status}, {m.wall_s:.1f} s, jobs {row['jobs']}, "
              f"peak {_mib(m.peak_rss_bytes)} MiB", file=sys.stderr, flush=True)

    title = f"## Scale: {args.label}".rstrip() if args.label else "## Scale"
    settings = (f"- backend {args.backend}; `--cores {args.cores}`; scheduler "
                f"{args.scheduler or 'Snakemake default (ilp)'}; workflow profile "
                f"`profiles/default` as Snakemake loads it; config overrides: "
                f"{json.dumps(parse_config(args.config)) if args.config else 'none'}; "
                f"extra snakemake arguments: `{args.extra or 'none'}`")
    parts = [title, "", f"- workflow: {workflow_repo}, git commit {commit}, Snakemake {version}",
             machine_markdown(info, loadavg()), settings,
             "- command: `" + " ".join(["python", "bench/scale.py",
                                        *map(shlex.quote, sys.argv[1:] if argv is None
                                             else argv)]) + "`", ""]
    if real_rows:
        parts += [f"### Real runs ({PHOTO_SIDE}×{PHOTO_SIDE} aged photos, every "
                  f"{args.face_every}th with a pasted face; cap {args.timeout:.0f} s per run)",
                  "", *real_table(real_rows), ""]
    if dag_rows:
        parts += [f"### DAG only (`snakemake -n --quiet rules`; cap {args.dag_timeout:.0f} s)",
                  "", *dag_table(dag_rows), ""]
    text = "\n".join(parts)
    write_results(text, args.out, append=True)


if __name__ == "__main__":
    main()
