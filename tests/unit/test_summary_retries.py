"""The run summary counts the jobs retried after their worker died (oldphoto.summary), from the
``RETRIED`` lines a job writes when its worker died (oldphoto.jobs.protocol.retried_line)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

from oldphoto import summary

DIED = ("worker died: /tmp/oldphoto-0/ab/cpu-1.log: worker cpu-1 (pid 4321) died during task "
        "'restore_global': killed by signal 9 (SIGKILL); see its log")


def write_log(out: Path, rule: str, stem: str, lines: list[str], age: float = 0.0) -> Path:
    log = out / "logs" / rule / f"{stem}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("".join(line + "\n" for line in lines))
    if age:
        stamp = time.time() - age
        os.utime(log, (stamp, stamp))
    return log


def test_retried_jobs_of_this_run_are_counted_per_photo(tmp_path):
    retried = f"RETRIED restore_global a :: {DIED}; retried once in a fresh worker"
    write_log(tmp_path, "restore_global", "a", ["[12:00:01] device: cpu", "[12:00:02] done",
                                               retried])
    write_log(tmp_path, "blend_faces", "a", [
        "[12:00:03] done", f"RETRIED blend_faces a :: {DIED}; retried once in a fresh worker"])
    # retried in an earlier run: its log was written before this run started
    write_log(tmp_path, "restore_global", "old", ["[11:00:02] done", retried], age=3600)
    # a photo that failed for its own reasons was not retried
    write_log(tmp_path, "restore_global", "broken", [
        "FAILED restore_global broken :: bad image: in/broken.png: cannot decode"])
    found = summary.retried_jobs(tmp_path / "logs", since=time.time() - 60)
    assert found == {"a": [f"blend_faces: {DIED}; retried once in a fresh worker",
                           f"restore_global: {DIED}; retried once in a fresh worker"]}


def test_summary_and_closing_line_say_how_many_photos_were_retried(tmp_path, monkeypatch):
    out = tmp_path / "out"
    (out / "final_output").mkdir(parents=True)
    for stem in ("a", "b"):
        (out / "final_output" / f"{stem}.png").write_bytes(b"png")
        write_log(out, "restore_global", stem, ["[12:00:02] done"])
    write_log(out, "restore_global", "a", [
        "[12:00:02] done", f"RETRIED restore_global a :: {DIED}; retried once in a fresh worker"])
    write_log(out, "restore_global", "broken", [
        "FAILED restore_global broken :: bad image: in/broken.png: cannot decode"])
    monkeypatch.setattr(summary, "_LOADED_AT", time.time() - 60)
    inputs = SimpleNamespace(images={s: tmp_path / "in" / f"{s}.png" for s in ("a", "b", "broken")},
                             skipped=[])
    result = summary.summarize({"output_dir": str(out), "output_format": "png"}, inputs,
                               {"global": "classical", "face": "classical"})
    assert result["photos"]["a"]["status"] == "restored"
    assert result["photos"]["a"]["retried"] == [
        f"restore_global: {DIED}; retried once in a fresh worker"]
    assert "retried" not in result["photos"]["b"] and "retried" not in result["photos"]["broken"]
    assert result["photos"]["broken"]["status"] == "failed"
    assert result["counts"] == {"restored": 2, "with_faces_enhanced": 0, "failed": 1,
                                "not_run": 0, "skipped": 0, "retried": 1}
    assert summary.summary_line(result) == (
        "oldphoto: 2 photo(s) restored (0 with faces enhanced), 1 failed, 0 skipped, backend "
        "classical, 1 retried after a worker died")
    result["counts"]["retried"] = 0
    assert summary.summary_line(result).endswith("backend classical")
