"""The final output of one photo as an archival derivative (what the ``blend_faces`` job writes).

The restoration works on 8-bit sRGB values (:func:`oldphoto.archival.colour.to_working_srgb`
converts the master's profile where stage 1 reads it).  :func:`write_final` turns its result into
the derivative: back to the master's profile, 16-bit when the master is (PNG/TIFF), grey when
the master is, the master's EXIF/IPTC/XMP, resolution and profile, and the provenance and identity
XMP; it returns what the sidecar needs.  ``docs/archival.md`` gives the reasons for each step.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from oldphoto.errors import CheckpointError


def backends_of(label: str) -> dict[str, str]:
    """``{"global": ..., "face": ...}`` from a backend label (``classical``, or
    ``global=pretrained,face=classical``; see :func:`oldphoto.plan.backend.backend_label`)."""
    if "=" not in label:
        return {"global": label, "face": label}
    parts = dict(item.split("=", 1) for item in label.split(","))
    return {"global": parts["global"], "face": parts["face"]}


def provenance_backend(label: str, faces: int) -> str:
    """The backend the provenance names: ``pretrained`` when a network synthesised content.

    The global networks regenerate every photo; the face network only a photo with faces.  So
    global pretrained, or face pretrained on a photo with at least one face, gives
    ``pretrained`` (IPTC ``compositeWithTrainedAlgorithmicMedia``); anything else ``classical``
    (``algorithmicallyEnhanced``).
    """
    backends = backends_of(label)
    if backends["global"] == "pretrained" or (backends["face"] == "pretrained" and faces > 0):
        return "pretrained"
    return "classical"


def checkpoint_sha256s(records: Iterable[str | Path], face_network: str | None = None,
                       faces: int = 0) -> dict[str, str]:
    """Network name -> sha256 of its official checkpoint, from the cache records
    ``<cache_dir>/<name>.safetensors.json`` written when each checkpoint was verified.

    The face network's record (``face_network``) counts only when the photo has faces: without
    faces it was not used.

    Raises:
        CheckpointError: a record is unreadable or has no ``official_sha256``.
    """
    found = {}
    for record in records:
        path = Path(record)
        name = path.name.removesuffix(".json").removesuffix(".safetensors")
        if name == face_network and faces <= 0:
            continue
        try:
            found[name] = str(json.loads(path.read_text("utf-8"))["official_sha256"])
        except (OSError, ValueError, KeyError) as err:
            raise CheckpointError(path, f"unreadable checkpoint cache record ({err})") from None
    return dict(sorted(found.items()))


def derivation_time(environ: Mapping[str, str] | None = None) -> str:
    """When a derivative is made: now, UTC, ISO 8601 to the second — or the time
    ``SOURCE_DATE_EPOCH`` (seconds since 1970, the reproducible-builds convention) names, so that
    a rerun can write the same bytes (``docs/archival.md#identity-xmp-media-management``).

    Raises:
        ConfigError: ``SOURCE_DATE_EPOCH`` is set but not a non-negative integer.
    """
    from oldphoto.errors import ConfigError

    environ = os.environ if environ is None else environ
    epoch = environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch:
        if not epoch.isdigit():
            raise ConfigError(None, f"SOURCE_DATE_EPOCH must be whole seconds since 1970, got "
                                    f"{epoch!r}")
        moment = _dt.datetime.fromtimestamp(int(epoch), _dt.timezone.utc)
    else:
        moment = _dt.datetime.now(_dt.timezone.utc)
    return moment.replace(microsecond=0).isoformat()


def write_final(path: str | Path, restored_working: np.ndarray, *, master_path: str | Path,
                alpha: np.ndarray | None, backend: str, checkpoints: Mapping[str, str],
                settings: Mapping[str, Any], carry_metadata: bool = True,
                jpeg_quality: int = 95, text: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Write the final output ``path`` (format from its extension) from the restoration's result.

    Args:
        path: ``final_output/<photo>.png|.tif|.jpg``.
        restored_working: the final result, uint8 H×W×3, sRGB working space.
        master_path: the photo's input file (only read).
        alpha: the master's alpha (uint8 H×W of the result's size) or None.
        backend: the resolved backend for the provenance (:func:`provenance_backend`).
        checkpoints: name -> sha256 of the checkpoints used (:func:`checkpoint_sha256s`).
        settings: the settings that shaped the output, stored as given.
        carry_metadata: False writes a plain 8-bit file in sRGB (no profile, no EXIF, IPTC or
            XMP); the provenance record is still returned for the sidecar.
        jpeg_quality: 1..100.
        text: PNG text chunks (``oldphoto:backend`` ...).

    A greyscale master (:attr:`Master.colour_model <oldphoto.archival.master.Master>`) gives
    a greyscale derivative at its bit depth: the result's luminance
    (:func:`oldphoto.archival.colour.grey_from_rgb`), whatever colour the restoration added.
    The record's ``created`` (:func:`derivation_time`) is the XMP History event's ``when``.

    Returns:
        ``{"record": provenance record, "output": {"file", "format", "bits", "colour_model",
        "width", "height", "icc_profile", "metadata"}}``.
    """
    from oldphoto.archival.colour import grey_from_rgb, working_profile
    from oldphoto.archival.depth import final_16bit
    from oldphoto.archival.derivative import icc_for_output, write_derivative
    from oldphoto.archival.formats import format_of_extension
    from oldphoto.archival.master import read_master, read_master_pixels16
    from oldphoto.archival.provenance import provenance_record

    fmt = format_of_extension(path)
    master = read_master(master_path, metadata=carry_metadata)
    record = provenance_record(master, backend=backend, checkpoints=checkpoints,
                               settings=settings, created=derivation_time())
    icc = working_profile(master.icc_profile)
    if not carry_metadata:
        pixels, bits = restored_working, 8
    else:
        # Unchanged pixels are the master's own values (all 16 bits of them); changed ones the
        # restoration's, back in the master's profile.  8-bit outputs round that.
        pixels = final_16bit(read_master_pixels16(master_path), restored_working, icc)
        bits = 16 if master.bit_depth >= 16 and fmt != "jpeg" else 8
    if master.colour_model == "grey":
        pixels = grey_from_rgb(pixels)
    write_derivative(path, pixels, fmt=fmt, bits=bits, alpha=alpha,
                     master=master if carry_metadata else None,
                     provenance=record if carry_metadata else None,
                     jpeg_quality=jpeg_quality, text=text if fmt == "png" else None)
    height, width = restored_working.shape[:2]
    embedded = carry_metadata and icc_for_output(master, master.colour_model) is not None
    output = {"file": Path(path).name, "format": fmt, "bits": bits,
              "colour_model": master.colour_model, "width": width, "height": height,
              "icc_profile": embedded, "metadata": carry_metadata}
    return {"record": record, "output": output}
