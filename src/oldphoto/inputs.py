"""Which files of an input folder are photos, and the output name (stem) of each.

The official code derives output names with ``name[:-4]``, which cuts ``a.jpeg`` to ``a.j`` and
lets two photos overwrite each other (``docs/reference_facts.md``, "Input handling").  This
module replaces that: :func:`list_inputs` picks the photos out of a folder (skipping hidden
files, folders, sidecars and unknown extensions, each with a reason), names each output after the
full stem (``os.path.splitext``) and refuses two photos that would share an output name;
:func:`stem_problem` says why a stem cannot name output files or be a Snakemake wildcard.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path
from typing import NamedTuple

from oldphoto.errors import ConfigError

__all__ = ["IMAGE_EXTENSIONS", "SIDECAR_EXTENSIONS", "InputSet", "stem_problem", "safe_stem",
           "list_inputs"]

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif"})
"""File extensions taken as photos (lower case, with the dot; matched case-insensitively)."""

SIDECAR_EXTENSIONS = frozenset({
    ".xmp", ".txt", ".json", ".xml", ".aae", ".thm", ".pp3", ".dop", ".csv", ".md", ".ini",
    ".db", ".log", ".yaml", ".yml",
})
"""Metadata files that commonly sit next to photos; skipped with a 'sidecar' reason."""


class InputSet(NamedTuple):
    """The photos of an input folder.

    Attributes:
        images: output stem -> file, in sorted stem order.
        skipped: (entry, reason) for every other entry of the folder, in sorted name order.

    A NamedTuple, so ``images, skipped = list_inputs(folder)`` works too.
    """

    images: dict[str, Path]
    skipped: list[tuple[Path, str]]


def stem_problem(stem: str) -> str | None:
    """Why ``stem`` cannot name output files and be a Snakemake wildcard value, or None.

    Spaces, quotes, brackets, ``$``, ``%``, ``,``, non-ASCII letters and leading dashes are
    fine (checked with Snakemake 9 running ``script:`` jobs).  Refused, each for a reason seen
    in practice:

    * empty, ``.``/``..``, or containing ``/`` or NUL: not a file name;
    * ``{`` ``}``: Snakemake reads them as a wildcard in ``rule all``'s input, and the whole
      DAG fails to build ("Wildcards in input files cannot be determined");
    * ``<`` ``>``: Snakemake 9 expands ``<name>`` as a path variable (UndefinedPathvarException);
    * control characters (newline, tab, ...): the job's wildcards no longer match its output;
    * not encodable as UTF-8 (a Latin-1 name the OS hands over with surrogate escapes): breaks
      JSON and PNG text records downstream.
    """
    if not stem or stem in (".", ".."):
        return "empty output name"
    if "/" in stem or "\0" in stem:
        return "contains '/' or NUL"
    if any(ch in stem for ch in "{}<>"):
        return "contains { } < or >, which Snakemake reads as wildcards or path variables"
    if any(unicodedata.category(ch) == "Cc" for ch in stem):
        return "contains control characters (newline, tab, ...)"
    try:
        stem.encode("utf-8")
    except UnicodeEncodeError:
        return "not valid UTF-8 (rename the file)"
    return None


def safe_stem(stem: str) -> bool:
    """Whether ``stem`` can name output files and be a Snakemake wildcard (see stem_problem)."""
    return stem_problem(stem) is None


def _skip_reason(entry: os.DirEntry) -> str | None:
    """Why a folder entry is not a photo, or None if it is one."""
    name = entry.name
    if name.startswith("."):
        return "hidden file" if not entry.is_dir() else "hidden folder"
    if entry.is_dir():
        return "folder (subfolders are not searched)"
    if not entry.is_file():
        if entry.is_symlink():
            return "broken symbolic link"
        return "not a regular file"
    ext = os.path.splitext(name)[1].lower()
    if ext in IMAGE_EXTENSIONS:
        return None
    if ext in SIDECAR_EXTENSIONS:
        return f"sidecar/metadata file ({ext})"
    if not ext:
        return "no file extension"
    return f"unknown extension {ext!r} (photos: {', '.join(sorted(IMAGE_EXTENSIONS))})"


def _collision_key(stem: str) -> str:
    # Case-insensitive and normalisation-insensitive file systems (macOS, Windows) would write
    # "A.png" and "a.png", or a composed and a decomposed "é", to the same file.
    return unicodedata.normalize("NFC", stem).casefold()


def list_inputs(input_dir: str | Path) -> InputSet:
    """The photos directly inside ``input_dir``, keyed by output stem, and what was skipped.

    The stem is the name without its last extension (``a.jpeg`` → ``a``, ``a.b.png`` → ``a.b``).
    Extensions are matched case-insensitively against :data:`IMAGE_EXTENSIONS`.  Contents are not
    looked at here: a broken ``.jpg`` is listed and fails alone when decoded.

    Raises:
        ConfigError: ``input_dir`` is not a folder, or two photos would be written to the same
            output name (same stem, also after case folding and Unicode normalisation); the
            message names every file involved.  Raised before any work is done.
    """
    folder = Path(input_dir)
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        raise ConfigError(folder, "input folder does not exist or is not a folder") from None
    except OSError as err:
        raise ConfigError(folder, f"cannot list input folder: {err.strerror or err}") from None

    candidates: dict[str, list[Path]] = {}
    stems: dict[Path, str] = {}
    skipped: list[tuple[Path, str]] = []
    for entry in entries:
        path = Path(entry.path)
        try:
            reason = _skip_reason(entry)
        except OSError as err:
            reason = f"cannot inspect entry: {err.strerror or err}"
        stem = os.path.splitext(entry.name)[0]
        if reason is None and (problem := stem_problem(stem)) is not None:
            reason = f"name unusable for outputs: {problem}"
        if reason is not None:
            skipped.append((path, reason))
            continue
        candidates.setdefault(_collision_key(stem), []).append(path)
        stems[path] = stem

    clashes = [paths for paths in candidates.values() if len(paths) > 1]
    if clashes:
        described = "; ".join(
            " and ".join(repr(p.name) for p in paths)
            + f" would {'both' if len(paths) == 2 else 'all'} be written as "
            f"'{stems[paths[0]]}.png'"
            for paths in clashes
        )
        raise ConfigError(folder, f"photos with the same output name: {described}; "
                                  "rename all but one of each")

    images = {stems[paths[0]]: paths[0] for paths in candidates.values()}
    return InputSet(images=dict(sorted(images.items())), skipped=skipped)
