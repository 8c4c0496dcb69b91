"""CI's newcomer check (scripts/ci/): the README's first command is found and its result judged.

``.ci/run`` runs ``scripts/ci/newcomer.sh`` before it installs anything: the first fenced shell
block of the README, as written, with the programs a new user lacks hidden
(``scripts/ci/hide-tools.sh``), then ``newcomer.py check``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts" / "ci"

_spec = importlib.util.spec_from_file_location("newcomer", SCRIPTS / "newcomer.py")
newcomer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(newcomer)

CONFIG_YAML = (REPO / "config" / "config.yaml").read_text(encoding="utf-8")


def png(path: Path, width: int, height: int) -> None:
    """A valid grey PNG (no imaging library: the check reads only the header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    path.write_bytes(newcomer.PNG_MAGIC + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height,
                                                                     8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_the_readme_first_command_is_the_one_for_new_users():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    command = newcomer.first_command(readme)
    # the block right under the README's promise to new users, as written
    promise = readme.index("**Restore the bundled sample photos**")
    assert readme.index(command) > promise
    assert readme.index("```", promise) < readme.index(command)
    assert command.startswith("bash scripts/install.sh && .venv/bin/snakemake ")
    assert "\n" not in command
    settings = newcomer.run_settings(command, CONFIG_YAML)
    assert settings == {"input_dir": "resources/samples/old_w_scratch",
                        "output_dir": "results", "output_format": "png"}
    assert [p.name for p in newcomer.photos(REPO / settings["input_dir"])] == \
        ["a.png", "b.png", "c.png", "d.png"]


def test_first_command_is_the_first_fenced_shell_block_as_written():
    readme = ("# tool\n\nIntro `inline`.\n\n```bash\nbash install.sh && \\\n"
              "  tool run --config input_dir=x   # restore\n```\n\n```bash\ntool test\n```\n")
    assert newcomer.first_command(readme) == \
        "bash install.sh && \\\n  tool run --config input_dir=x   # restore"
    with pytest.raises(ValueError):
        newcomer.first_command("# no code here\n")


def test_run_settings_take_the_command_config_over_the_defaults():
    command = ("bash scripts/install.sh && .venv/bin/snakemake --cores 2 --config "
               "input_dir=in output_dir='my out' --forceall")
    assert newcomer.run_settings(command, CONFIG_YAML) == {
        "input_dir": "in", "output_dir": "my out", "output_format": "png"}
    assert newcomer.run_settings(".venv/bin/snakemake -C output_format=tiff", CONFIG_YAML) == {
        "input_dir": "resources/samples/old", "output_dir": "results", "output_format": "tiff"}
    assert newcomer.config_value("a: 1\nlandmarks: null  # none\n", "landmarks") is None


def _checkout(tmp_path: Path) -> tuple[Path, str]:
    """A checkout with two photos, a README whose first command restores them, the config."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(CONFIG_YAML, encoding="utf-8")
    photos = tmp_path / "photos"
    photos.mkdir()
    png(photos / "a.png", 30, 20)
    png(photos / "b.png", 12, 16)
    (photos / ".DS_Store").write_bytes(b"x")  # not a photo
    (photos / "notes.txt").write_text("not a photo")
    command = ".venv/bin/snakemake --cores 2 --config input_dir=photos"
    return tmp_path, command


def _restore(repo: Path, *names: str, status: str = "restored") -> None:
    out = repo / "results" / "final_output"
    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(repo / "photos" / f"{name}.png", out / f"{name}.png")
    summary = {"photos": {name: {"status": status} for name in names}}
    (repo / "results" / "run_summary.json").write_text(__import__("json").dumps(summary))


def test_check_passes_only_when_every_photo_was_restored_by_this_run(tmp_path):
    repo, command = _checkout(tmp_path)
    since = time.time() - 1
    _restore(repo, "a", "b")
    assert newcomer.problems(repo, command, 0, since) == []
    assert newcomer.problems(repo, command, 1, since) == ["the command exited 1"]
    # written before the run started: an earlier run's output proves nothing
    later = time.time() + 60
    assert newcomer.problems(repo, command, 0, later) == [
        f"{name}.png: {repo}/results/final_output/{name}.png was not written by this run "
        f"(remove {repo}/results for a fresh check)" for name in ("a", "b")]


def test_check_names_a_missing_or_wrong_output(tmp_path):
    repo, command = _checkout(tmp_path)
    since = time.time() - 1
    _restore(repo, "a")
    png(repo / "results" / "final_output" / "a.png", 29, 20)
    assert newcomer.problems(repo, command, 0, since) == [
        f"a.png: {repo}/results/final_output/a.png is 29x20, the input 30x20",
        f"b.png: no final output {repo}/results/final_output/b.png"]
    _restore(repo, "a", "b", status="failed")
    assert newcomer.problems(repo, command, 0, since) == [
        "a.png: run_summary.json says 'failed', not 'restored'",
        "b.png: run_summary.json says 'failed', not 'restored'"]


def test_check_command_line_exit_status(tmp_path):
    repo, command = _checkout(tmp_path)
    (repo / "README.md").write_text(f"# x\n\n```bash\n{command}\n```\n", encoding="utf-8")
    _restore(repo, "a", "b")
    check = [sys.executable, str(SCRIPTS / "newcomer.py"), "check", str(repo / "README.md"),
             "--since", str(time.time() - 5)]
    ok = subprocess.run([*check, "--returncode", "0"], capture_output=True, text=True)
    assert ok.returncode == 0 and "all 2 photo(s) of photos restored" in ok.stdout
    failed = subprocess.run([*check, "--returncode", "1"], capture_output=True, text=True)
    assert failed.returncode == 1 and "the command exited 1" in failed.stderr


def _can_unshare() -> str | None:
    if shutil.which("unshare") is None:
        return "no unshare on this machine"
    probe = subprocess.run(["bash", str(SCRIPTS / "hide-tools.sh"), "--", "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        return f"no private mount namespace here: {probe.stderr.strip()[-200:]}"
    return None


def test_hidden_tools_cannot_be_found_or_run_and_stay_for_everyone_else(tmp_path):
    why = _can_unshare()
    if why:
        pytest.skip(why)
    tool = tmp_path / "bin" / "oldphoto-probe-tool"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\necho probe ran\n")
    tool.chmod(0o755)
    env = {**os.environ, "PATH": f"{tool.parent}{os.pathsep}{os.environ['PATH']}"}
    look = ("import shutil, subprocess, sys; print(shutil.which('oldphoto-probe-tool')); "
            "[print(subprocess.run(['sh', '-c', c], capture_output=True).returncode) "
            f"for c in ('oldphoto-probe-tool', '{tool}')]")
    hidden = subprocess.run(["bash", str(SCRIPTS / "hide-tools.sh"), "oldphoto-probe-tool",
                             "not-installed-anywhere", "--", sys.executable, "-c", look],
                            capture_output=True, text=True, env=env)
    assert hidden.returncode == 0, hidden.stderr
    # not on PATH any more (not found: 127), and its file cannot be run (126)
    assert hidden.stdout.split() == ["None", "127", "126"]
    assert f"hidden: {tool} ({tool})" in hidden.stderr
    visible = subprocess.run([sys.executable, "-c", look], capture_output=True, text=True,
                             env=env)
    assert visible.stdout.split() == [str(tool), "0", "0"]
    assert tool.read_text() == "#!/bin/sh\necho probe ran\n"  # the file itself is untouched
