"""The sha256 of a file, as provenance records (a master's ``source_sha256``) and the checkpoint
cache's verification records (official file and cache file) state it."""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 8 << 20


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, streamed in 8 MiB chunks (the file is opened read-only)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
