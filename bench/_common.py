"""Helpers shared by the benchmarks in ``bench/``: machine description, workflow runs, medians.

Every benchmark prints :func:`machine_markdown` next to its numbers: timings on the shared 2-core
machines drift with the other jobs running there, so the load average before and after a
measurement is part of the result.

``scontrol``: Snakemake imports every installed executor plugin at start-up, and
snakemake-executor-plugin-slurm runs ``scontrol show config`` while being imported.  On a machine
with the Slurm client installed but no reachable controller (these test machines, between the
Slurm tests) that call waits 9 s for its connection to fail, on **every** ``snakemake`` start.
The benchmarks measure the workflow, not that: :func:`run_snakemake` puts a stub ``scontrol``
that fails at once first on ``PATH`` (as on a machine without Slurm) unless
``OLDPHOTO_BENCH_REAL_SCONTROL=1``; :func:`machine_info` times the real one.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "resources" / "samples"
PYTHON = sys.executable


def median(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


def median_time(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``repeat`` calls of ``fn``, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def mem_total_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def scontrol_seconds() -> float | None:
    """Wall time of ``scontrol show config`` (what every snakemake start pays), None if absent."""
    import shutil

    if shutil.which("scontrol") is None:
        return None
    start = time.perf_counter()
    subprocess.run(["scontrol", "show", "config"], capture_output=True, timeout=30)
    return time.perf_counter() - start


def stub_path() -> str:
    """A PATH whose first entry holds an ``scontrol`` that fails at once (see the docstring)."""
    folder = Path(tempfile.gettempdir()) / "oldphoto-bench-bin"
    folder.mkdir(exist_ok=True)
    stub = folder / "scontrol"
    if not stub.exists():
        stub.write_text("#!/bin/sh\necho 'scontrol stub (oldphoto bench)' >&2\nexit 1\n")
        stub.chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"


def machine_info() -> dict[str, Any]:
    """nproc, RAM, CPU, torch version and default threads (read in a child: no torch import here)."""
    probe = subprocess.run(
        [PYTHON, "-c", "import json, torch; print(json.dumps({'torch': torch.__version__, "
                       "'threads': torch.get_num_threads(), 'cuda': torch.cuda.is_available()}))"],
        capture_output=True, text=True, check=True)
    torch_info = json.loads(probe.stdout)
    return {
        "host": platform.node(),
        "nproc": os.cpu_count(),
        "ram_gib": round(mem_total_gib(), 1),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "torch": torch_info["torch"],
        "torch_default_threads": torch_info["threads"],
        "cuda": torch_info["cuda"],
        "gpu": "none (no GPU device was lent to this task)",
        "loadavg": loadavg(),
        "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE", ""),
        "scontrol_s": scontrol_seconds(),
        "real_scontrol": os.environ.get("OLDPHOTO_BENCH_REAL_SCONTROL") == "1",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def machine_markdown(info: dict[str, Any], load_after: str | None = None) -> str:
    lines = [
        f"- machine: {info['nproc']} cores ({info['cpu']}), {info['ram_gib']} GiB RAM, "
        f"GPU: {info['gpu']}",
        f"- python {info['python']}, torch {info['torch']} (default {info['torch_default_threads']}"
        f" threads, CUDA available: {info['cuda']})",
        f"- load average (1/5/15 min) at start: {info['loadavg']}"
        + (f"; at end: {load_after}" if load_after else "")
        + " (other engineers' jobs share these cores)",
        f"- PYTHONDONTWRITEBYTECODE={info['PYTHONDONTWRITEBYTECODE'] or '(unset)'}; "
        f"run at {info['date']}",
    ]
    if info.get("scontrol_s") is not None:
        lines.append(
            f"- `scontrol show config` takes {info['scontrol_s']:.1f} s here (Slurm client, "
            "controller " + ("reachable" if info["scontrol_s"] < 2 else "unreachable") + "); "
            + ("snakemake ran with the real one" if info["real_scontrol"] else
               "snakemake ran with a stub `scontrol` that fails at once (bench/_common.py)"))
    return "\n".join(lines)


def workflow_config(tmp: Path, **overrides: Any) -> dict[str, Any]:
    """A complete workflow config whose every path lives under ``tmp`` (as tests/conftest.py)."""
    config = {
        "input_dir": str(tmp / "in"),
        "output_dir": str(tmp / "out"),
        "backend": "classical",
        "checkpoints_dir": str(tmp / "checkpoints"),
        "cache_dir": str(tmp / "cache"),
        "device": "cpu",
        "gpu_per_job": 0,
        "threads": 2,
    }
    config.update(overrides)
    return config


def _snakemake_invocation(workdir: Path, config: dict[str, Any], args: tuple[str, ...],
                          cores: int, env: dict[str, str] | None) -> tuple[list[str], dict]:
    import yaml

    workdir.mkdir(parents=True, exist_ok=True)
    configfile = workdir / "bench-config.yaml"
    configfile.write_text(yaml.safe_dump(config), encoding="utf-8")
    cmd = [
        PYTHON, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir), "--configfile", str(configfile),
        "--cores", str(cores), "--keep-going", "--rerun-incomplete", "--latency-wait", "5",
        *args,
    ]
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(REPO / "src")
    if os.environ.get("OLDPHOTO_BENCH_REAL_SCONTROL") != "1":
        full_env["PATH"] = stub_path()
    if env:
        full_env.update(env)
    return cmd, full_env


def run_snakemake(workdir: Path, config: dict[str, Any], *args: str, cores: int = 2,
                  check: bool = True, timeout: float | None = None,
                  env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, float]:
    """Run the repository's Snakefile in ``workdir``; returns ``(process, wall seconds)``."""
    cmd, full_env = _snakemake_invocation(workdir, config, args, cores, env)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout,
                          env=full_env)
    wall = time.perf_counter() - start
    if check and proc.returncode != 0:
        raise RuntimeError(f"snakemake failed ({proc.returncode})\nSTDERR:\n{proc.stderr[-6000:]}")
    return proc, wall


def run_snakemake_sampled(workdir: Path, config: dict[str, Any], *args: str, cores: int = 2,
                          timeout: float | None = None, env: dict[str, str] | None = None
                          ) -> tuple[subprocess.CompletedProcess, float, "RunMemory"]:
    """:func:`run_snakemake` (never raising for its exit status) with the memory of every
    process of the run sampled while it runs (:class:`RunMemory`)."""
    cmd, full_env = _snakemake_invocation(workdir, config, args, cores, env)
    start = time.perf_counter()
    process = subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=full_env)
    memory = RunMemory(process.pid, str(Path(config["output_dir"]).resolve()))
    memory.start()
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    finally:
        wall = time.perf_counter() - start
        memory.stop()
    return subprocess.CompletedProcess(cmd, process.returncode, stdout, stderr), wall, memory


# ---------------------------------------------------------------------------------------------
# Memory of a whole run


def _proc_text(pid: int, name: str) -> str | None:
    try:
        return Path(f"/proc/{pid}/{name}").read_text(errors="replace")
    except OSError:
        return None


def _kib_field(text: str | None, field: str) -> int | None:
    """``VmHWM:  1234 kB`` -> 1234 * 1024 bytes."""
    if text is None:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return None


class RunMemory:
    """The memory of every process of one workflow run, from ``/proc`` every ``interval`` s.

    A run is more than the Snakemake process and its children: the warm workers that hold
    torch, the networks and dlib's models are started fully detached (double fork, a new
    session, :mod:`oldphoto.worker.client`), so they leave Snakemake's process tree, and
    ``/usr/bin/time -v`` or Snakemake's benchmark files (which measure a job's thin client) miss
    them.  The run's processes are therefore: Snakemake (``root_pid``), its descendants, and
    every process whose environment holds ``OLDPHOTO_RUN_KEY=<run_key>`` (the absolute output
    folder: the workflow exports it to every job, and workers inherit it from the job that
    started them; a worker's exiftool inherits it from the worker).

    Reported: the largest process's peak (``VmHWM``, kept by the kernel, so a peak between two
    samples still counts while the process lives), and the largest total over all the run's
    processes at one sample, as resident sets (``VmRSS``: libraries shared between processes
    count once per process) and as proportional sets (``Pss`` of ``smaps_rollup``: shared pages
    divided among their users).
    """

    def __init__(self, root_pid: int, run_key: str, interval: float = 0.2) -> None:
        import threading

        self.root_pid = root_pid
        self.marker = f"OLDPHOTO_RUN_KEY={run_key}\0".encode()
        self.interval = interval
        self.largest_hwm = 0
        self.largest_name = ""
        self.root_hwm = 0
        self.peak_rss_sum = 0
        self.peak_pss_sum = 0
        self.processes: set[tuple[int, str]] = set()  # (pid, start time) of the run's processes
        self.samples = 0
        self._marked: dict[tuple[int, str], bool] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.sample()
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))
        self.sample()

    def _has_marker(self, key: tuple[int, str]) -> bool:
        if key not in self._marked:
            try:
                environ = Path(f"/proc/{key[0]}/environ").read_bytes()
            except OSError:
                environ = b""
            self._marked[key] = (b"\0" + environ).find(b"\0" + self.marker) >= 0
        return self._marked[key]

    def members(self) -> list[int]:
        """The pids of the run's processes now."""
        parents: dict[int, int] = {}
        keys: dict[int, tuple[int, str]] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            stat = _proc_text(int(entry.name), "stat")
            if stat is None:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            pid = int(entry.name)
            parents[pid] = int(fields[1])
            keys[pid] = (pid, fields[19])  # start time: a reused pid is another process
        found: dict[int, bool] = {}

        def belongs(pid: int, depth: int = 0) -> bool:
            if pid not in found:
                found[pid] = (pid == self.root_pid or self._has_marker(keys[pid])
                              or (depth < 64 and parents.get(pid, 0) in keys
                                  and belongs(parents[pid], depth + 1)))
            return found[pid]

        run = [pid for pid in keys if belongs(pid)]
        self.processes.update(keys[pid] for pid in run)
        return run

    def sample(self) -> None:
        rss_sum = pss_sum = 0
        for pid in self.members():
            status = _proc_text(pid, "status")
            hwm, rss = _kib_field(status, "VmHWM"), _kib_field(status, "VmRSS")
            if hwm is None or rss is None:  # gone, or a kernel thread
                continue
            rss_sum += rss
            pss_sum += _kib_field(_proc_text(pid, "smaps_rollup"), "Pss") or rss
            if pid == self.root_pid:
                self.root_hwm = max(self.root_hwm, hwm)
            if hwm > self.largest_hwm:
                self.largest_hwm = hwm
                self.largest_name = _process_name(pid)
        self.samples += 1
        self.peak_rss_sum = max(self.peak_rss_sum, rss_sum)
        self.peak_pss_sum = max(self.peak_pss_sum, pss_sum)

    def summary(self) -> dict[str, Any]:
        return {"largest_hwm": self.largest_hwm, "largest": self.largest_name,
                "snakemake_hwm": self.root_hwm, "peak_rss_sum": self.peak_rss_sum,
                "peak_pss_sum": self.peak_pss_sum, "processes": len(self.processes),
                "samples": self.samples}


def _process_name(pid: int) -> str:
    """A short name: ``snakemake``, ``worker net`` (a warm worker's pool), ``job``, or argv[0]."""
    argv = (_proc_text(pid, "cmdline") or "").split("\0")
    if "oldphoto.worker.server" in argv:
        pool = argv[argv.index("--pool") + 1] if "--pool" in argv else "?"
        return f"worker {pool}"
    if "snakemake" in argv:
        return "snakemake"
    if "oldphoto.jobs" in argv:
        return "job client"
    return Path(argv[0]).name if argv and argv[0] else "?"


def gib(n: int | float) -> str:
    return f"{n / 2**30:.2f} GiB"


def write_recipe(folder: Path, names: list[str] | None = None) -> Path:
    """Recipe-weight checkpoints in the official layout (skipped when already there)."""
    sys.path.insert(0, str(REPO / "src"))
    from oldphoto.checkpoints import OFFICIAL_FILES, official_path
    from oldphoto.testing.recipe import write_recipe_checkpoints

    absent = [n for n in (names or OFFICIAL_FILES) if not official_path(folder, n).exists()]
    if absent:
        write_recipe_checkpoints(folder, names=absent)
    return folder


def read_benchmarks(output_dir: Path) -> dict[str, list[dict[str, float]]]:
    """``{rule: [row, ...]}`` from Snakemake's ``benchmarks/<rule>/*.tsv`` files (one row each)."""
    rules: dict[str, list[dict[str, float]]] = {}
    bench = output_dir / "benchmarks"
    for tsv in sorted(bench.glob("*/*.tsv")) + sorted(bench.glob("*.tsv")):
        lines = tsv.read_text().splitlines()
        if len(lines) < 2:
            continue
        header = lines[0].split("\t")
        for line in lines[1:]:
            values = line.split("\t")
            row: dict[str, float] = {}
            for key, value in zip(header, values):
                try:
                    row[key] = float(value)
                except ValueError:
                    pass
            row["file"] = str(tsv.relative_to(bench))  # type: ignore[assignment]
            rule = tsv.parent.name if tsv.parent != bench else tsv.stem
            rules.setdefault(rule, []).append(row)
    return rules


def fmt(seconds: float, digits: int = 2) -> str:
    return "–" if seconds != seconds else f"{seconds:.{digits}f}"


def write_results(text: str, path: Path | None, *, append: bool = False) -> None:
    """Print a benchmark's markdown and, given ``path``, write it there too: replacing the file,
    or with ``append`` adding it (and a blank line) after the runs already recorded."""
    print(text)
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    if append:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text + "\n")
    else:
        path.write_text(text, encoding="utf-8")
