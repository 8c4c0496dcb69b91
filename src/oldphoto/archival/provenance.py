"""What a derivative says about how it was made: XMP provenance fields and a JSON sidecar.

:func:`provenance_record` gathers the facts once (source file and sha256, software and version,
backend, checkpoints' sha256, settings, what changed); :func:`provenance_xmp` turns them into
standard XMP fields that :func:`oldphoto.archival.derivative.write_derivative` embeds, and
:func:`write_sidecar` writes the same record, plus the stage timings, next to the output.

XMP fields written (exiftool names; the schema URIs are the standard ones):

=================================  ============================================================
``XMP-iptcExt:DigitalSourceType``  IPTC Digital Source Type URI: ``compositeWithTrainedAlgori-
                                   thmicMedia`` for the pretrained backend (networks synthesise
                                   content: the VAE regenerates the photo, scratches are
                                   inpainted, faces regenerated), ``algorithmicallyEnhanced``
                                   for the classical backend.
``XMP-xmpMM:DerivedFrom``          ``stRef:filePath`` = the master's file name,
                                   ``stRef:documentID`` = ``sha256:<hex>`` of its bytes.
``XMP-xmpMM:History``              the master's history plus one ``stEvt`` event: action
                                   ``derived``, ``when``, ``softwareAgent`` = ``oldphoto
                                   <version>``, ``parameters`` = compact JSON of backend,
                                   source sha256, checkpoints' sha256 and settings.
``XMP-xmp:CreatorTool``            ``oldphoto <version>``.
=================================  ============================================================
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from oldphoto.archival.master import Master

IPTC_DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/"
COMPOSITE_TRAINED = IPTC_DIGITAL_SOURCE_TYPE + "compositeWithTrainedAlgorithmicMedia"
ALGORITHMICALLY_ENHANCED = IPTC_DIGITAL_SOURCE_TYPE + "algorithmicallyEnhanced"

RECORD_SCHEMA = "oldphoto.provenance/2"
"""Value of the record's ``schema`` key; bump when a key changes meaning."""

SOFTWARE_NAME = "oldphoto"


def software_agent() -> str:
    """``"oldphoto <version>"``, as EXIF Software, XMP CreatorTool and softwareAgent say it."""
    from oldphoto import __version__

    return f"{SOFTWARE_NAME} {__version__}"


def digital_source_type(backend: str) -> str:
    """The IPTC Digital Source Type URI for a resolved backend (``pretrained``/``classical``)."""
    if backend == "pretrained":
        return COMPOSITE_TRAINED
    if backend == "classical":
        return ALGORITHMICALLY_ENHANCED
    raise ValueError(f"backend must be resolved to 'pretrained' or 'classical', got {backend!r}")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def provenance_record(master: Master, *, backend: str, checkpoints: Mapping[str, str],
                      settings: Mapping[str, Any], changes: Mapping[str, Any] | None = None,
                      created: str | None = None) -> dict[str, Any]:
    """The provenance of one derivative, JSON-ready.

    Args:
        master: the master the derivative comes from.
        backend: the resolved backend, ``pretrained`` or ``classical``.
        checkpoints: network name -> sha256 of each checkpoint used (empty for classical).
        settings: the configuration values that shaped the output (mode, stretch, blending,
            output format, tone, ...; typed: :func:`oldphoto.archival.settings.
            recorded_settings`); stored as given.
        changes: the stats of :func:`oldphoto.archival.changes.change_map`, or None.
        created: ISO 8601 time; default now (UTC).
    """
    from oldphoto import __version__

    return {
        "schema": RECORD_SCHEMA,
        "created": created or _now(),
        "software": {"name": SOFTWARE_NAME, "version": __version__},
        "digital_source_type": digital_source_type(backend),
        "backend": backend,
        "source": {
            "file_name": master.name,
            "sha256": master.sha256,
            "size_bytes": master.size_bytes,
            "format": master.format,
            "bit_depth": master.bit_depth,
            "has_icc_profile": master.icc_profile is not None,
            "dpi": list(master.dpi) if master.dpi else None,
            "orientation_applied": master.orientation,
        },
        "checkpoints": dict(sorted(checkpoints.items())),
        "settings": dict(settings),
        "changes": dict(changes) if changes is not None else None,
    }


def _when_xmp(iso: str) -> str:
    # exiftool reads "YYYY:MM:DD HH:MM:SS+HH:MM"; ISO 8601's dashes and "T" are converted.
    date, _, time = iso.partition("T")
    return f"{date.replace('-', ':')} {time}" if time else date.replace("-", ":")


def history_parameters(record: Mapping[str, Any]) -> str:
    """The ``stEvt:parameters`` text: compact, key-sorted JSON of what shaped the output."""
    return json.dumps({
        "backend": record["backend"],
        "source_sha256": record["source"]["sha256"],
        "checkpoints": record["checkpoints"],
        "settings": record["settings"],
    }, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def provenance_xmp(record: Mapping[str, Any],
                   master_tags: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The XMP provenance fields of ``record`` as exiftool ``-G1 -struct`` JSON values.

    ``master_tags`` (:attr:`Master.tags`) supplies an existing ``XMP-xmpMM:History``, which
    is kept and extended by this derivation's event.  The event's ``When`` is the record's
    ``created``; a record with ``created`` None gives an event without one.
    """
    agent = f"{record['software']['name']} {record['software']['version']}"
    previous = copy.deepcopy((master_tags or {}).get("XMP-xmpMM:History") or [])
    if isinstance(previous, dict):
        previous = [previous]
    event = {"Action": "derived"}
    if record.get("created"):  # optional in stEvt; None keeps a derivative's bytes reproducible
        event["When"] = _when_xmp(record["created"])
    event.update({"SoftwareAgent": agent, "Parameters": history_parameters(record)})
    return {
        "XMP-iptcExt:DigitalSourceType": record["digital_source_type"],
        "XMP-xmpMM:DerivedFrom": {
            "FilePath": record["source"]["file_name"],
            "DocumentID": f"sha256:{record['source']['sha256']}",
        },
        "XMP-xmpMM:History": [*previous, event],
        "XMP-xmp:CreatorTool": agent,
    }


def sidecar_record(record: Mapping[str, Any], timings: Mapping[str, float],
                   output: Mapping[str, Any] | None = None, *,
                   triage: Mapping[str, Any] | None = None,
                   superseded: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """``record`` plus ``timings_s`` (stage -> seconds), ``output`` (file, format, bits),
    ``triage`` (a ``with_scratch: auto`` photo's whole decision, else None) and ``superseded``
    (the finals of the photo this one replaced, :func:`oldphoto.archival.supersede.
    superseded_history`)."""
    full = dict(record)
    full["timings_s"] = {stage: round(float(s), 3) for stage, s in timings.items()}
    if output is not None:
        full["output"] = dict(output)
    full["triage"] = dict(triage) if triage is not None else None
    full["superseded"] = [dict(entry) for entry in superseded]
    return full


def write_sidecar(path: str | Path, record: Mapping[str, Any],
                  timings: Mapping[str, float] | None = None,
                  output: Mapping[str, Any] | None = None, *,
                  triage: Mapping[str, Any] | None = None,
                  superseded: Sequence[Mapping[str, Any]] = ()) -> None:
    """Write the per-photo JSON sidecar (the record, stage timings, output facts, the triage
    decision, the superseded finals; :func:`sidecar_record`) atomically."""
    from oldphoto.atomic import write_json

    write_json(path, sidecar_record(record, timings or {}, output, triage=triage,
                                    superseded=superseded))
