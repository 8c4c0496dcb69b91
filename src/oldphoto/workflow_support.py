"""What the Snakefile computes at DAG-build time: inputs, backend choice, paths, run summary.

Kept free of heavy imports (no torch, dlib or cv2): building the DAG of a thousand photos must stay
fast.  Every function is plain Python on the config dict and tested without Snakemake.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

from oldphoto import __version__
from oldphoto.errors import CheckpointError, ConfigError

NETWORK_RULES = ("detect_scratches", "restore_global", "enhance_face", "enhance_faces")
SUMMARY_NAME = "run_summary.json"


def discover_inputs(input_dir: str | Path):
    """The photos of a run (stem -> file), with the entries skipped and why.

    Raises ConfigError when the folder is missing or two photos would share an output name.
    """
    from oldphoto.imageio import list_inputs

    folder = Path(input_dir)
    if not folder.is_dir():
        raise ConfigError(folder, "input_dir is not a folder")
    return list_inputs(folder)


_TRUTH = {"true": True, "yes": True, "on": True, "1": True,
          "false": False, "no": False, "off": False, "0": False}


def coerce_booleans(config: dict, schema_path: str, basedir: str | Path = ".") -> None:
    """Turn command-line strings such as ``with_scratch=true`` into booleans, in place.

    Snakemake's ``--config key=value`` parses only Python literals (``True``), so the spelling
    users type (``true``, ``yes``) would fail the schema.  Only keys the schema declares boolean
    are touched, and only recognised spellings; anything else is left for the schema to reject.
    """
    import yaml

    with open(Path(basedir) / schema_path, encoding="utf-8") as handle:
        schema = yaml.safe_load(handle)
    for key, spec in schema.get("properties", {}).items():
        value = config.get(key)
        if spec.get("type") == "boolean" and isinstance(value, str):
            if value.strip().lower() in _TRUTH:
                config[key] = _TRUTH[value.strip().lower()]


def stems_regex(stems: Iterable[str]) -> str:
    """A wildcard constraint that matches exactly the known photo stems.

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


# Network rules and the checkpoint group whose backend they use.
RULE_GROUP = {
    "detect_scratches": "global",
    "restore_global": "global",
    "enhance_face": "face",
    "enhance_faces": "face",
    "prepare_checkpoint": "global",
    "download_checkpoints": "global",
}


def needed_networks(config: Mapping[str, Any], group: str) -> list[str]:
    """The checkpoints of one group: ``global`` (stage 1) or ``face`` (stage 3)."""
    from oldphoto.checkpoints import networks_for

    everything = networks_for(with_scratch=config["with_scratch"], hr=config["hr"])
    stage1 = networks_for(with_scratch=config["with_scratch"], hr=config["hr"], faces=False)
    return stage1 if group == "global" else [n for n in everything if n not in stage1]


def resolve_backend(config: Mapping[str, Any]) -> dict[str, str]:
    """The backend of each checkpoint group: ``{"global": ..., "face": ...}``.

    ``classical`` everywhere, or ``pretrained`` everywhere (missing checkpoints stop the run
    before any work with a message naming every missing file, unless ``allow_download`` lets the
    download rule fetch them).  ``auto`` decides per group: the official global checkpoints and
    the official face checkpoints come in separate zips, and each group that is complete is used.
    """
    from oldphoto.checkpoints import missing_checkpoints, missing_message

    wanted = config["backend"]
    groups = ("global", "face")
    if wanted == "classical":
        return dict.fromkeys(groups, "classical")
    missing = {
        g: missing_checkpoints(config["checkpoints_dir"], needed_networks(config, g))
        for g in groups
    }
    if wanted == "pretrained":
        absent = missing["global"] + missing["face"]
        if absent and not config.get("allow_download"):
            raise CheckpointError(
                config["checkpoints_dir"], missing_message(config["checkpoints_dir"], absent)
            )
        return dict.fromkeys(groups, "pretrained")
    chosen = {g: ("classical" if missing[g] else "pretrained") for g in groups}
    for group, files in missing.items():
        if files:
            print(
                f"*** oldphoto: backend 'auto' -> CLASSICAL for the {group} networks: "
                f"{len(files)} official checkpoint(s) missing from {config['checkpoints_dir']} "
                f"(e.g. {files[0]}). These results come from the classical OpenCV/numpy "
                "backend, not the official networks; every output records this in its PNG "
                "metadata (oldphoto:backend). ***",
                file=sys.stderr,
            )
    return chosen


def backend_label(backend: Mapping[str, str]) -> str:
    """One word when both groups agree, else ``global=...,face=...``."""
    if backend["global"] == backend["face"]:
        return backend["global"]
    return f"global={backend['global']},face={backend['face']}"


def uses_pretrained(backend: Mapping[str, str], rule: str) -> bool:
    return backend.get(RULE_GROUP.get(rule, ""), "") == "pretrained"


def official_checkpoint(config: Mapping[str, Any], name: str) -> str:
    from oldphoto.checkpoints import official_path

    return str(official_path(config["checkpoints_dir"], name))


def all_official_checkpoints(config: Mapping[str, Any]) -> list[str]:
    from oldphoto.checkpoints import OFFICIAL_FILES

    return [official_checkpoint(config, name) for name in OFFICIAL_FILES]


def landmarks_path(config: Mapping[str, Any]) -> str:
    if config.get("landmarks"):
        return str(config["landmarks"])
    from oldphoto.faces import default_landmarks_path

    return str(default_landmarks_path())


SETTINGS = (
    "with_scratch", "hr", "test_mode", "device", "stage1_stretch", "face_blending",
    "final_size", "max_image_pixels", "memory_budget_mb", "jobs_per_gpu",
)


def run_metadata(config: Mapping[str, Any], backend: Mapping[str, str]) -> dict[str, str]:
    """What every output PNG records about how it was made (PNG text chunks)."""
    settings = {k: config.get(k) for k in SETTINGS}
    return {
        "oldphoto:version": __version__,
        "oldphoto:backend": backend_label(backend),
        "oldphoto:settings": json.dumps(settings, sort_keys=True),
    }


def job_params(config: Mapping[str, Any], backend: Mapping[str, str], rule: str,
               image: str) -> dict[str, Any]:
    """Everything one job needs besides its files (a plain dict: picklable for script:)."""
    return {
        "rule": rule,
        "image": image,
        "backend": backend.get(RULE_GROUP.get(rule, ""), backend_label(backend)),
        "network": rule in NETWORK_RULES,
        "device": config["device"],
        "jobs_per_gpu": config["jobs_per_gpu"],
        "with_scratch": config["with_scratch"],
        "hr": config["hr"],
        "test_mode": config["test_mode"],
        "stage1_stretch": config["stage1_stretch"],
        "face_blending": config["face_blending"],
        "final_size": config["final_size"],
        "max_image_pixels": config["max_image_pixels"],
        "memory_budget_mb": config["memory_budget_mb"],
        "metadata": run_metadata(config, backend),
    }


def face_count(record_path: str | Path) -> int:
    with open(record_path, encoding="utf-8") as handle:
        return len(json.load(handle)["faces"])


def announce(config: Mapping[str, Any], backend: Mapping[str, str], inputs) -> None:
    mode = "scratch" if config["with_scratch"] else "quality"
    if config["hr"]:
        mode += " + HR"
    print(
        f"oldphoto {__version__}: {len(inputs.images)} photo(s) from {config['input_dir']} -> "
        f"{config['output_dir']} ({mode}, backend {backend_label(backend)})",
        file=sys.stderr,
    )
    for path, reason in inputs.skipped:
        print(f"oldphoto: skipped {path}: {reason}", file=sys.stderr)


# --------------------------------------------------------------------------------------------
# Run summary


FAILED_PREFIX = "FAILED "


def failure_reasons(log_dir: Path) -> dict[str, list[str]]:
    """image stem -> the one-line failure reasons its jobs wrote to their logs."""
    reasons: dict[str, list[str]] = {}
    if not log_dir.is_dir():
        return reasons
    for log in sorted(log_dir.glob("*/*.log")):
        try:
            lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            if line.startswith(FAILED_PREFIX):
                # "FAILED <rule> <image>: <reason>"
                head, _, reason = line[len(FAILED_PREFIX):].partition(" :: ")
                _, _, image = head.partition(" ")
                reasons.setdefault(image, []).append(reason.strip())
    return reasons


IMAGE_RULES = ("detect_scratches", "restore_global", "detect_faces", "enhance_face", "enhance_faces",
               "blend_faces")


def unfinished_jobs(log_dir: Path) -> dict[str, list[str]]:
    """image stem -> a reason for each job log that ends neither in "done" nor in a FAILED line.

    Such a job was killed (SIGKILL, the kernel's OOM killer, a cluster's memory or time limit)
    or its interpreter died: it could not write a reason itself.
    """
    reasons: dict[str, list[str]] = {}
    if not log_dir.is_dir():
        return reasons
    for log in sorted(log_dir.glob("*/*.log")):
        rule = log.parent.name
        if rule not in IMAGE_RULES:
            continue
        try:
            lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        if any(line.startswith(FAILED_PREFIX) or line.endswith("] done") for line in lines):
            continue
        stem = re.sub(r"_\d+$", "", log.stem) if rule == "enhance_face" else log.stem
        reasons.setdefault(stem, []).append(
            f"{rule} job ended without finishing or reporting an error (killed by a signal, "
            f"e.g. out of memory or a time limit); see {display_path(log)}"
        )
    return reasons


_LOADED_AT = time.time()  # this Snakemake process loaded the workflow: its jobs start later


def remove_stale_temp_files(output_dir: Path, older_than: float) -> list[Path]:
    """Remove the ``.tmp-*`` files of atomic writes interrupted before ``older_than``.

    A job killed while writing leaves its temporary file (never a partial file under a final
    name).  Called when every job of this run has ended; only files last written before this
    run started are removed, so a concurrent writer's temporary file is never touched.
    """
    from oldphoto.imageio import TEMP_PREFIX

    removed = []
    if not output_dir.is_dir():
        return removed
    for path in output_dir.rglob(f"{TEMP_PREFIX}*"):
        try:
            if path.is_file() and path.stat().st_mtime < older_than:
                path.unlink()
                removed.append(path)
        except OSError:
            continue
    return removed


def display_path(path: str | Path) -> str:
    """``path`` as valid UTF-8 text: undecodable bytes (surrogate escapes) become ``\\xNN``."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def summarize(config: Mapping[str, Any], inputs, backend: Mapping[str, str]) -> dict[str, Any]:
    out = Path(config["output_dir"])
    final = out / "final_output"
    stage2 = out / "stage_2_detection_output"
    failures = failure_reasons(out / "logs")
    unfinished = unfinished_jobs(out / "logs")
    photos: dict[str, Any] = {}
    for stem, source in sorted(inputs.images.items()):
        entry: dict[str, Any] = {"input": display_path(source)}
        record = stage2 / stem / "faces.json"
        if record.is_file():
            try:
                entry["faces"] = face_count(record)
            except (OSError, ValueError, KeyError):
                entry["faces"] = None
        if (final / f"{stem}.png").is_file() and stem not in failures:
            entry["status"] = "restored"
        elif stem in failures:
            entry["status"] = "failed"
            entry["reasons"] = failures[stem]
        elif stem in unfinished:
            entry["status"] = "failed"
            entry["reasons"] = unfinished[stem]
        else:
            entry["status"] = "not run"
        photos[stem] = entry
    counts = {
        "restored": sum(p["status"] == "restored" for p in photos.values()),
        "with_faces_enhanced": sum(
            p["status"] == "restored" and (p.get("faces") or 0) > 0 for p in photos.values()
        ),
        "failed": sum(p["status"] == "failed" for p in photos.values()),
        "not_run": sum(p["status"] == "not run" for p in photos.values()),
        "skipped": len(inputs.skipped),
    }
    return {
        "version": __version__,
        "backend": backend_label(backend),
        "backends": dict(backend),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "counts": counts,
        "photos": photos,
        "skipped": [{"path": display_path(p), "reason": r} for p, r in inputs.skipped],
    }


def summary_line(summary: Mapping[str, Any]) -> str:
    c = summary["counts"]
    line = (
        f"oldphoto: {c['restored']} photo(s) restored ({c['with_faces_enhanced']} with faces "
        f"enhanced), {c['failed']} failed, {c['skipped']} skipped, backend {summary['backend']}"
    )
    if c["not_run"]:
        line += f", {c['not_run']} not run"
    return line


def finish_run(config: Mapping[str, Any], inputs, backend: Mapping[str, str],
               ok: bool) -> dict[str, Any]:
    """Write output_dir/run_summary.json and print the human line (onsuccess/onerror)."""
    from oldphoto.imageio import write_json

    summary = summarize(config, inputs, backend)
    summary["snakemake_ok"] = ok
    out = Path(config["output_dir"])
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(out, older_than=_LOADED_AT)
    write_json(out / SUMMARY_NAME, summary)
    print(summary_line(summary), file=sys.stderr)
    for stem, entry in summary["photos"].items():
        for reason in entry.get("reasons", []):
            print(f"oldphoto: FAILED {stem}: {reason}", file=sys.stderr)
    print(f"oldphoto: results in {out / 'final_output'}; summary in {out / SUMMARY_NAME}",
          file=sys.stderr)
    return summary
