"""Output formats of a derivative and their file extensions (standard library only).

Kept free of numpy and image libraries: the workflow names every final output from these when it
builds the DAG (:func:`oldphoto.layout.final_extension`), without opening any file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

Format = Literal["png", "tiff", "jpeg"]

EXTENSIONS: dict[str, str] = {"png": ".png", "tiff": ".tif", "jpeg": ".jpg"}
"""File extension per output format."""

MASTER_FORMATS: dict[str, str] = {"PNG": "png", "TIFF": "tiff", "JPEG": "jpeg", "MPO": "jpeg"}
"""PIL format of a master -> output format for ``output_format: same`` (others give png)."""

SUFFIX_FORMATS: dict[str, str] = {".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF", ".jpg": "JPEG",
                                  ".jpeg": "JPEG"}
"""A master's file extension (lower case) -> the PIL format it names."""


def output_format_for(setting: str, master_format: str) -> Format:
    """The format for a config ``output_format`` and a master's format.

    ``setting``: ``png|tiff|jpeg|same``, or another spelling of them (``tif``, ``jpg``, any
    case: :func:`oldphoto.spellings.output_format`).
    """
    from oldphoto.spellings import output_format

    try:
        setting = output_format(setting)
    except ValueError as err:
        raise ValueError(f"output_format {err}") from None
    if setting == "same":
        return MASTER_FORMATS.get(master_format.upper(), "png")  # type: ignore[return-value]
    return setting  # type: ignore[return-value]


def output_format_for_file(setting: str, master: str | Path) -> Format:
    """:func:`output_format_for` a master named ``master``, judged by its file extension.

    The workflow decides each final output's name before any file is read, so ``same`` follows
    the extension (``.tif``/``.tiff`` -> tiff, ``.jpg``/``.jpeg`` -> jpeg, ``.png`` -> png,
    anything else -> png); the decoder accepts a file only when its content matches it.
    """
    suffix = os.path.splitext(os.fsdecode(master))[1].lower()
    return output_format_for(setting, SUFFIX_FORMATS.get(suffix, ""))


def format_of_extension(path: str | Path) -> Format:
    """The output format a derivative's file name asks for (``.png``, ``.tif``, ``.jpg``)."""
    suffix = os.path.splitext(os.fsdecode(path))[1].lower()
    for fmt, ext in EXTENSIONS.items():
        if suffix == ext:
            return fmt  # type: ignore[return-value]
    raise ValueError(f"{path}: not a derivative's extension (.png, .tif or .jpg)")
