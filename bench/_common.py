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


def run_snakemake(workdir: Path, config: dict[str, Any], *args: str, cores: int = 2,
                  check: bool = True, timeout: float | None = None,
                  env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, float]:
    """Run the repository's Snakefile in ``workdir``; returns ``(process, wall seconds)``."""
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
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout,
                          env=full_env)
    wall = time.perf_counter() - start
    if check and proc.returncode != 0:
        raise RuntimeError(f"snakemake failed ({proc.returncode})\nSTDERR:\n{proc.stderr[-6000:]}")
    return proc, wall


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
