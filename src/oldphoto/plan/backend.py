"""Which backend each group of networks uses: the official networks where their checkpoints are
there, else (``backend: auto``) the classical backend, said once when the run starts.

The official checkpoints come in two zips, so two groups decide on their own: ``global`` (the
scratch detector and stage 1) and ``face`` (stage 3).  Which networks a photo needs is
:meth:`oldphoto.mode.Mode.networks`; the run plan (:mod:`oldphoto.plan.run`) asks it for every
distinct settings of the run and hands this module the union.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from oldphoto.errors import CheckpointError

GROUPS = ("global", "face")


class BackendChoice(dict):
    """The backend of each checkpoint group, ``{"global": ..., "face": ...}`` (a plain dict for
    every other use), with ``notes``: the announcement of each group that ``backend: auto`` sent
    to the classical backend, which the run prints once at its start
    (:func:`oldphoto.summary.announce`) — not on every reading of the Snakefile (``--unlock``,
    ``--report``, a dry run, a cluster job)."""

    def __init__(self, chosen: Mapping[str, str], notes: Iterable[str] = ()) -> None:
        super().__init__(chosen)
        self.notes: list[str] = list(notes)


def run_wide_networks(config: Mapping[str, Any]) -> dict[str, list[str]]:
    """The networks of each group that the run's own settings need (a photo without a sheet
    row)."""
    from oldphoto.plan.settings import configured_mode, triage_decides
    from oldphoto.sheet import effective_settings

    settings = effective_settings(config, {})
    networks = configured_mode(settings).networks(either_path=triage_decides(settings))
    return {group: list(networks.group(group)) for group in GROUPS}


def resolve_backend(config: Mapping[str, Any],
                    wanted: Mapping[str, Sequence[str]] | None = None) -> BackendChoice:
    """The backend of each checkpoint group: ``{"global": ..., "face": ...}``.

    ``wanted``: the networks of each group the run's photos need (default:
    :func:`run_wide_networks`).  ``classical`` everywhere, or ``pretrained`` everywhere
    (missing checkpoints stop the run before any work with a message naming every missing file,
    unless ``allow_download`` lets the download rule fetch them).  ``auto`` decides per group:
    each group whose checkpoints are all there is used; a group that falls back to classical
    gets a note saying why and where the outputs record it.  Prints nothing.
    """
    from oldphoto.checkpoints import missing_checkpoints, missing_message

    wanted = run_wide_networks(config) if wanted is None else wanted
    choice = config["backend"]
    if choice == "classical":
        return BackendChoice(dict.fromkeys(GROUPS, "classical"))
    missing = {g: missing_checkpoints(config["checkpoints_dir"], list(wanted[g])) for g in GROUPS}
    if choice == "pretrained":
        absent = missing["global"] + missing["face"]
        if absent and not config.get("allow_download"):
            raise CheckpointError(
                config["checkpoints_dir"], missing_message(config["checkpoints_dir"], absent)
            )
        return BackendChoice(dict.fromkeys(GROUPS, "pretrained"))
    chosen = {g: ("classical" if missing[g] else "pretrained") for g in GROUPS}
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
