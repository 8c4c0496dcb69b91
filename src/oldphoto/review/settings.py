"""The run a folder came from: its configuration, its photo sheet, and each photo's settings.

The contract between a review and the next run (docs/review.md, "The photo sheet"):

* A rejection's new settings go into **the run's photo sheet**: the one given to the review
  (``--photo-sheet``), else the one the run's configuration names (``photo_sheet`` in
  ``OUTPUT_DIR/oldphoto_config.yaml``, which the ``oldphoto`` command writes, or in the
  ``--configfile`` given to the review), else the folder's own sheet
  ``OUTPUT_DIR/photo_sheet.tsv`` (:attr:`oldphoto.layout.Layout.folder_sheet`), created on the
  first rejection with new settings.  The workflow reads the folder's own sheet whenever its
  configuration names none, so the next ``oldphoto`` or ``snakemake`` run on that folder uses it.
* When the run used a sheet that the review cannot locate (its summary says a photo's settings
  came from a sheet, but no configuration names one), the review refuses to write one, rather
  than write a sheet the next run would ignore.

:func:`photo_settings` is the review's one lookup of a photo's settings: the run plan's
(:func:`oldphoto.plan.settings.settings_of`) on the run's configuration and the sheet's row.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from oldphoto.errors import ConfigError
from oldphoto.layout import Layout
from oldphoto.plan.settings import settings_of
from oldphoto.sheet import SETTINGS, PhotoSettings, read_sheet

CONFIG_NAME = "oldphoto_config.yaml"
"""The configuration the ``oldphoto`` command records in the output folder (``oldphoto.cli``)."""


@dataclass
class RunContext:
    """Where a folder's run is described.

    Attributes:
        output_dir: the output folder (absolute).
        config: the run's configuration (``{}`` when unknown).
        config_file: the file it came from, None when unknown.
        workdir: the folder Snakemake ran in (the output folder for ``oldphoto`` runs).
        sheet: the photo sheet rejections are written to (it may not exist yet); None when it
            cannot be located (:attr:`sheet_problem` says why).
        sheet_problem: why no sheet can be written, or None.
        images: stem -> original file, from the run's input manifest.
    """

    output_dir: Path
    config: dict[str, Any]
    config_file: Path | None
    workdir: Path
    sheet: Path | None
    sheet_problem: str | None = None
    images: dict[str, Path] = field(default_factory=dict)
    _rows: dict[str, dict[str, Any]] | None = None
    _rows_key: tuple[int, int] | None = None
    _run_wide: dict[str, Any] | None = None

    @property
    def input_dir(self) -> Path | None:
        value = self.config.get("input_dir")
        return self._resolve(value) if value else None

    def _resolve(self, value: str) -> Path:
        path = Path(os.path.expanduser(value))
        return path if path.is_absolute() else (self.workdir / path)

    def sheet_rows(self) -> dict[str, dict[str, Any]]:
        """stem -> the cells of its sheet row (typed), re-read when the sheet file changed.

        Raises:
            ConfigError: the sheet is not valid (row, column and value named).
        """
        if self.sheet is None or not self.sheet.is_file():
            self._rows, self._rows_key = {}, None
            return {}
        stat = self.sheet.stat()
        key = (stat.st_mtime_ns, stat.st_size)
        if self._rows is None or key != self._rows_key:
            input_dir = self.input_dir or (next(iter(self.images.values())).parent
                                           if self.images else self.output_dir)
            self._rows = read_sheet(self.sheet, self.images, input_dir)
            self._rows_key = key
        return self._rows

    def run_wide(self, recorded: Mapping[str, Mapping[str, Any]] | None = None) -> dict:
        """The run's own values of the per-photo settings: from its configuration, or — for a
        run whose configuration is unknown — from ``run_summary.json``'s recorded settings of
        the photos whose sheet row did not set them."""
        if self.config:
            return dict(self.config)
        if self._run_wide is None:
            values: dict[str, Any] = {}
            for entry in (recorded or {}).values():
                settings = entry.get("settings") or {}
                for key in SETTINGS:
                    if key not in values and key in settings \
                            and key not in (entry.get("from_sheet") or ()):
                        values[key] = settings[key]
            self._run_wide = values
        return self._run_wide


def _load_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(path, f"cannot read the run's configuration: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(path, "the run's configuration is not a mapping of keys to values")
    return data


def run_context(output_dir: str | Path, *, configfile: str | Path | None = None,
                photo_sheet: str | Path | None = None, workdir: str | Path | None = None,
                summary: Mapping[str, Any] | None = None) -> RunContext:
    """Locate the run's configuration and photo sheet for the folder ``output_dir``.

    Args:
        output_dir: the output folder.
        configfile: the run's configuration file (plain ``snakemake`` runs); default the
            ``oldphoto`` command's ``OUTPUT_DIR/oldphoto_config.yaml`` when it exists.
        photo_sheet: the sheet to write rejections to; default: see the module's contract.
        workdir: the folder Snakemake ran in; default the output folder when the configuration
            is ``oldphoto``'s, else the current folder.
        summary: the folder's ``run_summary.json`` (to notice a sheet that cannot be located).
    """
    from oldphoto.review.folder import read_manifest

    out = Path(output_dir).resolve()
    config: dict[str, Any] = {}
    config_file: Path | None = None
    own = out / CONFIG_NAME
    if configfile is not None:
        config_file = Path(configfile).expanduser().resolve()
        config = _load_yaml(config_file)
        base = Path(workdir).resolve() if workdir else Path.cwd()
    elif own.is_file():
        config_file, config = own, _load_yaml(own)
        base = Path(workdir).resolve() if workdir else out
    else:
        base = Path(workdir).resolve() if workdir else Path.cwd()
    manifest = read_manifest(out)
    images = {stem: Path(p) for stem, p in (manifest.get("images") or {}).items()}
    context = RunContext(output_dir=out, config=config, config_file=config_file, workdir=base,
                         sheet=None, images=images)
    if photo_sheet is not None:
        context.sheet = Path(photo_sheet).expanduser().resolve()
    elif config.get("photo_sheet"):
        context.sheet = context._resolve(str(config["photo_sheet"]))
    else:
        used_sheet = any((entry.get("from_sheet") or [])
                         for entry in ((summary or {}).get("photos") or {}).values())
        folder_sheet = Path(Layout(str(out)).folder_sheet)
        if used_sheet and not folder_sheet.is_file():
            context.sheet_problem = (
                "the run took some photos' settings from a photo sheet that no configuration "
                "names (a plain snakemake run with --config photo_sheet=...?): start the review "
                "with --photo-sheet FILE (or --configfile) so that rejections go to that sheet")
        else:
            context.sheet = folder_sheet
    return context


def photo_settings(context: RunContext, photo: str,
                   recorded: Mapping[str, Mapping[str, Any]] | None = None) -> PhotoSettings:
    """The photo's effective settings: its sheet row's cells, else the run's values, else the
    defaults, as the run plan computes them (:func:`oldphoto.plan.settings.settings_of`).

    The one lookup of a photo's settings for the review (the page, the record, the rerun);
    ``recorded`` is ``run_summary.json``'s ``photos`` (used only when the run's configuration
    is unknown).

    Raises:
        ConfigError: the photo sheet is not valid.
    """
    return settings_of(context.run_wide(recorded), context.sheet_rows(), [photo])[photo]
