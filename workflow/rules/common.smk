# Config validation, input discovery, modes, backend choice and the input functions of every
# stage.  Everything computed lives here or in the library (src/oldphoto); the stage files stay
# declarative.  Input functions return paths and values: none of them reads a file.

import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# The DAG is built from this checkout's library, and every job runs it too (job_command puts
# src/ on PYTHONPATH), so a conda environment needs only the dependencies.
SRC = str(Path(workflow.basedir) / "src")
if SRC not in sys.path:
    sys.path.insert(0, SRC)

from oldphoto import dag  # noqa: E402
from oldphoto.errors import OldPhotoError  # noqa: E402
from oldphoto.layout import Layout  # noqa: E402
from oldphoto.mode import Mode  # noqa: E402

# `--config with_scratch=true` arrives as the string "true": the spellings of oldphoto.spellings
# (yes/no/true/false, output_format tif/jpg, any case) become one canonical value each.
dag.coerce_spellings(config, "../schemas/config.schema.yaml", workflow.current_basedir)
validate(config, schema="../schemas/config.schema.yaml")

L = Layout(config["output_dir"])
MANIFEST = f"{L.run_dir}/{dag.manifest_name(config.get('shard'))}"

try:
    # Cluster jobs re-read the Snakefile: they take the main process's input discovery.
    FOLDER = dag.load_folder(config, MANIFEST, reuse_manifest=workflow.remote_exec)
    INPUTS = dag.shard_inputs(config, FOLDER)  # the folder, or its shard (shard: i/n)
    RUN_MODE = dag.run_mode(config)
    # Each photo's settings: its row of the photo sheet, else the run's (validated here).
    SETTINGS = dag.photo_settings(config, INPUTS, FOLDER)
    MODES = {image: dag.mode_of_settings(s) for image, s in SETTINGS.items()}
    AUTO = {image for image, s in SETTINGS.items() if s["with_scratch"] == "auto"}
    # auto photos may take the quality path: their backend needs its networks too
    BACKEND = dag.resolve_backend(
        config, set(MODES.values()) | {Mode(False, m.hr) for i, m in MODES.items() if i in AUTO}
        or {RUN_MODE},
    )
except OldPhotoError as err:
    raise WorkflowError(err.one_line())

IMAGES = sorted(INPUTS.images)
# The extension of each photo's final output (its output_format; `same` follows the input's).
FINAL_EXT = dag.final_extensions(SETTINGS, INPUTS.images)

# A library, program or model file the run needs and lacks stops it here, before any job (a dry
# run too), naming each with how to get it (oldphoto.requirements, docs/requirements.md).
from oldphoto import requirements  # noqa: E402

try:
    requirements.refuse_missing(config, SETTINGS.values(), BACKEND, FINAL_EXT.values())
except OldPhotoError as err:
    raise WorkflowError(err.one_line())

PER_FACE = config["face_jobs"] == "per_face"

# Snakemake at archive scale (oldphoto.scheduling): its rate-limit timers pile up (keep one), it
# inspects every input/params function's signature again per job (once per function), and the
# garbage collector walks its millions of DAG objects thousands of times (fewer, larger rounds).
from oldphoto import scheduling  # noqa: E402

scheduling.coalesce_rate_limit_wakeups()
scheduling.cache_function_signatures()
scheduling.relax_garbage_collection()

# Scheduling settings reach the jobs through their environment, never through params.
os.environ.update(dag.scheduling_environment(config))
JOB = dag.job_command(SRC)


wildcard_constraints:
    # Any file name without a folder: the input functions know the photos.  (A regex of every
    # photo's stem made Snakemake re-scan it per job: 150 s instead of 73 s for the dry run of
    # 10,000 arbitrarily named photos, bench/results/scale.md.)
    image=r"[^/]+",
    face=r"\d+",
    name=r"[A-Za-z0-9_]+",


def job_shell(task, rule_name=None):
    """The shell line of a job: the client (JOB, written in as it is), its log and threads, its
    files and its settings (the rule's params entries ``files`` and ``job``)."""
    client = JOB.replace("{", "{{").replace("}", "}}")
    return (f"{client} {task} rule={rule_name or task} log={{log:q}} threads={{threads}} "
            "{params.files} {params.job}")


def job_files(wildcards, input, output):
    """Params entry ``files``: the job's named inputs and outputs as client arguments."""
    return dag.job_arguments(input, output)


def job_args(wildcard="image", **settings):
    """Params entry ``job``: the photo and its settings (each a value or an input function of
    the photo) as the client's arguments — one entry and one shell field, not one per setting
    (dag.job_params: Snakemake's cost per job at archive scale)."""
    return dag.job_params(settings, wildcard)


def mode_of(image):
    return MODES[image]


def photo_setting(key):
    """Input/params function: one of a photo's effective settings (sheet row, else config)."""
    return lambda wildcards: SETTINGS[wildcards.image][key]


# ---------------------------------------------------------------------------------------------
# Stage 1


def get_input_image(wildcards):
    """The original file of one photo (any extension, any case)."""
    return str(INPUTS.images[wildcards.image])


def get_stage1_inputs(wildcards):
    """Global restoration reads the original photo, or the detector's outputs with scratches."""
    image = wildcards.image
    if image in AUTO:  # the triage decides: the detector's outputs, or the original
        return {"image": L.scratch_input(image), "mask": L.scratch_mask(image),
                "original": get_input_image(wildcards), "triage": L.triage(image)}
    if mode_of(image).with_scratch:
        return {"image": L.scratch_input(image), "mask": L.scratch_mask(image)}
    return {"image": get_input_image(wildcards)}


def cached_checkpoint(name):
    return f"{config['cache_dir']}/{name}.safetensors"


def get_detector(wildcards):
    if BACKEND["global"] != "pretrained":
        return {}
    return {"detection": cached_checkpoint("detection")}


def get_stage1_models(wildcards):
    """The verified checkpoint caches of this photo's stage-1 networks (none for classical)."""
    if BACKEND["global"] != "pretrained":
        return {}
    mode = mode_of(wildcards.image)
    names = list(mode.stage1_networks)
    if wildcards.image in AUTO:
        names += [n for n in Mode(False, mode.hr).stage1_networks if n not in names]
    return {name: cached_checkpoint(name) for name in names}


def get_face_model(wildcards):
    if BACKEND["face"] != "pretrained":
        return {}
    name = mode_of(wildcards.image).face_network
    return {name: cached_checkpoint(name)}


def get_mode(wildcards):
    return mode_of(wildcards.image).key


def get_triage(wildcards):
    return "auto" if wildcards.image in AUTO else "-"


def get_test_mode(wildcards):
    """Quality-path geometry; the scratch paths and the classical backend do not resize."""
    quality = not mode_of(wildcards.image).with_scratch or wildcards.image in AUTO
    return config["test_mode"] if quality and BACKEND["global"] == "pretrained" else "-"


# The same for every photo of a run: plain values, no input function to evaluate per job.
STRETCH = config["stage1_stretch"] if BACKEND["global"] == "pretrained" else "-"


# ---------------------------------------------------------------------------------------------
# Stages 2-4


def get_face_size(wildcards):
    return mode_of(wildcards.image).face_size


def get_faces(wildcards):
    """Stage-2 options of a photo, one string ("no" = no face detection)."""
    s = SETTINGS[wildcards.image]
    if not s["faces"]:
        return "no"
    return dag.face_options_key(s)


def get_face_network(wildcards):
    return mode_of(wildcards.image).face_network if BACKEND["face"] == "pretrained" else "-"


def face_record(image):
    """After the stage-2 checkpoint of one photo (face_jobs: per_face): its faces.json path."""
    return Path(checkpoints.detect_faces.get(image=image).output[0]) / "faces.json"


def get_stage2(wildcards):
    """Stage-2 output of a photo: its folder (one stage-3 job per photo, no checkpoint) or, per
    face, its record once the checkpoint has run."""
    if PER_FACE:
        return str(face_record(wildcards.image))
    return L.faces_dir(wildcards.image)


def get_enhanced_faces(wildcards):
    """Stage 4 input: the photo's folder of enhanced faces, or (per face) one file per face."""
    if not PER_FACE:
        return [L.enhanced_dir(wildcards.image)]
    count = dag.face_count(face_record(wildcards.image))
    return [L.enhanced_face(wildcards.image, k) for k in range(1, count + 1)]


def final_of(image):
    """The final output of one photo: final_output/<photo>.<png|tif|jpg>."""
    return L.final(image, FINAL_EXT[image])


def get_final(wildcards):
    return final_of(wildcards.image)


def get_checkpoint_records(wildcards):
    """The cache records (sha256 of each official checkpoint) of the networks this photo's mode
    uses, for its provenance; none for the classical backend."""
    mode = mode_of(wildcards.image)
    names = []
    if BACKEND["global"] == "pretrained":
        names += (["detection"] if mode.with_scratch else []) + list(mode.stage1_networks)
        if wildcards.image in AUTO:  # either path: stage 4 keeps those its triage chose
            names += [n for n in Mode(False, mode.hr).stage1_networks if n not in names]
    if BACKEND["face"] == "pretrained":
        names.append(mode.face_network)
    return [cached_checkpoint(name) + ".json" for name in names]


def get_final_output():
    """What a run makes: every photo's final output (its job writes the report views too)."""
    return [final_of(image) for image in IMAGES]


def network_threads(kind):
    """Threads of a network job (``kind``, "global" or "face"): config threads where the
    official networks run (torch's intra-op threads follow them), one for the classical backend,
    whose jobs gain more from running side by side (bench/results/scale.md)."""
    return config["threads"] if BACKEND[kind] == "pretrained" else 1


def network_resources(mem_mb):
    return {"gpu": config["gpu_per_job"], "mem_mb": mem_mb}


# ---------------------------------------------------------------------------------------------
# Report views (made by detect_scratches and blend_faces; collected by report.smk)

from oldphoto import report as report_lib  # noqa: E402
from oldphoto import views as views_lib  # noqa: E402

PREVIEW_WIDTH = views_lib.PREVIEW_WIDTH
CHANGE_MAP_WIDTH = views_lib.CHANGE_MAP_WIDTH


def get_title(wildcards):
    """A photo's name as reStructuredText (the report captions)."""
    return report_lib.rst_text(wildcards.image)


def get_change_map_inputs(wildcards):
    """Stage 4 of a photo restored in scratch mode reads its scratch mask: the change map
    outlines the filled scratches."""
    if mode_of(wildcards.image).with_scratch:
        return {"mask": L.scratch_mask(wildcards.image)}
    return {}


def get_triage_decision(wildcards):
    """Stage 4 of a with_scratch: auto photo reads its triage decision: the path it records is
    the path the photo took."""
    if wildcards.image in AUTO:
        return {"triage": L.triage(wildcards.image)}
    return {}


def stage4_outputs(ext):
    """The outputs of stage 4 for photos whose final output has extension ``ext``: the final
    output, the report's views and the provenance sidecar.  The report shows the views, not
    the final output itself (a derivative is often tens of megabytes: README, Report)."""
    return {
        "final": L.final("{image}", ext),
        "before_after": report(L.preview("before-after", "{image}"),
                               caption="../report/preview.rst", category="Gallery",
                               labels={"photo": "{image}"}),
        # a folder: the strip only when the photo has faces (the report shows those only)
        "face_strip": report(directory(L.face_strip_dir("{image}")),
                             patterns=["{image}.faces.jpg"], caption="../report/faces.rst",
                             category="Faces", labels={"photo": "{image}"}),
        "changes": report(L.preview("changes", "{image}"), caption="../report/changes.rst",
                          category="Changes", labels={"photo": "{image}"}),
        "sidecar": L.sidecar("{image}"),
    }


def get_finished_report_items(wildcards):
    """What the report can show: the final output of every photo that has one (files are
    checked when the report's DAG is built).  The report then holds what the jobs behind them
    flagged with report(): each photo's views and its scratch mask's."""
    return [final_of(image)
            for image in report_lib.finished_photos(INPUTS.images, L.final_dir, FINAL_EXT)]


BACKEND_LABEL = dag.backend_label(BACKEND)


# The console (main process only): one line per photo instead of Snakemake's job blocks, no
# error block for a photo whose reason the summary states, the dry run's opening and skipped
# files, and a summary that says so when everything is up to date (oldphoto.console).
if not workflow.remote_exec and not workflow.subprocess_exec:
    from snakemake.logging import logger as snakemake_logger

    from oldphoto import console
    from oldphoto import summary as run_summary

    console.RunConsole(
        INPUTS.images,
        is_dry_run=lambda: workflow.dryrun,
        on_nothing_to_do=lambda dry: run_summary.finish_run(
            config, INPUTS, BACKEND, ok=True, settings=SETTINGS, up_to_date=True, write=not dry
        ),
        on_dry_run=lambda: run_summary.announce(config, BACKEND, INPUTS, SETTINGS, banner=False),
        verbose=console.verbose_output(workflow.output_settings),
        progress=console.progress_wanted(workflow.output_settings),
    ).install(snakemake_logger)


onstart:
    from oldphoto import summary

    dag.write_manifest(MANIFEST, config["input_dir"], FOLDER)
    summary.announce(config, BACKEND, INPUTS, SETTINGS)


onsuccess:
    from oldphoto import summary

    summary.finish_run(config, INPUTS, BACKEND, ok=True, settings=SETTINGS)


onerror:
    from oldphoto import summary

    summary.finish_run(config, INPUTS, BACKEND, ok=False, settings=SETTINGS)
