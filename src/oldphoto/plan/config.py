"""A run's config before the schema sees it: every spelling turned into its canonical value.

Snakemake's ``--config key=value`` parses only Python literals (``True``), so the spellings
users type (``with_scratch=true``, ``output_format=TIF``) would fail the schema or, worse, make
two runs with the same meaning differ in their params.  :func:`coerce_spellings` applies
:mod:`oldphoto.spellings` in place, before ``workflow/rules/common.smk`` validates the config.
"""

from __future__ import annotations

from pathlib import Path


def coerce_booleans(config: dict, schema_path: str, basedir: str | Path = ".") -> None:
    """Turn command-line strings such as ``with_scratch=true`` into booleans, in place.

    Only keys the schema declares boolean (possibly among other types) are touched, and only
    the spellings of :mod:`oldphoto.spellings` (``yes|no|true|false``, any case; ``auto`` too
    where the key takes it); anything else is left for the schema to reject.
    """
    import yaml

    from oldphoto.spellings import BOOLEAN_WORDS

    with open(Path(basedir) / schema_path, encoding="utf-8") as handle:
        schema = yaml.safe_load(handle)
    for key, spec in schema.get("properties", {}).items():
        value = config.get(key)
        types = spec.get("type")
        types = types if isinstance(types, list) else [types]
        if "boolean" in types and isinstance(value, str):
            word = value.strip().lower()
            if word in BOOLEAN_WORDS:
                config[key] = BOOLEAN_WORDS[word]
            elif word in [v for v in spec.get("enum", []) if isinstance(v, str)]:
                config[key] = word  # with_scratch: Auto -> auto


def coerce_spellings(config: dict, schema_path: str, basedir: str | Path = ".") -> None:
    """Every spelling of :mod:`oldphoto.spellings` turned into its canonical value, in place,
    before the config is validated: booleans (:func:`coerce_booleans`) and ``output_format``
    (``tif`` -> ``tiff``, ``JPG`` -> ``jpeg``).  A run given ``tif`` and one given ``tiff`` then
    have the same config, hence the same params: no job reruns for a spelling.  Values that are
    no spelling are left for the schema to reject (its message lists the accepted ones).
    """
    from oldphoto.spellings import output_format

    coerce_booleans(config, schema_path, basedir)
    if isinstance(config.get("output_format"), str):
        try:
            config["output_format"] = output_format(config["output_format"])
        except ValueError:
            pass
