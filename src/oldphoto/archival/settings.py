"""What a derivative records about how it was made: the path its photo took, and its settings
as typed values.

The ``blend_faces`` job receives its settings as text (``python -m oldphoto.job ...
p.NAME=VALUE``, where ``-`` means "does not apply").  :func:`recorded_settings` turns them into
the record's ``settings`` (the provenance sidecar, ``stEvt:parameters`` in the derivative's XMP
and a PNG's ``oldphoto:settings``): booleans, integers, ``None`` for a setting that did not
apply to this photo — never ``"True"`` or ``"-"`` — and the path the photo actually took:

* ``mode`` is the stage-1 path taken.  A ``with_scratch: auto`` photo is configured on the
  scratch path (its detector runs), but its triage decision (``masks/triage/<photo>.json``,
  :mod:`oldphoto.triage`) picks the path; the job reads that decision (an input of
  ``blend_faces`` for ``auto`` photos) and records the path it chose.
* ``with_scratch`` is what was asked: ``true``, ``false`` or ``"auto"``; for ``auto``,
  ``triage`` holds the decision's figures (:func:`triage_figures`; the sidecar has the whole
  decision, its one-line reason included).
* ``test_mode`` applies to the quality path of the official networks only, ``jpeg_quality`` to
  JPEG finals only; elsewhere they are ``None``.

``docs/archival.md`` (Provenance) lists the recorded keys.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from oldphoto.mode import DETECTOR, Mode

NOT_APPLICABLE = "-"
"""How the workflow writes a setting that does not apply to a job (e.g. ``test_mode`` on the
classical backend)."""


def parse_bool(value: Any) -> bool:
    """``True``/``"True"``/``"true"``/``"yes"``/``"1"`` -> True; their opposites -> False."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1"):
        return True
    if text in ("false", "no", "0"):
        return False
    raise ValueError(f"expected a boolean, got {value!r}")


def _text(value: Any) -> str:
    return str(value)


RECORDED_SETTINGS: dict[str, Callable[[Any], Any]] = {
    "mode": _text,
    "test_mode": _text,
    "stretch": _text,
    "face_network": _text,
    "blending": _text,
    "final_size": _text,
    "output_format": _text,
    "tone": _text,
    "jpeg_quality": int,
    "carry_metadata": parse_bool,
}
"""The stage-4 job's settings (``blend_faces``'s params), each with the type its text value is
read as.  The record adds ``with_scratch`` and, for ``auto`` photos, ``triage``."""


def typed_value(name: str, value: Any) -> Any:
    """One recorded setting as its type; ``None`` for :data:`NOT_APPLICABLE` (or None).

    Raises:
        KeyError: ``name`` is not one of :data:`RECORDED_SETTINGS`.
        ValueError: the text does not read as the setting's type.
    """
    parse = RECORDED_SETTINGS[name]
    if value is None or value == NOT_APPLICABLE:
        return None
    return parse(value)


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
        params: the stage-4 job's shaping params (``Job.shaping_params``; text or typed values),
            with ``mode`` the photo's configured mode.
        final_format: the format written (``png``, ``tiff``, ``jpeg``): ``jpeg_quality`` is
            None for another.
        triage: the photo's triage decision (``with_scratch: auto``), or None.

    Raises:
        KeyError: a param is not one of :data:`RECORDED_SETTINGS` (a new stage-4 param must be
            declared there with its type).
    """
    settings = {name: typed_value(name, value) for name, value in params.items()}
    configured = Mode.from_key(str(params["mode"]))
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
