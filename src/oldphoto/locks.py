"""Who holds an output folder: Snakemake's lock, the run that took it, and when it may go.

Snakemake locks its working directory while it runs (numbered files in ``.snakemake/locks/``) and
removes the lock when it ends.  After ``kill -9`` or a power cut the lock stays, and plain
``snakemake`` refuses to start until ``snakemake --unlock``.  The ``oldphoto`` command resumes
without that ceremony, but only when it *knows* the lock's owner is dead: a run may be alive on
another node of a cluster (the folder on shared storage) or in another PID namespace (a
container), and neither shows in this machine's ``/proc``.

When ``oldphoto`` starts a run it

- takes an exclusive ``flock`` on ``.oldphoto/owner.lock`` and holds it for the whole run; its
  Snakemake process inherits the descriptor, so the lock is held while either lives (the kernel
  drops it when both are gone, also after SIGKILL);
- writes an **owner record** beside Snakemake's lock, ``.snakemake/locks/oldphoto-owner.json``:
  host name, boot id (``/proc/sys/kernel/random/boot_id``), PID namespace, its pid and process
  start time (field 22 of ``/proc/<pid>/stat``, so a reused pid is never taken for the owner),
  then its Snakemake's, the user and the time.  The record appears whole or not at all (written
  to a temporary name, then ``link()``-ed, which fails when a record exists: of two starts, one
  wins);
- removes the record when the run ends (Snakemake removes its whole lock folder at a normal end,
  and ``snakemake --unlock`` does too).  A Snakemake killed by a signal leaves its lock, and the
  record stays with it, naming processes that are gone.

A later ``oldphoto`` judges a leftover lock (:func:`judge_owner`) and removes it only when the
owner is **dead**: the record names this host and boot, its ``flock`` is free, and its processes
are gone (pid absent, or present with another start time) — or, recorded in another PID namespace
of this kernel, its ``flock`` is free (the kernel dropped it: the owner is gone).  A held
``flock`` or a live process means **alive**; another host or boot, an unreadable record, or a
Snakemake lock without a record (plain ``snakemake``, another tool) mean **unknown**.  Alive and
unknown stop the run before any work (:class:`FolderInUse`), naming the owner and the way out:
``oldphoto --unlock`` or ``snakemake --unlock``, to be used only when no run is alive anywhere.

What is guaranteed, and where (docs/resume.md): on one kernel — other PID namespaces and
containers sharing the folder included — two ``oldphoto`` never work in one folder at once (the
``flock``).  Across machines the owner record decides: a record of another host is never taken
for dead, and of two machines starting at once one wins the record (``link()`` is atomic on NFS
too).  ``flock`` over NFS is only as good as the server's lock manager: where it is unreliable
(``nolock`` mounts) the record still keeps other machines out; a machine never removes another
machine's lock.

Also the non-blocking ``flock`` that GPU slots (:mod:`oldphoto.devices`) and worker slots
(:mod:`oldphoto.worker.client`) are taken with; standard library only, as the job client needs.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import time
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple

from oldphoto.worker.procs import process_alive, process_start_time

OWNER_RECORD = "oldphoto-owner.json"
"""The owner record's name, in Snakemake's lock folder ``.snakemake/locks/``."""
OWNER_FLOCK = Path(".oldphoto") / "owner.lock"
"""The file the running ``oldphoto`` holds its ``flock`` on (never removed: a new inode would be a
second, independent lock)."""
_SNAKEMAKE_LOCK = re.compile(r"^[0-9]+\.(input|output)\.lock$")
_NO_FLOCK = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)


def try_flock(path: str | Path, mode: int = 0o600) -> int | None:
    """Take an exclusive ``flock`` on ``path`` (created with ``mode`` if missing) without waiting:
    the open descriptor holding it, or None when another process holds it.  The kernel drops the
    lock when the descriptor is closed or its process dies, also on SIGKILL."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, mode)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        os.close(fd)
        if err.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return None
        raise
    return fd


def _cmdline(pid: str) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [os.fsdecode(part) for part in raw.split(b"\0") if part]


def is_snakemake(argv: list[str]) -> bool:
    """``snakemake ...``, ``python -m snakemake ...`` or a ``.../bin/snakemake`` script."""
    for i, arg in enumerate(argv[:3]):
        if Path(arg).name == "snakemake":
            return True
        if arg == "-m" and i + 1 < len(argv) and argv[i + 1] == "snakemake":
            return True
    return False


def snakemake_processes(workdir: str | Path) -> list[int]:
    """Pids of the Snakemake processes on this machine whose working directory is ``workdir``
    (those this ``/proc`` shows: this PID namespace only)."""
    target = os.path.realpath(workdir)
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        if not is_snakemake(_cmdline(entry)):
            continue
        try:
            cwd = os.path.realpath(os.readlink(f"/proc/{entry}/cwd"))
        except OSError:
            continue
        if cwd == target:
            pids.append(int(entry))
    return pids


def lock_files(workdir: str | Path) -> list[Path]:
    """Snakemake's lock files of ``workdir`` (``.snakemake/locks/<n>.{input,output}.lock``)."""
    folder = Path(workdir) / ".snakemake" / "locks"
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if _SNAKEMAKE_LOCK.match(path.name))


def owner_record_path(workdir: str | Path) -> Path:
    return Path(workdir) / ".snakemake" / "locks" / OWNER_RECORD


# ------------------------------------------------------------------------------------------------
# Who and where
# ------------------------------------------------------------------------------------------------
class Machine(NamedTuple):
    """Where a process runs, as far as a lock's owner can be checked: the host name, the boot
    (a kernel: containers on one host share it) and the PID namespace (which pids ``/proc``
    shows)."""

    host: str
    boot_id: str
    pid_namespace: str


def this_machine() -> Machine:
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot_id = ""
    try:
        pid_namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        pid_namespace = ""
    return Machine(os.uname().nodename, boot_id, pid_namespace)  # = gethostname()


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return str(os.getuid())


def new_owner_record(machine: Machine, *, flock: bool, token: str,
                     now: float | None = None) -> dict[str, Any]:
    """The record of this process as the owner of a run."""
    now = time.time() if now is None else now
    pid = os.getpid()
    return {
        "host": machine.host, "boot_id": machine.boot_id, "pid_namespace": machine.pid_namespace,
        "pid": pid, "starttime": process_start_time(pid), "snakemake": None,
        "user": _user(), "uid": os.getuid(),
        "since": time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(now)), "since_epoch": now,
        "flock": flock, "token": token,
    }


class Verdict(NamedTuple):
    """What is known about a lock's owner: ``"dead"``, ``"alive"`` or ``"unknown"``, and why."""

    state: str
    reason: str


def _processes(record: Mapping[str, Any]) -> list[tuple[int, int | None]]:
    found = [(int(record["pid"]), record.get("starttime"))]
    snakemake = record.get("snakemake")
    if isinstance(snakemake, Mapping) and snakemake.get("pid"):
        found.append((int(snakemake["pid"]), snakemake.get("starttime")))
    return found


def judge_owner(record: Mapping[str, Any] | None, here: Machine, *, flock: str,
                alive: Callable[[int, int | None], bool] = process_alive) -> Verdict:
    """Is the run that owns a lock dead?  ``record`` is its owner record (None: the lock has none;
    ``{}``: unreadable), ``here`` this process's machine, ``flock`` the state of the folder's
    ``flock`` as this process found it (``"held"`` by another process, ``"free"``, or
    ``"unsupported"`` by the file system), ``alive(pid, starttime)`` the process check.

    Only ``"dead"`` lets a lock be removed."""
    if flock == "held":
        return Verdict("alive", "a process on this machine holds the folder's lock "
                                f"({OWNER_FLOCK})")
    if record is None:
        return Verdict("unknown", "Snakemake's lock has no oldphoto owner record: a plain "
                                  "snakemake or another tool took it, and whether that run is "
                                  "alive cannot be told from here")
    try:
        processes = _processes(record)
        host, boot, namespace = record["host"], record["boot_id"], record["pid_namespace"]
    except (KeyError, TypeError, ValueError):
        return Verdict("unknown", "the owner record is unreadable")
    if host != here.host:
        return Verdict("unknown", f"the run was started on host {host}, not this one "
                                  f"({here.host}): it cannot be checked from here")
    if not boot or boot != here.boot_id:
        return Verdict("unknown", f"the run was started on host {host} during another boot "
                                  f"({boot or 'unknown'}; now {here.boot_id or 'unknown'}): "
                                  "the same name may be another machine")
    if namespace and namespace == here.pid_namespace:
        running = [pid for pid, start in processes if alive(pid, start)]
        if running:
            return Verdict("alive", f"process {running[0]} of that run is still running")
        return Verdict("dead", "its processes are gone (" + ", ".join(
            f"pid {pid}" for pid, _ in processes) + ")")
    if flock == "free" and record.get("flock"):
        return Verdict("dead", f"it ran in another PID namespace ({namespace}) of this machine "
                               "and its lock is free: the kernel drops it when the run ends")
    return Verdict("unknown", f"it runs in another PID namespace ({namespace or 'unknown'}) "
                              "whose processes cannot be seen from here, and it held no flock")


def describe_owner(record: Mapping[str, Any] | None, locks: list[Path] = ()) -> str:
    """One line naming a lock's owner: host, pids, user, since when."""
    if record is None and not locks:
        return "not recorded yet (a run that is just starting)"
    if record is None:
        since = ""
        if locks:
            try:
                stamp = min(path.stat().st_mtime for path in locks)
                since = time.strftime(" since %Y-%m-%d %H:%M:%S %z", time.localtime(stamp))
            except OSError:
                pass
        names = ", ".join(path.name for path in locks)
        return f"unknown (Snakemake lock files {names}{since}, no owner record)"
    if not record:
        return "unknown (the owner record is unreadable)"
    snakemake = record.get("snakemake") or {}
    pids = f"oldphoto pid {record.get('pid', '?')}"
    if snakemake.get("pid"):
        pids += f", Snakemake pid {snakemake['pid']}"
    return (f"{pids} on host {record.get('host', '?')} (user {record.get('user', '?')}), "
            f"since {record.get('since', '?')}")


class FolderInUse(Exception):
    """An output folder whose lock's owner is alive or cannot be judged: nothing may be done."""

    def __init__(self, workdir: str | Path, record: Mapping[str, Any] | None,
                 verdict: Verdict, locks: list[Path] = ()) -> None:
        self.workdir = Path(workdir)
        self.record = record
        self.verdict = verdict
        self.owner = describe_owner(record, list(locks))
        super().__init__(f"{self.workdir} is locked by a run that is {verdict.state}: "
                         f"{self.owner}; {verdict.reason}")


# ------------------------------------------------------------------------------------------------
# The record on disk
# ------------------------------------------------------------------------------------------------
def _flock(workdir: Path) -> tuple[int | None, str]:
    """(descriptor holding the folder's flock or None, ``"free"``/``"held"``/``"unsupported"``);
    ``"free"`` means this process holds it now."""
    path = workdir / OWNER_FLOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = try_flock(path, 0o644)
    except OSError as err:
        if err.errno in _NO_FLOCK:
            return None, "unsupported"
        raise
    return (fd, "free") if fd is not None else (None, "held")


def read_owner_record(workdir: str | Path) -> tuple[dict[str, Any] | None, bytes | None]:
    """The owner record (``{}`` when unreadable) and its bytes; ``(None, None)`` when absent."""
    try:
        raw = owner_record_path(workdir).read_bytes()
    except FileNotFoundError:
        return None, None
    try:
        record = json.loads(raw)
    except ValueError:
        return {}, raw
    return (record if isinstance(record, dict) else {}), raw


def _write_temp(path: Path, record: Mapping[str, Any]) -> Path:
    temp = path.with_name(f".{path.name}.{record['token']}.{os.urandom(4).hex()}.tmp")
    with open(temp, "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=1)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    return temp


def _publish(path: Path, record: Mapping[str, Any]) -> bool:
    """Create the record at ``path`` whole, unless one exists (then False)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = _write_temp(path, record)
    try:
        os.link(temp, path)
        return True
    except FileExistsError:
        return False
    except OSError:
        # NFS: a retransmitted link() may report an error for a link that was made
        if os.stat(temp).st_nlink == 2:
            return True
        raise
    finally:
        temp.unlink()


def _retire(path: Path, expected: bytes) -> bool:
    """Remove the record at ``path`` if it still holds ``expected`` (the record judged dead);
    a record that changed meanwhile is put back and False returned."""
    grave = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.stale")
    try:
        os.rename(path, grave)
    except FileNotFoundError:
        return True
    try:
        if grave.read_bytes() == expected:
            return True
        try:
            os.link(grave, path)
        except FileExistsError:
            pass
        return False
    finally:
        grave.unlink()


def _remove(paths: list[Path]) -> list[Path]:
    removed = []
    for path in paths:
        try:
            path.unlink()
            removed.append(path)
        except FileNotFoundError:
            continue
    return removed


class Ownership:
    """This process's claim on an output folder: the held ``flock`` and the owner record.

    Pass :attr:`pass_fds` to the Snakemake process (so the lock lives while it does), tell
    :meth:`started` its pid and :meth:`ended` its exit status, and :meth:`release` at the end."""

    def __init__(self, workdir: Path, fd: int | None, record: dict[str, Any]) -> None:
        self.workdir = workdir
        self.fd = fd
        self.record = record
        self.killed = False

    @property
    def pass_fds(self) -> tuple[int, ...]:
        return () if self.fd is None else (self.fd,)

    def started(self, pid: int) -> None:
        """Add the Snakemake process ``pid`` to the record (while the record is still ours)."""
        self.record["snakemake"] = {"pid": pid, "starttime": process_start_time(pid)}
        path = owner_record_path(self.workdir)
        current, _ = read_owner_record(self.workdir)
        if not current or current.get("token") != self.record["token"]:
            return  # gone already (Snakemake ended and removed its lock folder)
        try:
            os.replace(_write_temp(path, self.record), path)
        except FileNotFoundError:
            pass

    def ended(self, returncode: int) -> None:
        """Snakemake ended; killed by a signal, it left its lock behind."""
        self.killed = self.killed or returncode < 0

    def release(self) -> None:
        """Remove the owner record (unless Snakemake was killed: then its lock stays, and the
        record with it, naming processes that are gone) and drop the ``flock``."""
        try:
            current, raw = read_owner_record(self.workdir)
            if not self.killed and raw is not None and current \
                    and current.get("token") == self.record["token"]:
                _retire(owner_record_path(self.workdir), raw)
        finally:
            if self.fd is not None:
                os.close(self.fd)
                self.fd = None


def take_ownership(workdir: str | Path, *, dry_run: bool = False
                   ) -> tuple[Ownership | None, list[str]]:
    """Claim ``workdir`` for a run: ``(ownership, what was removed)``.

    A lock whose owner is dead (:func:`judge_owner`) is removed with its record; any other lock,
    or a live owner record without a Snakemake lock (a run between its start and Snakemake's
    lock), raises :class:`FolderInUse` before anything is changed.  With ``dry_run`` the folder
    is judged the same way, but nothing is removed or written (returns ``(None, [])``)."""
    workdir = Path(workdir)
    here = this_machine()
    fd, flock = _flock(workdir)
    try:
        record, raw = read_owner_record(workdir)
        locks = lock_files(workdir)
        if raw is not None or locks or flock == "held":
            verdict = judge_owner(record, here, flock=flock)
            if verdict.state != "dead":
                raise FolderInUse(workdir, record, verdict, locks)
            busy = snakemake_processes(workdir)
            if busy:
                raise FolderInUse(workdir, record, Verdict(
                    "alive", f"Snakemake process {busy[0]} on this machine works in it"), locks)
        if dry_run:
            return None, []
        removed = []
        token = os.urandom(8).hex()
        mine = new_owner_record(here, flock=flock == "free", token=token)
        path = owner_record_path(workdir)
        if raw is not None:
            if not _retire(path, raw):
                record, _ = read_owner_record(workdir)
                raise FolderInUse(workdir, record, Verdict(
                    "alive", "another run took the folder at the same moment"), locks)
            removed.append(f"the owner record of a dead run ({describe_owner(record)})")
        if not _publish(path, mine):
            record, _ = read_owner_record(workdir)
            raise FolderInUse(workdir, record, Verdict(
                "alive", "another run took the folder at the same moment"), locks)
        removed += [f"the stale Snakemake lock {lock}" for lock in _remove(locks)]
        ownership, fd = Ownership(workdir, fd, mine), None
        return ownership, removed
    finally:
        if fd is not None:
            os.close(fd)


def unlock(workdir: str | Path) -> list[str]:
    """``oldphoto --unlock``: remove Snakemake's lock files and the owner record of ``workdir``,
    for when no run is alive anywhere; returns what was removed.  Refuses (:class:`FolderInUse`)
    only when a run is provably alive on this machine (its ``flock`` held, or its process
    running)."""
    workdir = Path(workdir)
    if not workdir.is_dir():
        return []
    here = this_machine()
    fd, flock = _flock(workdir)
    try:
        record, raw = read_owner_record(workdir)
        locks = lock_files(workdir)
        if raw is not None or flock == "held":
            verdict = judge_owner(record, here, flock=flock)
            if verdict.state == "alive":
                raise FolderInUse(workdir, record, verdict, locks)
        busy = snakemake_processes(workdir)
        if busy:
            raise FolderInUse(workdir, record, Verdict(
                "alive", f"Snakemake process {busy[0]} on this machine works in it"), locks)
        removed = [f"Snakemake lock {lock}" for lock in _remove(locks)]
        if raw is not None:
            owner = describe_owner(record)
            if _remove([owner_record_path(workdir)]):
                removed.append(f"owner record {owner_record_path(workdir)} ({owner})")
        return removed
    finally:
        if fd is not None:
            os.close(fd)
