"""Rerunning the rejected photos: one Snakemake run on the folder, targeting their final outputs.

The command is the one the ``oldphoto`` command runs (``oldphoto.cli``), on the run's recorded
configuration, with the final outputs of the photos due for a rerun as targets — so Snakemake
reruns their jobs whose settings changed (its params trigger) and nothing of any other photo::

    python -m snakemake --snakefile <repo>/Snakefile --directory WORKDIR --configfile CONFIG
        --cores N --keep-going --rerun-incomplete --printshellcmds TARGET...

Its output goes to a log under ``.oldphoto/review/``, whole (``--printshellcmds``: the quiet
console of :mod:`oldphoto.console` is for terminals; this log is what a reviewer opens when a
rerun fails); :func:`progress` reads Snakemake's ``N of M steps (P%) done`` lines from it and
:func:`job_photos` the jobs' photos.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from oldphoto.locks import Ownership

_STEPS = re.compile(r"^(\d+) of (\d+) steps \((\d+(?:\.\d+)?)%\) done", re.MULTILINE)
_JOB_IMAGE = re.compile(r"^\s*wildcards:.*\bimage=(.+?)(?:, \w+=.*)?$", re.MULTILINE)


def progress(log_text: str) -> tuple[int, int]:
    """(steps done, steps in all) from a Snakemake log; (0, 0) before the first such line."""
    found = _STEPS.findall(log_text)
    if not found:
        return 0, 0
    done, total, _ = found[-1]
    return int(done), int(total)


def job_photos(log_text: str) -> set[str]:
    """The photos (``image`` wildcard) of the jobs a Snakemake log says it ran."""
    return {match.strip() for match in _JOB_IMAGE.findall(log_text)}


def rerun_command(*, snakefile: Path, workdir: Path, configfile: Path, targets: Sequence[str],
                  cores: str = "all") -> list[str]:
    return [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile),
            "--directory", str(workdir), "--configfile", str(configfile), "--cores", str(cores),
            "--keep-going", "--rerun-incomplete", "--printshellcmds", *targets]


@dataclass
class Rerun:
    """One rerun in the background (a subprocess), its log and how it ended."""

    command: list[str]
    log: Path
    photos: list[str]
    started: float = field(default_factory=time.time)
    process: subprocess.Popen | None = None
    returncode: int | None = None
    on_exit: Callable[["Rerun"], None] | None = None
    ownership: "Ownership | None" = None
    """The folder's claim (:func:`oldphoto.locks.take_ownership`): Snakemake shares its lock and
    is named in its owner record; released when the rerun ends."""

    def start(self, env: dict | None = None) -> "Rerun":
        self.log.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.log, "wb")
        handle.write(("$ " + " ".join(self.command) + "\n").encode("utf-8", "replace"))
        handle.flush()
        self.process = subprocess.Popen(self.command, stdout=handle, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=env or dict(os.environ),
                                        start_new_session=True,
                                        pass_fds=self.ownership.pass_fds if self.ownership
                                        else ())
        handle.close()
        if self.ownership is not None:
            self.ownership.started(self.process.pid)
        threading.Thread(target=self._wait, daemon=True).start()
        return self

    def _wait(self) -> None:
        assert self.process is not None
        self.returncode = self.process.wait()
        if self.ownership is not None:
            self.ownership.ended(self.returncode)
            self.ownership.release()
        if self.on_exit is not None:
            self.on_exit(self)

    @property
    def running(self) -> bool:
        return self.process is not None and self.returncode is None

    def state(self) -> dict:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        done, total = progress(text)
        return {"running": self.running, "returncode": self.returncode, "done": done,
                "total": total, "photos": self.photos, "log": self.log.name,
                "tail": "\n".join(text.splitlines()[-15:]),
                "seconds": round(time.time() - self.started, 1)}
