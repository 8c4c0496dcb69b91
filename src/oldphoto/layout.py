"""The output folder layout: one place that names every file a run writes.

The stage folders are the official ``run.py`` layout and, in the workflow, the dependency graph.
The Snakefile builds its rule patterns from these functions (called with ``"{image}"``), the run
summary and the report read finished runs through them, and the CLI points users at them.

::

    <output_dir>/
      stage_1_restore_output/masks/{input,mask}/<photo>.png     scratch detection
      stage_1_restore_output/masks/triage/<photo>.json          with_scratch: auto
      stage_1_restore_output/{origin,input_image,restored_image}/<photo>.png
      stage_2_detection_output/<photo>/faces.json, <photo>_<k>.png
      stage_3_face_output/by_photo/<photo>/<photo>_<k>.png      (face_jobs: per_image)
      stage_3_face_output/each_img/<photo>_<k>.png              (face_jobs: per_face)
      final_output/<photo>.<ext>                                png | tif | jpg (output_format)
      provenance/<photo>.json                                   the per-photo sidecar
      superseded/<photo>.<time>.<ext>(.json)                    finals a format change replaced
      report/{previews,masks,faces,changes}/...  logs/<rule>/  benchmarks/<rule>/  run_summary.json
      photo_sheet.tsv                                           the folder's own photo sheet
      review.sqlite                                             oldphoto review's record
      .oldphoto/                                                run bookkeeping (input manifest)

``final_output/`` holds only the restored photos.  Their extension follows ``output_format``
per photo (:func:`final_extension`: ``same`` takes the input's format from its file extension),
decided when the DAG is built, before any file is read.  The sidecar (``provenance/``) holds the
provenance record the final output's XMP states, the change-map statistics and the stage timings;
``final_output/`` stays a folder of images only, so the sidecars never mix with the photos.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from oldphoto.archival.formats import EXTENSIONS, output_format_for_file

SUMMARY_NAME = "run_summary.json"
FOLDER_SHEET = "photo_sheet.tsv"
"""The folder's own photo sheet: used when the run's config names none (``oldphoto review``
writes rejections there, docs/review.md)."""
STAGE1 = "stage_1_restore_output"
STAGE2 = "stage_2_detection_output"
STAGE3 = "stage_3_face_output"
FINAL = "final_output"
PROVENANCE = "provenance"
FINAL_EXTENSIONS = tuple(ext.lstrip(".") for ext in EXTENSIONS.values())
"""Every extension a final output can have (``png``, ``tif``, ``jpg``)."""


def final_extension(output_format: str, source: str | Path) -> str:
    """The extension (no dot) of a photo's final output: ``output_format`` (``png``, ``tiff``,
    ``jpeg`` or ``same``) for the input file ``source``."""
    return EXTENSIONS[output_format_for_file(output_format, source)].lstrip(".")


@dataclass(frozen=True)
class Layout:
    """Paths under one ``output_dir`` (strings, so ``"{image}"`` patterns work as well)."""

    output_dir: str

    def _path(self, *parts: str) -> str:
        return "/".join([self.output_dir.rstrip("/") or ".", *parts])

    # -- stage 1 ------------------------------------------------------------------------------
    def scratch_input(self, image: str) -> str:
        """The photo as scratch detection resized it (sides multiples of 16)."""
        return self._path(STAGE1, "masks", "input", f"{image}.png")

    def scratch_mask(self, image: str) -> str:
        return self._path(STAGE1, "masks", "mask", f"{image}.png")

    def triage(self, image: str) -> str:
        """The automatic scratch decision of a ``with_scratch: auto`` photo (JSON)."""
        return self._path(STAGE1, "masks", "triage", f"{image}.json")

    def stage1(self, kind: str, image: str) -> str:
        """``kind``: ``origin``, ``input_image`` or ``restored_image``."""
        return self._path(STAGE1, kind, f"{image}.png")

    def restored(self, image: str) -> str:
        return self.stage1("restored_image", image)

    # -- stages 2 and 3 -----------------------------------------------------------------------
    def faces_dir(self, image: str) -> str:
        return self._path(STAGE2, image)

    def faces_record(self, image: str) -> str:
        return self._path(STAGE2, image, "faces.json")

    def aligned_face(self, image: str, face: int | str) -> str:
        return self._path(STAGE2, image, f"{image}_{face}.png")

    def enhanced_dir(self, image: str) -> str:
        """All enhanced faces of a photo (one stage-3 job per photo)."""
        return self._path(STAGE3, "by_photo", image)

    def enhanced_face(self, image: str, face: int | str) -> str:
        """One enhanced face (one stage-3 job per face, the official ``each_img/`` layout)."""
        return self._path(STAGE3, "each_img", f"{image}_{face}.png")

    # -- stage 4 and the rest ---------------------------------------------------------------
    @property
    def final_dir(self) -> str:
        return self._path(FINAL)

    def final(self, image: str, ext: str = "png") -> str:
        return self._path(FINAL, f"{image}.{ext}")

    def sidecar(self, image: str) -> str:
        """The per-photo JSON sidecar: provenance, change statistics, stage timings."""
        return self._path(PROVENANCE, f"{image}.json")

    def log(self, rule: str, name: str) -> str:
        return self._path("logs", rule, f"{name}.log")

    @property
    def logs_dir(self) -> str:
        return self._path("logs")

    def benchmark(self, rule: str, name: str) -> str:
        return self._path("benchmarks", rule, f"{name}.tsv")

    @property
    def benchmarks_dir(self) -> str:
        return self._path("benchmarks")

    def preview(self, kind: str, image: str) -> str:
        """Report previews: ``before-after``, ``scratches``, ``faces`` or ``changes``.  The face
        strip lies in a folder of its own (:meth:`face_strip_dir`), empty when the photo has no
        face, so that the report shows strips of the photos with faces only."""
        if kind == "faces":
            return f"{self.face_strip_dir(image)}/{image}.faces.jpg"
        folder = {"before-after": "previews", "scratches": "masks", "changes": "changes"}[kind]
        return self._path("report", folder, f"{image}.{kind}.jpg")

    def face_strip_dir(self, image: str) -> str:
        return self._path("report", "faces", image)

    @property
    def summary(self) -> str:
        return self._path(SUMMARY_NAME)

    @property
    def folder_sheet(self) -> str:
        """The folder's own photo sheet (:data:`FOLDER_SHEET`), read when the config names none."""
        return self._path(FOLDER_SHEET)

    @property
    def run_dir(self) -> str:
        """Run bookkeeping: the input manifest, worker keys."""
        return self._path(".oldphoto")

    def root(self) -> Path:
        return Path(self.output_dir)
