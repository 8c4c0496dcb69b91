"""What a derivative says about how it was made: XMP provenance fields and a JSON sidecar.

:func:`provenance_record` gathers the facts once (source file and sha256, software and version,
backend, checkpoints' sha256, settings, what changed); :func:`provenance_xmp` turns them into
standard XMP fields that :func:`oldphoto.archival.derivative.write_derivative` embeds, and
:func:`write_sidecar` writes the same record, plus the stage timings, next to the output.

XMP fields written (libexiv2 keys; the schema URIs are the standard ones), following the XMP
Media Management schema (``docs/archival.md#identity-xmp-media-management``):

===================================  ==========================================================
``Xmp.iptcExt.DigitalSourceType``    IPTC Digital Source Type URI: ``compositeWithTrainedAlgo-
                                     rithmicMedia`` for the pretrained backend (networks
                                     synthesise content: the VAE regenerates the photo,
                                     scratches are inpainted, faces regenerated),
                                     ``algorithmicallyEnhanced`` for the classical backend.
``Xmp.xmpMM.DocumentID``             the derivative's own: ``uuid:`` + a name-based UUID (RFC
                                     9562 version 5) of the master's sha256, the output format,
                                     the software and the history parameters (:func:`document_id`).
``Xmp.xmpMM.InstanceID``             ``uuid:`` + a version-5 UUID of the DocumentID, the
                                     derivation time and the sha256 of the pixel samples.
``Xmp.xmpMM.OriginalDocumentID``     the master's OriginalDocumentID, else its DocumentID, else
                                     :func:`content_id` of the master's sha256.
``Xmp.xmpMM.DerivedFrom``            ``stRef:filePath`` = the master's file name, and the
                                     master's ``documentID``, ``instanceID`` and
                                     ``originalDocumentID`` where it has them.
``Xmp.xmpMM.History``                the master's events plus one ``stEvt``: action ``derived``,
                                     ``instanceID`` (the derivative's), ``when`` (the record's
                                     ``created``), ``softwareAgent`` = ``oldphoto <version>``,
                                     ``parameters`` = compact JSON of backend, source sha256,
                                     checkpoints' sha256 and settings.
``Xmp.xmp.CreatorTool``              ``oldphoto <version>``.
===================================  ==========================================================
"""

from __future__ import annotations

import datetime as _dt
import json
import uuid
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


def history_parameters(record: Mapping[str, Any]) -> str:
    """The ``stEvt:parameters`` text: compact, key-sorted JSON of what shaped the output."""
    return json.dumps({
        "backend": record["backend"],
        "source_sha256": record["source"]["sha256"],
        "checkpoints": record["checkpoints"],
        "settings": record["settings"],
    }, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


IDENTITY_NAMESPACE = uuid.UUID("0ea8763a-9219-49f8-87ef-e597ecf4a2c8")
"""The namespace of oldphoto's name-based (version 5) UUIDs; fixed, so anyone can recompute an
identifier from what it names."""


def _uuid(name: str) -> str:
    return f"uuid:{uuid.uuid5(IDENTITY_NAMESPACE, name)}"


def content_id(sha256: str) -> str:
    """``uuid:`` + the version-5 UUID of ``sha256:<hex>``: an identifier of a file's bytes that
    anyone can recompute from the file (a master without XMP identifiers gets it as the
    derivative's OriginalDocumentID)."""
    return _uuid(f"sha256:{sha256}")


def document_id(record: Mapping[str, Any], fmt: str) -> str:
    """The derivative's ``xmpMM:DocumentID``: the same master, format, software and history
    parameters (backend, checkpoints, settings) give the same identifier; any change a new one."""
    agent = f"{record['software']['name']} {record['software']['version']}"
    return _uuid(f"document {record['source']['sha256']} {fmt} {agent} "
                 f"{history_parameters(record)}")


def instance_id(document: str, when: str, content_sha256: str) -> str:
    """The derivative's ``xmpMM:InstanceID``: this document as written at ``when`` with pixel
    samples of sha256 ``content_sha256``."""
    return _uuid(f"instance {document} {when} {content_sha256}")


def master_identity(master_tags: Mapping[str, Any] | None) -> dict[str, str]:
    """The master's own XMP identifiers: ``{"documentID", "instanceID", "originalDocumentID"}``,
    those it has (from :attr:`Master.tags <oldphoto.archival.master.Master.tags>`)."""
    tags = master_tags or {}
    found = {}
    for field, key in (("documentID", "Xmp.xmpMM.DocumentID"),
                       ("instanceID", "Xmp.xmpMM.InstanceID"),
                       ("originalDocumentID", "Xmp.xmpMM.OriginalDocumentID")):
        value = str(tags.get(key) or "").strip()
        if value:
            found[field] = value
    return found


def provenance_xmp(record: Mapping[str, Any], master_tags: Mapping[str, Any] | None = None, *,
                   fmt: str, content_sha256: str) -> dict[str, Any]:
    """The XMP provenance and identity fields of a derivative, keyed by libexiv2 key.

    Args:
        record: :func:`provenance_record`; its ``created`` is the History event's ``when``.
        master_tags: :attr:`Master.tags <oldphoto.archival.master.Master.tags>`, for the
            master's identifiers (``DerivedFrom``, ``OriginalDocumentID``).
        fmt: the derivative's format (``png``, ``tiff``, ``jpeg``): one DocumentID per format.
        content_sha256: sha256 of the derivative's pixel samples (its InstanceID).

    Values are texts, a struct (dict of ``prefix:field`` -> text) or a list of structs;
    ``Xmp.xmpMM.History``'s one event is appended to the master's history
    (:func:`oldphoto.archival.metadata.set_xmp`).
    """
    agent = f"{record['software']['name']} {record['software']['version']}"
    when = str(record["created"])
    master = master_identity(master_tags)
    document = document_id(record, fmt)
    instance = instance_id(document, when, content_sha256)
    derived_from = {"stRef:filePath": record["source"]["file_name"]}
    derived_from.update({f"stRef:{field}": value for field, value in master.items()})
    original = master.get("originalDocumentID") or master.get("documentID") \
        or content_id(record["source"]["sha256"])
    event = {"stEvt:action": "derived", "stEvt:instanceID": instance, "stEvt:when": when,
             "stEvt:softwareAgent": agent, "stEvt:parameters": history_parameters(record)}
    return {
        "Xmp.iptcExt.DigitalSourceType": record["digital_source_type"],
        "Xmp.xmpMM.DocumentID": document,
        "Xmp.xmpMM.InstanceID": instance,
        "Xmp.xmpMM.OriginalDocumentID": original,
        "Xmp.xmpMM.DerivedFrom": derived_from,
        "Xmp.xmpMM.History": [event],
        "Xmp.xmp.CreatorTool": agent,
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
