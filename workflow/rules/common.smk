# Config validation, the run plan, and the input functions of every stage.  What a photo's
# settings imply (files, networks, each job's settings) is worked out once by the library's run
# plan (oldphoto.plan); these functions hand the rules its paths and values and read no file.

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

from oldphoto import report as report_lib  # noqa: E402
from oldphoto import views as views_lib  # noqa: E402
from oldphoto import requirements, scheduling, summary  # noqa: E402
from oldphoto.errors import OldPhotoError  # noqa: E402
from oldphoto.inputs import write_manifest  # noqa: E402
from oldphoto.jobs import protocol  # noqa: E402
from oldphoto.plan import build_plan, face_count  # noqa: E402
from oldphoto.plan.config import coerce_spellings  # noqa: E402

# `--config with_scratch=true` arrives as the string "true": the spellings of oldphoto.spellings
# (yes/no/true/false, output_format tif/jpg, any case) become one canonical value each.
coerce_spellings(config, "../schemas/config.schema.yaml", workflow.current_basedir)
validate(config, schema="../schemas/config.schema.yaml")

try:
    # Cluster jobs re-read the Snakefile: they take the main process's input discovery.  What
    # the run needs and lacks stops it here, before any job, named (docs/requirements.md).
    PLAN = build_plan(config, reuse_manifest=workflow.remote_exec)
    requirements.refuse_missing(config, PLAN.settings.values(), PLAN.backend,
                                PLAN.final_ext.values())
except OldPhotoError as err:
    raise WorkflowError(err.one_line())
L = PLAN.layout

# Snakemake at archive scale (oldphoto.scheduling): one timer, signatures once, fewer GCs.
scheduling.coalesce_rate_limit_wakeups()
scheduling.cache_function_signatures()
scheduling.relax_garbage_collection()
# The console: one line per photo, and the summary (main process only).
summary.install_console(workflow, config, PLAN)

# Scheduling settings reach the jobs through their environment, never through params.
os.environ.update(protocol.scheduling_environment(config))
JOB = protocol.job_command(SRC).replace("{", "{{").replace("}", "}}")


wildcard_constraints:
    # Any file name: the plan knows the photos (a regex of stems is slow, bench/results/scale.md)
    image=r"[^/]+",
    face=r"\d+",
    name=r"[A-Za-z0-9_]+",


def job_shell(task):  # entry point, log, threads, files and settings (oldphoto.jobs.protocol)
    return f"{JOB} {task} rule={task} log={{log:q}} threads={{threads}} {{params.files}} " \
        "{params.job}"


def job_files(wildcards, input, output):
    return protocol.file_arguments(input, output)


def get_input_image(wildcards):
    return PLAN.source(wildcards.image)


def get_stage1_inputs(wildcards):
    return PLAN.stage1_inputs(wildcards.image)


def get_models(stage):  # the checkpoint caches of a stage: detector, stage1 or face
    return lambda wildcards: PLAN.models(wildcards.image, stage)


def get_stage2(wildcards):  # the photo's stage-2 folder, or (per face) its checkpoint's record
    if PLAN.per_face:
        folder = checkpoints.detect_faces.get(image=wildcards.image).output[0]
        return str(Path(folder, "faces.json"))
    return L.faces_dir(wildcards.image)


def get_enhanced_faces(wildcards):
    """The photo's folder of enhanced faces, or (per face) one file per face."""
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


def get_title(wildcards):  # a photo's name in the report's captions
    return report_lib.rst_text(wildcards.image)


def stage4_outputs(ext):
    """Stage 4's outputs for ``ext``: the final, the report's views (not the final: tens of MB)
    and the provenance sidecar."""
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


def get_final_output():
    return PLAN.finals()


def get_finished_report_items(wildcards):
    """The final output of every finished photo (checked when the report's DAG is built)."""
    finished = report_lib.finished_photos(PLAN.inputs.images, L.final_dir, PLAN.final_ext)
    return [PLAN.final(image) for image in finished]


onstart:
    write_manifest(PLAN.manifest, config["input_dir"], PLAN.folder)
    summary.announce(config, PLAN.backend, PLAN.inputs, PLAN.settings)


onsuccess:
    summary.finish_run(config, PLAN.inputs, PLAN.backend, ok=True, settings=PLAN.settings)


onerror:
    summary.finish_run(config, PLAN.inputs, PLAN.backend, ok=False, settings=PLAN.settings)
