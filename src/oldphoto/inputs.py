"""Which files of an input folder are photos, the output name (stem) of each, and a run's share.

The official code derives output names with ``name[:-4]``, which cuts ``a.jpeg`` to ``a.j`` and
lets two photos overwrite each other (``docs/reference_facts.md``, "Input handling").  This
module replaces that: :func:`list_inputs` picks the photos out of a folder (skipping hidden
files, folders, sidecars and unknown extensions, each with a reason), names each output after the
full stem (``os.path.splitext``) and refuses two photos that would share an output name;
:func:`stem_problem` says why a stem cannot name output files or be a Snakemake wildcard.

A run's photos (:func:`discover_inputs`, :func:`load_folder`, :func:`shard_inputs`): the
folder's, or one shard's (``shard: 3/10``, :func:`shard_of`), listed once per run by the main
process, which records them in a manifest (:func:`write_manifest`) that cluster jobs read
instead of listing the folder again.  Nothing here reads an image file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from pathlib import Path
from typing import Any, Mapping, NamedTuple

from oldphoto.errors import ConfigError

__all__ = ["IMAGE_EXTENSIONS", "SIDECAR_EXTENSIONS", "InputSet", "stem_problem", "safe_stem",
           "list_inputs", "discover_inputs", "no_photos_reason", "parse_shard", "shard_of",
           "select_shard", "shard_inputs", "manifest_name", "write_manifest", "read_manifest",
           "load_folder"]

MANIFEST_NAME = "inputs.json"
"""The manifest of a run's input discovery (``inputs.shard-3of10.json`` for a shard)."""

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


# ---------------------------------------------------------------------------------------------
# A run's photos: discovery, shards, the manifest


def discover_inputs(input_dir: str | Path) -> InputSet:
    """The photos of a run (stem -> file), with the entries skipped and why.

    Raises ConfigError when the folder is missing, holds no photo (:func:`no_photos_reason`)
    or two photos would share an output name.
    """
    folder = Path(input_dir)
    if not folder.is_dir():
        raise ConfigError(folder, "input_dir is not a folder")
    inputs = list_inputs(folder)
    if not inputs.images:
        raise ConfigError(folder, no_photos_reason(inputs.skipped))
    return inputs


def no_photos_reason(skipped: list[tuple[Path, str]], shown: int = 5) -> str:
    """Why a folder gives no photo: it is empty, or what was skipped there and why."""
    if not skipped:
        return "no photo in this folder: it is empty (a mistyped path?)"
    listed = "; ".join(f"{Path(path).name} ({reason})" for path, reason in skipped[:shown])
    more = f"; and {len(skipped) - shown} more" if len(skipped) > shown else ""
    entries = "entry" if len(skipped) == 1 else "entries"
    return f"no photo in this folder: {len(skipped)} {entries} skipped: {listed}{more}"


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"3/10"`` -> ``(3, 10)``: the third of ten shards (1-based); None or "" -> None."""
    if text in (None, "", "all"):
        return None
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise ConfigError(None, f"shard must look like 3/10 (shard 3 of 10, 1-based), not {text!r}")
    return int(match.group(1)), int(match.group(2))


def shard_of(stem: str, count: int) -> int:
    """The shard (1-based, of ``count``) a photo belongs to: a hash of its stem, so adding photos
    to the folder never moves a photo to another shard."""
    digest = hashlib.sha1(stem.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def select_shard(images: Mapping[str, Path], shard: tuple[int, int] | None) -> dict[str, Path]:
    if shard is None:
        return dict(images)
    index, count = shard
    return {stem: path for stem, path in images.items() if shard_of(stem, count) == index}


def shard_inputs(config: Mapping[str, Any], folder: InputSet) -> InputSet:
    """The photos this run restores: the folder's, or its shard's (``shard: i/n``)."""
    shard = parse_shard(config.get("shard"))
    if shard is None:
        return folder
    return folder._replace(images=select_shard(folder.images, shard))


def manifest_name(shard: str | None) -> str:
    """``inputs.json``, or ``inputs.shard-3of10.json`` (shards may run at once)."""
    parsed = parse_shard(shard)
    return MANIFEST_NAME if parsed is None else f"inputs.shard-{parsed[0]}of{parsed[1]}.json"


def write_manifest(path: str | Path, input_dir: str | Path, inputs: InputSet) -> None:
    """The run's input discovery, for cluster jobs to read instead of listing the folder again."""
    from oldphoto.atomic import write_bytes_atomic

    # ASCII JSON: file names that are not UTF-8 (surrogate escapes) survive as \udcXX escapes
    text = json.dumps({
        "input_dir": str(Path(input_dir).resolve()),
        "images": {stem: os.fsdecode(p) for stem, p in inputs.images.items()},
        "skipped": [[os.fsdecode(p), r] for p, r in inputs.skipped],
    }, ensure_ascii=True)
    write_bytes_atomic(path, text.encode("ascii"))


def read_manifest(path: str | Path, input_dir: str | Path) -> InputSet | None:
    """The discovery a run's main process recorded, or None when absent or for another folder."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    if data.get("input_dir") != str(Path(input_dir).resolve()):
        return None
    return InputSet({stem: Path(p) for stem, p in data["images"].items()},
                    [(Path(p), r) for p, r in data["skipped"]])


def load_folder(config: Mapping[str, Any], manifest: str | Path, *,
                reuse_manifest: bool) -> InputSet:
    """Every photo of the input folder: from the manifest (cluster jobs) or the folder itself
    (the main process, once per run)."""
    inputs = read_manifest(manifest, config["input_dir"]) if reuse_manifest else None
    return discover_inputs(config["input_dir"]) if inputs is None else inputs
