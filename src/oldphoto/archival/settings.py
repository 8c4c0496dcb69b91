"""What a derivative records about how it was made: the path its photo took, and its settings
as typed values.

The ``blend_faces`` job reads its settings typed (:mod:`oldphoto.jobs.protocol` declares them,
with the name each has in the record: ``face_blending`` is recorded as ``blending``,
``stage1_stretch`` as ``stretch``).  :func:`recorded_settings` turns them into the record's
``settings`` (the provenance sidecar, ``stEvt:parameters`` in the derivative's XMP and a PNG's
``oldphoto:settings``): booleans, integers, ``None`` for a setting that did not apply to this
photo — never ``"True"`` or ``"-"`` — and the path the photo actually took:

* ``mode`` is the stage-1 path taken.  A ``with_scratch: auto`` photo is configured on the
  scratch path (its detector runs), but its triage decision (``masks/triage/<photo>.json``,
  :mod:`oldphoto.triage`) picks the path; the job reads that decision (an input of
  ``blend_faces`` for ``auto`` photos) and records the path it chose (:func:`path_taken`, the
  one reading of a decision, which stage 1 applies too).
* ``with_scratch`` is what was asked: ``true``, ``false`` or ``"auto"``; for ``auto``,
  ``triage`` holds the decision's figures (:func:`triage_figures`; the sidecar has the whole
  decision, its one-line reason included).
* ``test_mode`` applies to the quality path of the official networks only, ``jpeg_quality`` to
  JPEG finals only; elsewhere they are ``None``.

``docs/archival.md`` (Provenance) lists the recorded keys.
"""

from __future__ import annotations

from typing import Any, Mapping

from oldphoto.mode import DETECTOR, Mode


def path_taken(configured: Mode, triage: Mapping[str, Any] | None) -> Mode:
    """The stage-1 path a photo took: ``configured`` (its settings' mode), or, for a
    ``with_scratch: auto`` photo, the path its triage decision (``triage``) chose."""
    if triage is None:
        return configured
    return Mode(with_scratch=bool(triage["with_scratch"]), hr=configured.hr)


def triage_figures(triage: Mapping[str, Any]) -> dict[str, Any]:
    """The decision and its figures, compact (for the XMP's parameters): ``with_scratch``,
    ``coverage`` (6 decimals), ``line_score`` (4 decimals) and ``components``."""
    return {"with_scratch": bool(triage["with_scratch"]),
            "coverage": round(float(triage["coverage"]), 6),
            "line_score": round(float(triage["line_score"]), 4),
            "components": int(triage["components"])}


def recorded_settings(params: Mapping[str, Any], *, final_format: str,
                      triage: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The settings a final output records, typed, with the path the photo took.

    Args:
        params: the stage-4 job's recorded settings, typed, under their record names
            (:func:`oldphoto.jobs.protocol.recorded`), with ``mode`` the photo's configured
            :class:`~oldphoto.mode.Mode` (or its key).
        final_format: the format written (``png``, ``tiff``, ``jpeg``): ``jpeg_quality`` is
            None for another.
        triage: the photo's triage decision (``with_scratch: auto``), or None.
    """
    settings = dict(params)
    configured = params["mode"] if isinstance(params["mode"], Mode) else Mode.from_key(
        str(params["mode"]))
    taken = path_taken(configured, triage)
    settings["mode"] = taken.key
    settings["with_scratch"] = "auto" if triage is not None else configured.with_scratch
    if taken.with_scratch:  # test_mode is the quality path's geometry
        settings["test_mode"] = None
    if final_format != "jpeg":
        settings["jpeg_quality"] = None
    if triage is not None:
        settings["triage"] = triage_figures(triage)
    return dict(sorted(settings.items()))


def networks_used(taken: Mode, *, detector_ran: bool, face_network: str | None) -> set[str]:
    """The checkpoint names a photo's restoration used: the scratch detector when it ran (the
    scratch path, or ``auto``'s triage), the stage-1 networks of the path taken, the face
    network (``face_network``; None when it did not run)."""
    names = set(taken.stage1_networks)
    if detector_ran:
        names.add(DETECTOR)
    if face_network:
        names.add(face_network)
    return names
