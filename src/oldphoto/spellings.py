"""One vocabulary for what people type: the ``oldphoto`` command, the config and the photo sheet.

Every entry point accepts the same spellings and turns them into one canonical value as soon as
it reads them, so that the rest of the code (and every rule's ``params``) sees one value per
setting: ``tif`` and ``tiff`` are the same setting and never make Snakemake rerun a job.

=============================  =========================================  ===================
setting                        accepted (any case)                        canonical value
=============================  =========================================  ===================
booleans (``hr``, ``faces``,   ``yes`` ``no`` ``true`` ``false``          ``True`` / ``False``
``carry_metadata`` ...)
``with_scratch``               the booleans, and ``auto``                 ``True``/``False``/
                                                                          ``"auto"``
``output_format``              ``png`` ``tiff`` ``tif`` ``jpeg`` ``jpg``  ``png`` ``tiff``
                               ``same``                                   ``jpeg`` ``same``
=============================  =========================================  ===================

The ``oldphoto`` command also takes ``--ext auto`` (GFPGAN's spelling) for ``same``
(:data:`EXT_ALIASES`).  Standard library only: the DAG is built from these.
"""

from __future__ import annotations

from typing import Any, Literal

BOOLEAN_WORDS: dict[str, bool] = {"yes": True, "true": True, "no": False, "false": False}
"""Spellings of a boolean setting (matched case-insensitively)."""

OUTPUT_FORMAT_WORDS: dict[str, str] = {"png": "png", "tiff": "tiff", "tif": "tiff",
                                       "jpeg": "jpeg", "jpg": "jpeg", "same": "same"}
"""Spellings of ``output_format`` (matched case-insensitively) -> the canonical value."""

EXT_ALIASES: dict[str, str] = {"auto": "same"}
"""Further spellings of ``oldphoto --ext`` only (GFPGAN's ``--ext auto``)."""

OutputFormat = Literal["png", "tiff", "jpeg", "same"]


def _word(text: Any) -> str:
    return str(text).strip().lower()


def boolean(value: Any) -> bool:
    """A boolean setting: ``True``/``False`` as they are, else ``yes|no|true|false`` (any case).

    Raises:
        ValueError: any other value (the message lists the accepted spellings).
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and _word(value) in BOOLEAN_WORDS:
        return BOOLEAN_WORDS[_word(value)]
    raise ValueError(f"{value!r}: expected one of {', '.join(BOOLEAN_WORDS)}")


def with_scratch(value: Any) -> bool | Literal["auto"]:
    """``with_scratch``: a boolean (:func:`boolean`) or ``auto`` (any case)."""
    if isinstance(value, str) and _word(value) == "auto":
        return "auto"
    try:
        return boolean(value)
    except ValueError:
        raise ValueError(f"{value!r}: expected one of {', '.join(BOOLEAN_WORDS)}, auto") \
            from None


def output_format(value: Any) -> OutputFormat:
    """``output_format``: ``png|tiff|tif|jpeg|jpg|same`` (any case) -> ``png|tiff|jpeg|same``.

    Raises:
        ValueError: any other value (the message lists the accepted spellings).
    """
    word = _word(value) if isinstance(value, str) else None
    if word not in OUTPUT_FORMAT_WORDS:
        raise ValueError(f"{value!r}: expected one of {', '.join(OUTPUT_FORMAT_WORDS)}")
    return OUTPUT_FORMAT_WORDS[word]  # type: ignore[return-value]


def ext_option(value: str) -> OutputFormat:
    """``oldphoto --ext``: :func:`output_format`, or ``auto`` for ``same``."""
    word = _word(value)
    return output_format(EXT_ALIASES.get(word, word))
