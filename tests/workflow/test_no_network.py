"""A run makes no network access; only the explicit download rule reaches for the network.

Two guards, both on every run here:

* a ``sitecustomize`` (first on ``PYTHONPATH``, so Snakemake and every job's interpreter load it)
  replaces IP ``connect``/``connect_ex``/``sendto`` and name resolution with a function that
  records the attempt (process, rule script, address) in a file and raises ``OSError``: an
  access that some code would catch and shrug off is still on record;
* where the kernel allows it (root, user namespaces), the whole run is started with
  ``unshare --net`` in a fresh network namespace whose only interface is a loopback that is down.

A positive control shows the recorder works: with ``allow_download`` and no checkpoints, the
download rule tries to fetch the official zips, is recorded, and fails loudly.
Plus a static check of the library's imports.

The recorder sees Python only.  Binaries are caught by the namespace alone: Snakemake's SLURM
executor plugin, when installed, runs ``scontrol show config`` as it is imported, which
connects to slurmctld (127.0.0.1:6817 here) and, with no slurmctld answering, retries for
about 10 s; in the namespace that fails too and the run does not depend on it.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, make_tiny_photos, snakemake_invocation, workflow_config

SITECUSTOMIZE = r'''
import os, socket, sys

_RECORD = os.environ.get("OLDPHOTO_NETWORK_RECORD")
_IP = (socket.AF_INET, socket.AF_INET6)


def _record(what, target):
    line = {"pid": os.getpid(), "argv0": " ".join(sys.argv), "call": what,
            "target": repr(target)}
    import json
    with open(_RECORD, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(line) + "\n")
    raise OSError(101, f"network access blocked by the no-network test: {what} {target!r}")


if _RECORD:
    _connect, _connect_ex, _sendto = (socket.socket.connect, socket.socket.connect_ex,
                                      socket.socket.sendto)

    def connect(self, address):
        if self.family in _IP:
            _record("connect", address)
        return _connect(self, address)

    def connect_ex(self, address):
        if self.family in _IP:
            _record("connect_ex", address)
        return _connect_ex(self, address)

    def sendto(self, data, *args):
        if self.family in _IP:
            _record("sendto", args[-1])
        return _sendto(self, data, *args)

    def getaddrinfo(host, *args, **kwargs):
        _record("getaddrinfo", host)

    def gethostbyname(host, *args):
        _record("gethostbyname", host)

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.socket.sendto = sendto
    socket.getaddrinfo = getaddrinfo
    socket.gethostbyname = gethostbyname
    socket.gethostbyname_ex = gethostbyname
'''

NETWORK_MODULES = {"urllib", "urllib3", "requests", "http", "httpx", "aiohttp", "socket",
                   "ftplib", "smtplib", "ssl", "websocket", "websockets", "huggingface_hub"}
NOT_NETWORK = {"urllib.parse"}  # quoting and splitting strings; no I/O


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    try:
        return subprocess.run(["unshare", "--net", "true"], capture_output=True,
                              timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


UNSHARE = _unshare_works()


def run_offline(tmp: Path, config: dict, *args: str) -> tuple[subprocess.CompletedProcess, list]:
    """Run the workflow with the recording guard (and in a fresh network namespace if possible).

    Returns the process and the recorded network attempts (one dict each).
    """
    hook = tmp / "no-network-hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    record = tmp / "network-attempts.jsonl"
    record.unlink(missing_ok=True)
    work = tmp / "work"
    cmd, env = snakemake_invocation(work, config, *args, env={
        "PYTHONPATH": f"{hook}{os.pathsep}{REPO / 'src'}", "OLDPHOTO_NETWORK_RECORD": str(record)})
    if UNSHARE:
        cmd = ["unshare", "--net", *cmd]
    # Proxy settings would only matter for a connection; drop them so nothing depends on them.
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy",
                 "ALL_PROXY"):
        env.pop(name, None)
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=900, env=env)
    attempts = []
    if record.is_file():
        attempts = [json.loads(line) for line in record.read_text().splitlines() if line]
    return proc, attempts


def _assert_ok(proc: subprocess.CompletedProcess, attempts: list) -> None:
    assert proc.returncode == 0, (
        f"offline run failed ({proc.returncode}; unshare={UNSHARE})\n{proc.stderr[-6000:]}")
    assert attempts == [], f"network access attempted: {attempts}"


def test_guard_is_active_in_snakemake_and_jobs(tmp_path):
    """The hook really is loaded by the interpreters the workflow starts (else a pass means
    nothing): a plain python under the same environment is blocked and recorded."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    record = tmp_path / "attempts.jsonl"
    env = dict(os.environ, PYTHONPATH=str(hook), OLDPHOTO_NETWORK_RECORD=str(record))
    code = ("import socket\n"
            "try:\n    socket.create_connection(('192.0.2.1', 80), timeout=1)\n"
            "except OSError as err:\n    print('blocked', err)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=60)
    assert "blocked by the no-network test" in proc.stdout, proc.stdout + proc.stderr
    assert "192.0.2.1" in record.read_text()


@pytest.mark.workflow
def test_classical_run_with_pretrained_faces_is_offline(tmp_path, recipe_checkpoints):
    """Every image rule once: classical scratch detection, restoration, face detection and
    blending, and (only the face checkpoint present, backend auto) the face network with its
    prepare_checkpoint job.  (The face must survive stage 1 to reach the face network, which
    the recipe weights' global restoration, noise by design, would not let it.)"""
    face_only = tmp_path / "checkpoints"
    face = "Face_Enhancement/checkpoints/Setting_9_epoch_100"
    shutil.copytree(recipe_checkpoints / face, face_only / face)
    make_tiny_photos(tmp_path / "in")
    for extra in ("no face.jpg", "scratched.png"):
        (tmp_path / "in" / extra).unlink()
    config = workflow_config(tmp_path, face_jobs="per_face", backend="auto", with_scratch=True,
                             checkpoints_dir=str(face_only))
    proc, attempts = run_offline(tmp_path, config)
    _assert_ok(proc, attempts)
    out = Path(config["output_dir"])
    assert (out / "final_output" / "face.png").is_file()
    assert "CLASSICAL for the global networks" in proc.stderr
    for rule in ("detect_scratches", "restore_global", "detect_faces", "enhance_face",
                 "blend_faces", "prepare_checkpoint"):
        assert any((out / "logs" / rule).glob("*.log")), rule
    assert "loaded Setting_9_epoch_100" in (out / "logs/enhance_face/face_1.log").read_text()


@pytest.mark.workflow
def test_pretrained_run_is_offline_even_with_downloads_allowed(tmp_path, recipe_checkpoints):
    """All checkpoints present in the official layout, allow_download on: prepare_checkpoint
    and the global networks run, nothing touches the network (the download rule exists but
    has nothing to do)."""
    make_tiny_photos(tmp_path / "in")
    for extra in ("no face.jpg", "scratched.png"):
        (tmp_path / "in" / extra).unlink()
    config = workflow_config(tmp_path, backend="pretrained", allow_download=True,
                             checkpoints_dir=str(recipe_checkpoints))
    proc, attempts = run_offline(tmp_path, config)
    _assert_ok(proc, attempts)
    out = Path(config["output_dir"])
    assert (out / "final_output" / "face.png").is_file()
    assert "backend pretrained" in proc.stderr
    assert not (out / "logs" / "download_checkpoints.log").exists()
    log = (out / "logs/restore_global/face.log").read_text()
    for name in ("VAE_A_quality", "mapping_quality", "VAE_B_quality"):
        assert f"loaded {name}" in log
        assert (Path(config["cache_dir"]) / f"{name}.safetensors").is_file()


@pytest.mark.workflow
def test_download_rule_is_the_only_network_access_and_fails_loudly(tmp_path):
    """Positive control: the download rule is what reaches for the network; offline it fails
    with a clear reason, and the attempt is on record as coming from that rule's job."""
    make_tiny_photos(tmp_path / "in")
    for extra in ("no face.jpg", "scratched.png"):
        (tmp_path / "in" / extra).unlink()
    config = workflow_config(tmp_path, backend="pretrained", allow_download=True)
    proc, attempts = run_offline(tmp_path, config)
    assert proc.returncode != 0
    assert attempts, "the download rule's access was not recorded"
    assert all("download_checkpoints" in a["argv0"] for a in attempts), attempts
    log = (Path(config["output_dir"]) / "logs" / "download_checkpoints.log").read_text()
    assert "download failed" in log and "blocked by the no-network test" in log, log
    assert "download failed" in proc.stderr
    assert not (Path(config["output_dir"]) / "final_output").exists()


# ---------------------------------------------------------------------------------------------
# Static: where the library may reach for the network


def _network_imports(path: Path) -> list[tuple[str, int, str | None]]:
    """(module, line, enclosing function or None) for every import of a network module."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []

    def visit(node, function):
        for child in ast.iter_child_nodes(node):
            inner = function
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner = child.name
            names = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom) and child.module and not child.level:
                names = [child.module]
            elif (isinstance(child, ast.Call) and child.args
                  and isinstance(child.args[0], ast.Constant)
                  and isinstance(child.args[0].value, str)
                  and ((isinstance(child.func, ast.Name) and child.func.id == "__import__")
                       or (isinstance(child.func, ast.Attribute)
                           and child.func.attr == "import_module"))):
                names = [child.args[0].value]
            for name in names:
                if name.split(".")[0] in NETWORK_MODULES and name not in NOT_NETWORK:
                    found.append((name, child.lineno, function))
            visit(child, inner)

    visit(tree, None)
    return found


def test_only_the_download_function_imports_network_modules():
    sources = sorted((REPO / "src" / "oldphoto").rglob("*.py"))
    sources += sorted((REPO / "workflow" / "scripts").glob("*.py"))
    assert len(sources) > 10
    allowed = {("download.py", "_download")}
    offenders, seen_download = [], False
    for path in sources:
        for module, line, function in _network_imports(path):
            if (path.name, function) in allowed and path.parent.name == "checkpoints":
                seen_download = True
                assert module == "urllib.request", (path, line, module)
                continue
            if path.parent.name == "review" and module.split(".")[0] in ("socket", "http"):
                # oldphoto review is a local web server: it binds to loopback by default and
                # serves the output folder (tests/workflow/test_review_process.py checks the
                # bind); it opens no connection to the network
                continue
            if path.parent.name == "worker" and module == "socket":
                # the warm workers talk over AF_UNIX sockets on this machine (the dynamic tests
                # above record any connect/getaddrinfo to the network)
                continue
            offenders.append(f"{path.relative_to(REPO)}:{line}: import {module}"
                             f" ({'in ' + function if function else 'at module level'})")
    assert not offenders, offenders
    # the one allowed import exists and is lazy (inside the function, not at module level)
    assert seen_download


def test_static_check_sees_imports():
    """The checker itself: module-level, lazy, from-imports and importlib are all found."""
    import tempfile

    code = ("import os\nimport urllib.request\nfrom http import client\n"
            "from urllib.parse import quote\n"
            "def f():\n    import requests\n    importlib.import_module('socket')\n")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.py"
        path.write_text(code)
        found = _network_imports(path)
    assert [(m, f) for m, _, f in found] == [("urllib.request", None), ("http", None),
                                              ("requests", "f"), ("socket", "f")]
