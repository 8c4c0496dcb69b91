"""The record: every review decision, kept in SQLite in the output folder, append-only.

Schema (``review.sqlite``, docs/review.md "The record")::

    events(id, event_uuid, photo, action, undoes, reason, note, reviewer, decided_at,
           derivative, derivative_sha256, derivative_size, derivative_mtime_ns,
           master, master_sha256, settings, new_settings, software)
    samples(id, percent, seed, population, size, drawn_at, reviewer)
    meta(key, value)

``action`` is ``accepted``, ``rejected`` or ``undo`` (an undo names the event it takes back in
``undoes``).  Triggers refuse every UPDATE and DELETE of ``events`` and ``samples``: a decision
is never changed, only followed by a later one.  A photo's current decision is its latest
decision that no undo took back.

Durability: each decision is one transaction, committed (``synchronous=FULL``) before the
server answers, so a server killed right after answering has it.  The journal mode is WAL on a
local file system; on a network file system (NFS, SMB/CIFS, Lustre, ... — :data:`NETWORK_FS`),
where SQLite's WAL does not work, the rollback journal (``DELETE``) is used instead
(:func:`journal_mode_for`).
"""

from __future__ import annotations

import datetime as _dt
import json
import sqlite3
import uuid
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

SCHEMA_VERSION = "1"
ACTIONS = ("accepted", "rejected")
REASONS: dict[str, str] = {
    "scratches_left": "scratches left",
    "face_altered": "face altered",
    "colour_or_tone": "colour or tone wrong",
    "artefacts": "artefacts",
    "other": "other",
}
"""Rejection reasons: code (stored) -> label (shown)."""

NETWORK_FS = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "afs", "9p", "lustre", "gpfs", "beegfs",
    "ceph", "glusterfs", "fuse.glusterfs", "fuse.sshfs", "fuse.ceph", "fuse.cephfs", "fuse.s3fs",
    "fuse.rclone", "fuse.juicefs", "fuse.lizardfs", "fuse.moosefs", "panfs", "orangefs",
    "davfs", "fuse.davfs2", "virtiofs", "vboxsf", "fuse.gvfsd-fuse"})
"""File systems on which SQLite's WAL mode is unsafe (shared memory does not span hosts)."""

_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_uuid TEXT NOT NULL UNIQUE,
    photo TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('accepted', 'rejected', 'undo')),
    undoes INTEGER REFERENCES events(id),
    reason TEXT,
    note TEXT,
    reviewer TEXT NOT NULL,
    decided_at TEXT NOT NULL,
    derivative TEXT,
    derivative_sha256 TEXT,
    derivative_size INTEGER,
    derivative_mtime_ns INTEGER,
    master TEXT,
    master_sha256 TEXT,
    settings TEXT,
    new_settings TEXT,
    software TEXT
);
CREATE INDEX IF NOT EXISTS events_photo ON events(photo, id);
CREATE TABLE IF NOT EXISTS samples (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    percent REAL NOT NULL,
    seed INTEGER NOT NULL,
    population INTEGER NOT NULL,
    size INTEGER NOT NULL,
    drawn_at TEXT NOT NULL,
    reviewer TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS events_append_only_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'the review record is append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_append_only_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'the review record is append-only'); END;
CREATE TRIGGER IF NOT EXISTS samples_append_only_update BEFORE UPDATE ON samples
BEGIN SELECT RAISE(ABORT, 'the review record is append-only'); END;
CREATE TRIGGER IF NOT EXISTS samples_append_only_delete BEFORE DELETE ON samples
BEGIN SELECT RAISE(ABORT, 'the review record is append-only'); END;
"""


def utc_now() -> str:
    """Now, UTC, ISO 8601 to the second (``2026-12-06T22:14:03Z``)."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat() \
        .replace("+00:00", "Z")


def filesystem_type(path: str | Path, mounts: str | None = None) -> str | None:
    """The type of the file system holding ``path`` (the longest mount point above it in
    ``/proc/mounts``, or in ``mounts``, text in that format); None when unknown."""
    if mounts is None:
        try:
            mounts = Path("/proc/mounts").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
    target = Path(path).resolve()
    best, best_type = -1, None
    for line in mounts.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1].encode("utf-8").decode("unicode_escape")  # \040 for spaces
        point_path = Path(point)
        if (target == point_path or point_path in target.parents) and len(point) > best:
            best, best_type = len(point), parts[2]
    return best_type


def journal_mode_for(path: str | Path, mounts: str | None = None) -> str:
    """``wal`` on a local file system, ``delete`` (rollback journal) on a network one."""
    kind = filesystem_type(Path(path).parent, mounts)
    return "delete" if kind in NETWORK_FS else "wal"


@dataclass(frozen=True)
class Decision:
    """One photo's current decision (the latest event no undo took back)."""

    id: int
    event_uuid: str
    photo: str
    action: str
    reason: str | None
    note: str | None
    reviewer: str
    decided_at: str
    derivative: str | None
    derivative_sha256: str | None
    derivative_size: int | None
    derivative_mtime_ns: int | None
    master: str | None
    master_sha256: str | None
    settings: dict[str, Any]
    new_settings: dict[str, Any] | None


_COLUMNS = ("id", "event_uuid", "photo", "action", "reason", "note", "reviewer", "decided_at",
            "derivative", "derivative_sha256", "derivative_size", "derivative_mtime_ns",
            "master", "master_sha256", "settings", "new_settings")


def _decision(row: tuple) -> Decision:
    values = dict(zip(_COLUMNS, row))
    values["settings"] = json.loads(values["settings"] or "{}")
    values["new_settings"] = json.loads(values["new_settings"]) if values["new_settings"] \
        else None
    return Decision(**values)


class ReviewStore:
    """The record of one output folder (opened once per process; thread-safe: one connection
    per call, SQLite's locks between processes)."""

    def __init__(self, path: str | Path, *, mounts: str | None = None) -> None:
        self.path = Path(path)
        self.journal_mode = journal_mode_for(self.path, mounts)
        with closing(self._connect()) as db:
            mode = db.execute(f"PRAGMA journal_mode={self.journal_mode}").fetchone()[0]
            self.journal_mode = str(mode).lower()
            db.executescript(_DDL)
            db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                       (SCHEMA_VERSION,))
            db.execute("INSERT OR IGNORE INTO meta VALUES ('created', ?)", (utc_now(),))

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                             check_same_thread=False)
        db.execute("PRAGMA busy_timeout=30000")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        return db

    # -- writing ------------------------------------------------------------------------------
    def record(self, *, photo: str, action: str, reviewer: str, reason: str | None = None,
               note: str | None = None, derivative: str | None = None,
               derivative_sha256: str | None = None, derivative_size: int | None = None,
               derivative_mtime_ns: int | None = None, master: str | None = None,
               master_sha256: str | None = None, settings: Mapping[str, Any] | None = None,
               new_settings: Mapping[str, Any] | None = None,
               software: str | None = None, decided_at: str | None = None) -> Decision:
        """Append a decision (committed before it returns) and return it."""
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}, not {action!r}")
        if action == "rejected" and reason not in REASONS:
            raise ValueError(f"a rejection needs a reason from {sorted(REASONS)}, not {reason!r}")
        if action == "accepted":
            reason = None
        with closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            cursor = db.execute(
                "INSERT INTO events (event_uuid, photo, action, reason, note, reviewer, "
                "decided_at, derivative, derivative_sha256, derivative_size, derivative_mtime_ns,"
                " master, master_sha256, settings, new_settings, software) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (str(uuid.uuid4()), photo, action, reason, note or None, reviewer,
                 decided_at or utc_now(), derivative, derivative_sha256, derivative_size,
                 derivative_mtime_ns, master, master_sha256,
                 json.dumps(dict(settings or {}), sort_keys=True),
                 json.dumps(dict(new_settings), sort_keys=True) if new_settings else None,
                 software))
            db.execute("COMMIT")
            row = db.execute(f"SELECT {', '.join(_COLUMNS)} FROM events WHERE id = ?",
                             (cursor.lastrowid,)).fetchone()
        return _decision(row)

    def undo_last(self, reviewer: str) -> Decision | None:
        """Take back ``reviewer``'s latest decision that is still in force; returns it (None
        when there is none)."""
        with closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute(
                f"SELECT {', '.join('e.' + c for c in _COLUMNS)} FROM events e "
                "WHERE e.reviewer = ? AND e.action IN ('accepted', 'rejected') "
                "AND NOT EXISTS (SELECT 1 FROM events u WHERE u.undoes = e.id) "
                "ORDER BY e.id DESC LIMIT 1", (reviewer,)).fetchone()
            if row is None:
                db.execute("ROLLBACK")
                return None
            db.execute(
                "INSERT INTO events (event_uuid, photo, action, undoes, reviewer, decided_at) "
                "VALUES (?, ?, 'undo', ?, ?, ?)",
                (str(uuid.uuid4()), row[2], row[0], reviewer, utc_now()))
            db.execute("COMMIT")
        return _decision(row)

    def record_sample(self, *, percent: float, seed: int, population: int, size: int,
                      reviewer: str) -> None:
        with closing(self._connect()) as db:
            db.execute("INSERT INTO samples (percent, seed, population, size, drawn_at, "
                       "reviewer) VALUES (?, ?, ?, ?, ?, ?)",
                       (percent, seed, population, size, utc_now(), reviewer))

    # -- reading ------------------------------------------------------------------------------
    def current(self, photos: Iterable[str] | None = None) -> dict[str, Decision]:
        """photo -> its current decision (photos never decided, or whose decisions were all
        undone, are absent)."""
        with closing(self._connect()) as db:
            rows = db.execute(
                f"SELECT {', '.join('e.' + c for c in _COLUMNS)} FROM events e "
                "WHERE e.action IN ('accepted', 'rejected') "
                "AND NOT EXISTS (SELECT 1 FROM events u WHERE u.undoes = e.id) "
                "ORDER BY e.id").fetchall()
        wanted = set(photos) if photos is not None else None
        result: dict[str, Decision] = {}
        for row in rows:
            if wanted is None or row[2] in wanted:
                result[row[2]] = _decision(row)  # later ids replace earlier ones
        return result

    def decisions(self) -> list[Decision]:
        """Every decision that no undo took back, oldest first (the history PREMIS exports)."""
        with closing(self._connect()) as db:
            rows = db.execute(
                f"SELECT {', '.join('e.' + c for c in _COLUMNS)} FROM events e "
                "WHERE e.action IN ('accepted', 'rejected') "
                "AND NOT EXISTS (SELECT 1 FROM events u WHERE u.undoes = e.id) "
                "ORDER BY e.id").fetchall()
        return [_decision(row) for row in rows]

    def history(self, photo: str) -> list[dict[str, Any]]:
        """Every event of one photo, oldest first, as plain dicts (undos included)."""
        with closing(self._connect()) as db:
            db.row_factory = sqlite3.Row
            rows = db.execute("SELECT * FROM events WHERE photo = ? ORDER BY id",
                              (photo,)).fetchall()
        return [dict(row) for row in rows]

    def latest_sample(self) -> dict[str, Any] | None:
        with closing(self._connect()) as db:
            db.row_factory = sqlite3.Row
            row = db.execute("SELECT * FROM samples ORDER BY id DESC LIMIT 1").fetchone()
        return dict(row) if row else None
