"""The record for others: a TSV with one row per photo, and PREMIS 3 events.

TSV (``oldphoto review OUTPUT_DIR --export FILE.tsv``): comment lines (``#``) first — the
folder, the time, the sample and the counts — then a header and one row per photo:

=====================  ========================================================================
``photo``              the photo (its name without extension)
``decision``           ``accepted``, ``rejected`` or ``pending`` (no decision in force: never
                       judged, undone, or its final output changed since it was judged)
``reviewer``           who decided (empty when pending)
``decided_at``         when, UTC ISO 8601
``reason``             a rejection's reason (:data:`oldphoto.review.store.REASONS` label)
``note``               the reviewer's note (tabs and line breaks as spaces)
``derivative``         the judged final output's file name
``derivative_sha256``  its sha256 at the time of judgement
``master_sha256``      the original's sha256 (from the provenance sidecar)
``run_status``         ``restored``, ``failed`` or ``not run`` (the run's)
``run_reason``         why the run failed it
``in_sample``          ``yes``/``no`` (every photo is ``yes`` without a sample)
``new_settings``       the sheet row a rejection wrote (JSON), empty otherwise
=====================  ========================================================================

PREMIS (``--premis FILE.xml``): one ``premis:event`` per decision in force or superseded (undone
decisions are left out), each linking the reviewer and the software as agents and the master
(``source``) and the judged derivative (``outcome``) by sha256; the objects and agents it links
are described in the same document (PREMIS 3.0, namespace :data:`PREMIS_NS`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from oldphoto.review.session import Review
from oldphoto.review.store import REASONS, utc_now

TSV_COLUMNS = ("photo", "decision", "reviewer", "decided_at", "reason", "note", "derivative",
               "derivative_sha256", "master_sha256", "run_status", "run_reason", "in_sample",
               "new_settings")
PREMIS_NS = "http://www.loc.gov/premis/v3"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
EVENT_TYPE = "validation"
"""id.loc.gov's preservation eventType for checking an object against what it must be."""
EVENT_TYPE_AUTHORITY = "http://id.loc.gov/vocabulary/preservation/eventType"
EVENT_DETAIL = ("Visual quality review of a restored derivative against its master with "
                "oldphoto review; outcome accepted or rejected (local vocabulary)")
FORMATS = {"png": "image/png", "tif": "image/tiff", "tiff": "image/tiff", "jpg": "image/jpeg",
           "jpeg": "image/jpeg"}


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return " ".join(text.replace("\t", " ").splitlines())


def export_rows(review: Review) -> list[dict[str, str]]:
    """One row per photo of the folder (:data:`TSV_COLUMNS`)."""
    rows = []
    for entry in review.entries:
        status = review.status(entry)
        decision = review.decision_in_force(entry) if status in ("accepted", "rejected") \
            else None
        rows.append({
            "photo": entry.stem,
            "decision": decision.action if decision else "pending",
            "reviewer": decision.reviewer if decision else "",
            "decided_at": decision.decided_at if decision else "",
            "reason": REASONS.get(decision.reason or "", "") if decision else "",
            "note": _cell(decision.note) if decision else "",
            "derivative": decision.derivative or "" if decision else "",
            "derivative_sha256": decision.derivative_sha256 or "" if decision else "",
            "master_sha256": decision.master_sha256 or "" if decision else "",
            "run_status": entry.status,
            "run_reason": _cell("; ".join(entry.reasons)),
            "in_sample": "yes" if review.in_scope(entry) else "no",
            "new_settings": json.dumps(decision.new_settings, sort_keys=True)
            if decision and decision.new_settings else "",
        })
    return rows


def sample_statement(review: Review) -> str:
    if review.sample is None:
        return f"none: every photo of the run is under review ({len(review.entries)} photos)"
    return review.sample.describe()


def write_tsv(review: Review, path: str | Path) -> list[dict[str, str]]:
    """Write the TSV export (atomically); returns its rows."""
    from oldphoto import __version__
    from oldphoto.atomic import write_bytes_atomic

    rows = export_rows(review)
    counts = {d: sum(r["decision"] == d for r in rows) for d in ("accepted", "rejected",
                                                                   "pending")}
    lines = [
        f"# oldphoto review export of {review.output_dir}",
        f"# written {utc_now()} by oldphoto {__version__}; record {review.store.path.name}",
        f"# sample: {sample_statement(review)}",
        f"# decisions: {counts['accepted']} accepted, {counts['rejected']} rejected, "
        f"{counts['pending']} pending, of {len(rows)} photos",
        "\t".join(TSV_COLUMNS),
    ]
    lines += ["\t".join(_cell(row[c]) for c in TSV_COLUMNS) for row in rows]
    write_bytes_atomic(path, ("\n".join(lines) + "\n").encode("utf-8"))
    return rows


def _sub(parent: ET.Element, name: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{PREMIS_NS}}}{name}", attrs)
    if text is not None:
        element.text = text
    return element


def _identifier(parent: ET.Element, prefix: str, kind: str, value: str) -> None:
    holder = _sub(parent, f"{prefix}Identifier")
    _sub(holder, f"{prefix}IdentifierType", kind)
    _sub(holder, f"{prefix}IdentifierValue", value)


def _file_object(root: ET.Element, sha256: str, name: str | None, local: str | None) -> None:
    obj = _sub(root, "object", **{f"{{{XSI_NS}}}type": "premis:file"})
    _identifier(obj, "object", "sha256", sha256)
    if local:
        _identifier(obj, "object", "local", local)
    characteristics = _sub(obj, "objectCharacteristics")
    fixity = _sub(characteristics, "fixity")
    _sub(fixity, "messageDigestAlgorithm", "SHA-256")
    _sub(fixity, "messageDigest", sha256)
    form = _sub(characteristics, "format")
    designation = _sub(form, "formatDesignation")
    ext = (name or "").rpartition(".")[2].lower()
    _sub(designation, "formatName", FORMATS.get(ext, "application/octet-stream"))
    if name:
        _sub(obj, "originalName", name)


def premis_document(review: Review) -> ET.Element:
    """The decisions as a PREMIS 3 document (root ``premis:premis``)."""
    from oldphoto.archival.provenance import software_agent

    ET.register_namespace("premis", PREMIS_NS)
    ET.register_namespace("xsi", XSI_NS)
    root = ET.Element(f"{{{PREMIS_NS}}}premis", {"version": "3.0"})
    decisions = review.store.decisions()
    objects: dict[str, tuple[str | None, str | None]] = {}
    for d in decisions:
        if d.master_sha256:
            objects.setdefault(d.master_sha256, (d.master, None))
        if d.derivative_sha256:
            objects.setdefault(d.derivative_sha256,
                               (d.derivative, f"final_output/{d.derivative}"))
    for sha256, (name, local) in objects.items():
        _file_object(root, sha256, name, local)
    software = software_agent()
    for d in decisions:
        event = _sub(root, "event")
        _identifier(event, "event", "UUID", d.event_uuid)
        _sub(event, "eventType", EVENT_TYPE, authority="eventType",
             authorityURI=EVENT_TYPE_AUTHORITY)
        _sub(event, "eventDateTime", d.decided_at)
        detail = _sub(event, "eventDetailInformation")
        _sub(detail, "eventDetail", f"{EVENT_DETAIL}; photo {d.photo}")
        outcome = _sub(event, "eventOutcomeInformation")
        _sub(outcome, "eventOutcome", d.action)
        note = []
        if d.reason:
            note.append(f"reason: {REASONS.get(d.reason, d.reason)}")
        if d.note:
            note.append(f"note: {d.note}")
        note.append("settings in force: " + json.dumps(d.settings, sort_keys=True))
        if d.new_settings:
            note.append("new settings (photo sheet): " + json.dumps(d.new_settings,
                                                                      sort_keys=True))
        outcome_detail = _sub(outcome, "eventOutcomeDetail")
        _sub(outcome_detail, "eventOutcomeDetailNote", "; ".join(note))
        agent = _sub(event, "linkingAgentIdentifier")
        _sub(agent, "linkingAgentIdentifierType", "local")
        _sub(agent, "linkingAgentIdentifierValue", d.reviewer)
        _sub(agent, "linkingAgentRole", "reviewer")
        tool = _sub(event, "linkingAgentIdentifier")
        _sub(tool, "linkingAgentIdentifierType", "local")
        _sub(tool, "linkingAgentIdentifierValue", software)
        _sub(tool, "linkingAgentRole", "executing program")
        for sha256, role in ((d.master_sha256, "source"), (d.derivative_sha256, "outcome")):
            if sha256:
                link = _sub(event, "linkingObjectIdentifier")
                _sub(link, "linkingObjectIdentifierType", "sha256")
                _sub(link, "linkingObjectIdentifierValue", sha256)
                _sub(link, "linkingObjectRole", role)
    people = sorted({d.reviewer for d in decisions})
    for name in people:
        agent = _sub(root, "agent")
        _identifier(agent, "agent", "local", name)
        _sub(agent, "agentName", name)
        _sub(agent, "agentType", "person")
    if decisions:
        agent = _sub(root, "agent")
        _identifier(agent, "agent", "local", software)
        _sub(agent, "agentName", "oldphoto")
        _sub(agent, "agentType", "software")
        _sub(agent, "agentVersion", software.partition(" ")[2])
    return root


def write_premis(review: Review, path: str | Path) -> int:
    """Write the PREMIS document (atomically); returns the number of events."""
    from oldphoto.atomic import write_bytes_atomic

    root = premis_document(review)
    ET.indent(root)
    data = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    write_bytes_atomic(path, data + b"\n")
    return len(root.findall(f"{{{PREMIS_NS}}}event"))
