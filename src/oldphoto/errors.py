"""One exception type per kind of user-facing failure.

Each carries the file it concerns and a one-line reason; the workflow scripts turn them into a
single clear log line (``ERROR <file>: <reason>``) and a non-zero exit of that job only.
"""

from __future__ import annotations

from pathlib import Path


class OldPhotoError(Exception):
    """Base class: a failure with a file and a human-readable reason."""

    kind = "error"

    def __init__(self, path: str | Path | None, reason: str) -> None:
        self.path = None if path is None else str(path)
        self.reason = reason
        super().__init__(self.one_line())

    def one_line(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.kind}: {where}{self.reason}"


class BadImageError(OldPhotoError):
    """An input image that cannot be decoded or processed (corrupt, truncated, too large, ...)."""

    kind = "bad image"


class CheckpointError(OldPhotoError):
    """A checkpoint file that is missing, has the wrong layout, or changed after verification."""

    kind = "bad checkpoint"


class ConfigError(OldPhotoError):
    """An invalid configuration or input set (e.g. two inputs mapping to one output name)."""

    kind = "bad configuration"


class MissingRequirementError(OldPhotoError):
    """A library, program or model file the run needs is not installed
    (:mod:`oldphoto.requirements`)."""

    kind = "missing requirement"
