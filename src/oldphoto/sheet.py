"""The photo sheet: per-photo settings in a TSV file, as snakemake-workflows keep ``samples.tsv``.

A sheet is a tab-separated file whose header names its columns; each further row sets some of one
photo's settings::

    # comment lines start with '#'
    photo	with_scratch	hr	faces	face_upsample
    wedding.jpg	no		yes	1
    letter.png	yes	no	no
    beach.tif	auto

* ``photo`` is the file name inside ``input_dir`` (no sub-folders: discovery does not search
  them).  Columns ``photo``, ``with_scratch``, ``hr`` and ``faces`` must be in the header; the
  others (:data:`COLUMNS`) may be.
* An empty cell means the run's setting (the config key of the same name); photos without a row
  take the run's settings everywhere.  Precedence, per setting: the photo's cell, then the run's
  config, then :data:`DEFAULTS` (:func:`effective_settings`).
* Values: booleans ``yes``/``no``/``true``/``false`` (``with_scratch`` also ``auto``),
  ``output_format`` ``png``/``tiff``/``tif``/``jpeg``/``jpg``/``same`` — the spellings the config
  and the ``oldphoto`` command accept too (:mod:`oldphoto.spellings`) —, ``face_upsample`` 0/1/2,
  ``max_faces`` an integer ≥ 0, ``jpeg_quality`` an integer 1-100, the others as listed in
  ``workflow/schemas/photo_sheet.schema.yaml``; matched case-insensitively.  Trailing spaces and
  Windows line ends (CRLF) are tolerated, and so is a UTF-8 byte-order mark (spreadsheets write
  one).
* Rows are numbered as the lines of the file (a spreadsheet shows the same numbers): every error
  names the sheet, the row, the column and the value.

Every row is validated against the JSON schema ``workflow/schemas/photo_sheet.schema.yaml``
(``jsonschema``) after its empty cells are dropped; the header, duplicates and the photo names
(which need the input folder) are checked here.  Any problem raises
:class:`oldphoto.errors.ConfigError` before any work starts.

Limitation: a photo whose file name starts with ``#`` cannot be listed (the line reads as a
comment); it takes the run's settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

from oldphoto.errors import ConfigError

#: Columns every sheet's header must have.
REQUIRED_COLUMNS: tuple[str, ...] = ("photo", "with_scratch", "hr", "faces")

#: Every column a sheet may have, in the order the starter sheet writes them.  Each setting
#: column is the config key of the same name.
COLUMNS: tuple[str, ...] = REQUIRED_COLUMNS + (
    "tone", "output_format", "jpeg_quality", "face_blending", "face_detector", "face_upsample",
    "only_center_face", "max_faces")

#: The per-photo settings (every column but ``photo``).
SETTINGS: tuple[str, ...] = COLUMNS[1:]

#: The value of a setting that neither the photo's row nor the run's config sets: the official
#: behaviour (``run.py`` without options).  ``max_faces`` None = every face.
DEFAULTS: dict[str, Any] = {
    "with_scratch": False,
    "hr": False,
    "faces": True,
    "tone": "official",
    "output_format": "png",
    "jpeg_quality": 95,
    "face_blending": "official",
    "face_detector": "hog",
    "face_upsample": 0,
    "only_center_face": False,
    "max_faces": None,
}

_SCHEMA_RELATIVE = Path("workflow") / "schemas" / "photo_sheet.schema.yaml"


def default_schema_path() -> Path:
    """``workflow/schemas/photo_sheet.schema.yaml`` of the checkout this package lives in."""
    return Path(__file__).resolve().parents[2] / _SCHEMA_RELATIVE


def _load_schema(schema_path: str | Path | None) -> dict[str, Any]:
    import yaml

    path = Path(schema_path) if schema_path is not None else default_schema_path()
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(path, f"cannot read the photo sheet schema: {err.strerror or err}") \
            from None


def _typed(column: str, value: str) -> Any:
    """A validated cell as the setting's canonical value (:mod:`oldphoto.spellings`): bool,
    int, ``"auto"``, ``output_format`` ``png|tiff|jpeg|same``, or the string."""
    from oldphoto import spellings

    if column == "with_scratch":
        return spellings.with_scratch(value)
    if column in ("hr", "faces", "only_center_face"):
        return spellings.boolean(value)
    if column == "output_format":
        return spellings.output_format(value)
    if column in ("face_upsample", "max_faces", "jpeg_quality"):
        return int(value)
    return value


def _describe_error(error: Any, schema: Mapping[str, Any]) -> str:
    """What a jsonschema error on one cell means, with the values the column takes."""
    if error.validator == "required":
        return "empty; every row needs the photo's file name"
    column = error.path[-1] if error.path else None
    spec = schema["properties"].get(column, {})
    if "enum" in spec:
        return "expected one of " + ", ".join(spec["enum"])
    if column == "max_faces":
        return "expected a whole number ≥ 0"
    if column == "jpeg_quality":
        return "expected a whole number from 1 to 100"
    return error.message


def _split_lines(text: str) -> list[tuple[int, list[str]]]:
    """(1-based line number, cells) of every line that is neither blank nor a comment."""
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        rows.append((number, [cell.strip() for cell in line.rstrip().split("\t")]))
    return rows


def read_sheet(path: str | Path, photos: Mapping[str, Path], input_dir: str | Path,
               schema_path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """Read and validate a photo sheet; returns ``{stem: {setting: value}}`` for its rows.

    Args:
        path: the TSV sheet.
        photos: the discovered photos, stem → file (``oldphoto.inputs.list_inputs(...).images``).
        input_dir: the folder they were discovered in (to explain names that are not photos).
        schema_path: the row schema (default :func:`default_schema_path`).

    Each row's dict holds only its non-empty cells, typed: ``with_scratch`` True/False/``"auto"``,
    ``hr``/``faces``/``only_center_face`` bool, ``output_format`` its canonical value (``tif`` ->
    ``tiff``, ``jpg`` -> ``jpeg``), ``face_upsample``/``max_faces``/``jpeg_quality`` int, the
    others the (lower-case) string.  Every listed photo has an entry, possibly empty.

    Raises:
        ConfigError: unreadable sheet, missing or unknown column, bad value, photo not in the
            input folder (or skipped by discovery), duplicate row or column; the message names
            the sheet, the row (line number), the column and the value.
    """
    import jsonschema

    sheet = Path(path)
    try:
        text = sheet.read_bytes().decode("utf-8-sig")
    except OSError as err:
        raise ConfigError(sheet, f"cannot read the photo sheet: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise ConfigError(sheet, f"the photo sheet is not UTF-8 text (byte {err.start})") \
            from None
    schema = _load_schema(schema_path)
    known = tuple(schema["properties"])
    required = tuple(schema.get("x-required-columns", REQUIRED_COLUMNS))

    lines = _split_lines(text)
    if not lines:
        raise ConfigError(sheet, "the photo sheet is empty: it needs a header row with the "
                                 "columns " + ", ".join(required))
    header_row, header = lines[0]
    header = [column.lower() for column in header]
    if len(header) == 1 and any(sep in header[0] for sep in ",; "):
        raise ConfigError(sheet, f"row {header_row}: the header {header[0]!r} is not "
                                 "tab-separated; save the sheet as TSV (tab between columns)")
    seen_columns: set[str] = set()
    for column in header:
        if column not in known:
            raise ConfigError(sheet, f"row {header_row}, column {column!r}: unknown column; "
                                     f"known: {', '.join(known)}")
        if column in seen_columns:
            raise ConfigError(sheet, f"row {header_row}, column {column!r}: column given twice")
        seen_columns.add(column)
    missing = [column for column in required if column not in seen_columns]
    if missing:
        raise ConfigError(sheet, f"row {header_row}: the header lacks column(s) "
                                 f"{', '.join(missing)} (required: {', '.join(required)})")

    by_name = {file.name: stem for stem, file in photos.items()}
    validator = jsonschema.Draft202012Validator(schema)
    result: dict[str, dict[str, Any]] = {}
    first_row: dict[str, int] = {}
    for number, cells in lines[1:]:
        extra = [cell for cell in cells[len(header):] if cell]
        if extra:
            raise ConfigError(sheet, f"row {number}, column {len(header) + 1} (beyond the "
                                     f"header): value {extra[0]!r}; the header has "
                                     f"{len(header)} columns")
        row = {column: cell for column, cell in zip(header, cells) if cell}
        name = row.get("photo", "")
        values = {column: (cell if column == "photo" else cell.lower())
                  for column, cell in row.items()}
        for error in sorted(validator.iter_errors(values), key=lambda e: list(e.path)):
            column = error.path[-1] if error.path else "photo"
            shown = values.get(column, "")
            raise ConfigError(sheet, f"row {number} (photo {name!r}), column {column!r}: value "
                                     f"{shown!r}: {_describe_error(error, schema)}")
        stem = by_name.get(name)
        if stem is None:
            raise ConfigError(sheet, f"row {number}, column 'photo': value {name!r}: "
                                     f"{_not_a_photo(name, Path(input_dir), photos)}")
        if stem in first_row:
            raise ConfigError(sheet, f"row {number}, column 'photo': value {name!r}: listed "
                                     f"again (first in row {first_row[stem]}); one row per photo")
        first_row[stem] = number
        result[stem] = {column: _typed(column, value) for column, value in values.items()
                        if column != "photo"}
    return result


def _not_a_photo(name: str, input_dir: Path, photos: Mapping[str, Path]) -> str:
    """Why a sheet's photo name is not one of the discovered photos."""
    from oldphoto.inputs import list_inputs

    where = f"the input folder {input_dir}"
    if "/" in name or "\\" in name:
        return f"not a file directly in {where} (sub-folders are not searched)"
    if (input_dir / name).exists() or (input_dir / name).is_symlink():
        try:
            skipped = dict(list_inputs(input_dir).skipped)
        except ConfigError:
            skipped = {}
        reason = skipped.get(input_dir / name)
        return (f"in {where} but not used as a photo" + (f" ({reason})" if reason else ""))
    if name in photos:
        return f"no such file in {where}; did you mean {photos[name].name!r}?"
    return f"no such photo in {where}"


def write_starter_sheet(input_dir: str | Path, path: str | Path, *,
                        overwrite: bool = False) -> list[str]:
    """Write a sheet listing every photo of ``input_dir`` with ``with_scratch=auto``.

    Every column of :data:`COLUMNS` is there, the other cells empty (= the run's setting), under a
    commented header that explains the columns.  Returns the photo file names written, in
    discovery (stem) order.

    Raises:
        ConfigError: ``path`` exists and ``overwrite`` is False, the input folder cannot be
            listed, or the sheet cannot be written.
    """
    from oldphoto.inputs import list_inputs

    target = Path(path)
    if target.exists() and not overwrite:
        raise ConfigError(target, "exists and was left as it is (overwrite=True replaces it)")
    names = [file.name for file in list_inputs(input_dir).images.values()]
    comment = [
        "# oldphoto photo sheet (docs/photo_sheet.md): one row per photo, tab-separated.",
        "# An empty cell means the run's setting (config key of the same name).",
        "# photo: file name in the input folder; rows for photos not listed use the run's",
        "#   settings.  Lines starting with '#' are comments.",
        "# with_scratch: yes | no | auto (the scratch detector's mask decides)",
        "# hr, faces, only_center_face: yes | no  (true | false too)",
        "# tone: keep | official",
        "# output_format: png | tiff (tif) | jpeg (jpg) | same (the input's format)",
        "# jpeg_quality: 1-100 (only used when the photo's final output is a JPEG)",
        "# face_blending: official | adaptive    face_detector: hog | cnn",
        "# face_upsample: 0 | 1 | 2 (finds smaller faces, slower)",
        "# max_faces: enhance at most this many faces, the largest first",
    ]
    rows = ["\t".join(COLUMNS)]
    for name in names:
        rows.append("\t".join([name, "auto"] + [""] * (len(COLUMNS) - 2)))
    text = "\n".join(comment + rows) + "\n"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".tmp-{target.name}")
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(target)
    except OSError as err:
        raise ConfigError(target, f"cannot write the photo sheet: {err.strerror or err}") \
            from None
    return names


class PhotoSettings(dict):
    """One photo's effective settings (setting -> value), as :func:`effective_settings` makes
    them, knowing which of them its row of the photo sheet set.

    A plain dict for every other use (params, ``run_summary.json``); ``from_sheet`` holds the
    settings whose value is the photo's sheet cell, the others are the run's (its config, or
    :data:`DEFAULTS` where the config has no value).
    """

    def __init__(self, values: Mapping[str, Any], from_sheet: Iterable[str] = ()) -> None:
        super().__init__(values)
        self.from_sheet: frozenset[str] = frozenset(from_sheet)

    def source(self, key: str) -> str:
        """``"sheet"`` (the photo's row set it) or ``"run"`` (the run's setting)."""
        return "sheet" if key in self.from_sheet else "run"


def effective_settings(run_config: Mapping[str, Any],
                       overrides: Mapping[str, Any]) -> PhotoSettings:
    """One photo's settings: for each of :data:`SETTINGS`, the photo's sheet cell if it has one,
    else the run's config value, else :data:`DEFAULTS`.

    ``overrides`` is the photo's entry of :func:`read_sheet` (or ``{}``).  ``with_scratch`` may
    still be ``"auto"`` here; the triage decides it later (:mod:`oldphoto.triage`).
    """
    unknown = sorted(set(overrides) - set(SETTINGS))
    if unknown:
        raise ValueError(f"not per-photo settings: {unknown}")
    settings = {}
    for key in SETTINGS:
        if key in overrides:
            settings[key] = overrides[key]
        elif key in run_config:
            settings[key] = run_config[key]
        else:
            settings[key] = DEFAULTS[key]
    return PhotoSettings(settings, from_sheet=overrides)


def sheet_cell(column: str, value: Any) -> str:
    """A setting's value as the sheet writes it: ``yes``/``no`` for booleans, ``auto``, whole
    numbers as digits, ``""`` for None (= the run's setting); the inverse of reading a cell."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    text = str(value).strip()
    if column != "photo":
        text = text.lower()
        if text in ("true", "false"):
            text = "yes" if text == "true" else "no"
    return text


def write_sheet_row(path: str | Path, photo: str, values: Mapping[str, Any],
                    schema_path: str | Path | None = None) -> bool:
    """Write one photo's row of a sheet, replacing its row if it has one; returns True when the
    file changed.

    ``values`` maps setting columns to a value (typed as :func:`read_sheet` returns them, or the
    cell's text); a missing column or None leaves the cell empty (= the run's setting).  Every
    other line of the sheet — comments, blank lines, the other photos' rows — is kept byte for
    byte, and so are a byte-order mark and Windows line ends; a column the header lacks is added
    at its end (the other rows keep their cells: a missing trailing cell is an empty one).  A
    sheet that does not exist is created with every column of :data:`COLUMNS`.  The row is
    validated by the sheet's schema before anything is written, and the file is replaced
    atomically (:func:`oldphoto.atomic.write_bytes_atomic`): a reader sees the old sheet or the
    new one, never a half-written one.

    Raises:
        ConfigError: unknown column, a value the schema refuses (naming the column and value),
            an unreadable sheet, or one whose header is not a valid sheet header.
    """
    import jsonschema

    from oldphoto.atomic import write_bytes_atomic

    sheet = Path(path)
    schema = _load_schema(schema_path)
    cells = {column: sheet_cell(column, value) for column, value in values.items()}
    unknown = sorted(set(cells) - set(SETTINGS))
    if unknown:
        raise ConfigError(sheet, f"not sheet columns: {', '.join(unknown)}")
    if not photo or "\t" in photo or "\n" in photo or photo.lstrip().startswith("#"):
        raise ConfigError(sheet, f"photo {photo!r}: cannot be written as a sheet row")
    row = {"photo": photo, **{column: cell for column, cell in cells.items() if cell}}
    for error in jsonschema.Draft202012Validator(schema).iter_errors(row):
        column = error.path[-1] if error.path else "photo"
        raise ConfigError(sheet, f"photo {photo!r}, column {column!r}: value "
                                 f"{row.get(column, '')!r}: {_describe_error(error, schema)}")

    if sheet.exists():
        try:
            raw = sheet.read_bytes()
            text = raw.decode("utf-8-sig")
        except OSError as err:
            raise ConfigError(sheet, f"cannot read the photo sheet: {err.strerror or err}") \
                from None
        except UnicodeDecodeError as err:
            raise ConfigError(sheet, f"the photo sheet is not UTF-8 text (byte {err.start})") \
                from None
        bom = raw.startswith(b"\xef\xbb\xbf")
    else:
        text, bom = "\t".join(COLUMNS) + "\n", False
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = text.splitlines()
    content = [(i, line) for i, line in enumerate(lines)
               if line.strip() and not line.lstrip().startswith("#")]
    if not content:
        lines.append("\t".join(COLUMNS))
        content = [(len(lines) - 1, lines[-1])]
    header_index, header_line = content[0]
    header = [cell.strip().lower() for cell in header_line.rstrip().split("\t")]
    if "photo" not in header or set(header) - set(COLUMNS):
        raise ConfigError(sheet, f"row {header_index + 1}: not a photo sheet header "
                                 f"({header_line.strip()!r})")
    missing = [column for column in COLUMNS if column in cells and column not in header]
    if missing:
        header += missing
        lines[header_index] = header_line.rstrip() + "".join("\t" + c for c in missing)
    new_line = "\t".join(row.get(column, "") for column in header).rstrip("\t")
    photo_at = header.index("photo")
    found = None
    for index, line in content[1:]:
        parts = line.rstrip().split("\t")
        if len(parts) > photo_at and parts[photo_at].strip() == photo:
            found = index
            break
    if found is None:
        lines.append(new_line)
    elif lines[found].rstrip() == new_line and not missing:
        return False
    else:
        lines[found] = new_line
    data = newline.join(lines) + newline
    write_bytes_atomic(sheet, (b"\xef\xbb\xbf" if bom else b"") + data.encode("utf-8"))
    return True
