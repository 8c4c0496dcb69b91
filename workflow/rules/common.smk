# Config validation, the run plan, and the input functions of every stage.  What a photo's
# settings imply (paths, networks, each job's settings) is worked out once by the library's run
# plan (src/oldphoto/plan); the functions here return its paths and values and read no file.

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

from oldphoto import requirements, scheduling  # noqa: E402
from oldphoto.errors import OldPhotoError  # noqa: E402
from oldphoto.jobs import protocol  # noqa: E402
from oldphoto.plan import build_plan  # noqa: E402
from oldphoto.plan.config import coerce_spellings  # noqa: E402
from oldphoto.plan.run import face_count  # noqa: E402

# `--config with_scratch=true` arrives as the string "true": the spellings of oldphoto.spellings
# (yes/no/true/false, output_format tif/jpg, any case) become one canonical value each.
coerce_spellings(config, "../schemas/config.schema.yaml", workflow.current_basedir)
validate(config, schema="../schemas/config.schema.yaml")

try:
    # Cluster jobs re-read the Snakefile: they take the main process's input discovery.  A
    # library, program or model file the run needs and lacks stops it here, before any job (a
    # dry run too), naming each with how to get it (docs/requirements.md).
    PLAN = build_plan(config, reuse_manifest=workflow.remote_exec)
    requirements.refuse_missing(config, PLAN.settings.values(), PLAN.backend,
                                PLAN.final_ext.values())
except OldPhotoError as err:
    raise WorkflowError(err.one_line())
L = PLAN.layout

# Snakemake at archive scale (oldphoto.scheduling): one rate-limit timer, each function's
# signature inspected once, fewer and larger garbage collections.
scheduling.coalesce_rate_limit_wakeups()
scheduling.cache_function_signatures()
scheduling.relax_garbage_collection()

# Scheduling settings reach the jobs through their environment, never through params.
os.environ.update(protocol.scheduling_environment(config))
JOB = protocol.job_command(SRC)


wildcard_constraints:
    # Any file name without a folder: the plan knows the photos.  (A regex of every photo's
    # stem made Snakemake re-scan it per job: 150 s instead of 73 s for the dry run of 10,000
    # arbitrarily named photos, bench/results/scale.md.)
    image=r"[^/]+",
    face=r"\d+",
    name=r"[A-Za-z0-9_]+",


def job_shell(task):
    """The shell line of a job: the entry point, its log and threads, its files and settings
    (the rule's params entries ``files`` and ``job``: oldphoto.jobs.protocol)."""
    client = JOB.replace("{", "{{").replace("}", "}}")
    return (f"{client} {task} rule={task} log={{log:q}} threads={{threads}} "
            "{params.files} {params.job}")


def job_files(wildcards, input, output):
    return protocol.file_arguments(input, output)


def get_input_image(wildcards):
    return PLAN.source(wildcards.image)


def get_stage1_inputs(wildcards):
    return PLAN.stage1_inputs(wildcards.image)


def get_models(stage):
    """Input function: the checkpoint caches a stage of the photo loads (none for classical)."""
    return lambda wildcards: PLAN.models(wildcards.image, stage)


def get_stage2(wildcards):
    """Stage 2 of a photo: its folder, or (per face) its record once the checkpoint has run."""
    if PLAN.per_face:
        folder = checkpoints.detect_faces.get(image=wildcards.image).output[0]
        return str(Path(folder) / "faces.json")
    return L.faces_dir(wildcards.image)


def get_enhanced_faces(wildcards):
    """Stage 4 input: the photo's folder of enhanced faces, or (per face) one file per face."""
    if not PLAN.per_face:
        return [L.enhanced_dir(wildcards.image)]
    count = face_count(get_stage2(wildcards))
    return [L.enhanced_face(wildcards.image, k) for k in range(1, count + 1)]


def get_checkpoint_records(wildcards):
    return PLAN.checkpoint_records(wildcards.image)


def get_change_map_inputs(wildcards):
    return PLAN.change_map_inputs(wildcards.image)


def get_triage_decision(wildcards):
    return PLAN.triage_inputs(wildcards.image)


def get_final_output():
    return PLAN.finals()


def network_resources(mem_mb):
    return {"gpu": config["gpu_per_job"], "mem_mb": mem_mb}


# Report views (made by detect_scratches and blend_faces; collected by report.smk).
from oldphoto import report as report_lib  # noqa: E402


def get_title(wildcards):
    """A photo's name as reStructuredText (the report captions)."""
    return report_lib.rst_text(wildcards.image)


def stage4_outputs(ext):
    """Stage 4's outputs for finals of extension ``ext``: the final, the report's views (not
    the final itself: a derivative is often tens of megabytes) and the provenance sidecar."""
    labels = {"photo": "{image}"}
    return {
        "final": L.final("{image}", ext),
        "before_after": report(L.preview("before-after", "{image}"), labels=labels,
                               caption="../report/preview.rst", category="Gallery"),
        # a folder: the strip only when the photo has faces (the report shows those only)
        "face_strip": report(directory(L.face_strip_dir("{image}")), labels=labels,
                             patterns=["{image}.faces.jpg"], caption="../report/faces.rst",
                             category="Faces"),
        "changes": report(L.preview("changes", "{image}"), labels=labels,
                          caption="../report/changes.rst", category="Changes"),
        "sidecar": L.sidecar("{image}"),
    }


def get_finished_report_items(wildcards):
    """The final output of every finished photo (checked when the report's DAG is built)."""
    finished = report_lib.finished_photos(PLAN.inputs.images, L.final_dir, PLAN.final_ext)
    return [PLAN.final(image) for image in finished]


# The console (main process only): one line per photo instead of Snakemake's job blocks, no
# error block for a photo whose reason the summary states, the dry run's opening and skipped
# files, and a summary that says so when everything is up to date (oldphoto.console).
from oldphoto import summary  # noqa: E402

if not workflow.remote_exec and not workflow.subprocess_exec:
    from snakemake.logging import logger as snakemake_logger

    from oldphoto import console

    console.RunConsole(
        PLAN.inputs.images,
        is_dry_run=lambda: workflow.dryrun,
        on_nothing_to_do=lambda dry: summary.finish_run(
            config, PLAN.inputs, PLAN.backend, ok=True, settings=PLAN.settings, up_to_date=True,
            write=not dry),
        on_dry_run=lambda: summary.announce(config, PLAN.backend, PLAN.inputs, PLAN.settings,
                                            banner=False),
        verbose=console.verbose_output(workflow.output_settings),
        progress=console.progress_wanted(workflow.output_settings),
    ).install(snakemake_logger)


onstart:
    from oldphoto.inputs import write_manifest

    write_manifest(PLAN.manifest, config["input_dir"], PLAN.folder)
    summary.announce(config, PLAN.backend, PLAN.inputs, PLAN.settings)


onsuccess:
    summary.finish_run(config, PLAN.inputs, PLAN.backend, ok=True, settings=PLAN.settings)


onerror:
    summary.finish_run(config, PLAN.inputs, PLAN.backend, ok=False, settings=PLAN.settings)
