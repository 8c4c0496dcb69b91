# Config validation, input discovery, backend choice and the input functions of every stage.
# Everything computed lives here or in the library (src/oldphoto); the stage files stay declarative.

import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# The DAG is built from this checkout's library; jobs import the installed package
# (scripts/install.sh installs it in editable mode).
_SRC = str(Path(workflow.basedir) / "src")
if _SRC not in sys.path:
    sys.path.insert(0, _SRC)

from oldphoto import workflow_support as ws  # noqa: E402
from oldphoto.errors import OldPhotoError  # noqa: E402

# `--config with_scratch=true` arrives as the string "true": accept true/false/yes/no/1/0.
ws.coerce_booleans(config, "../schemas/config.schema.yaml", workflow.current_basedir)
validate(config, schema="../schemas/config.schema.yaml")

OUT = config["output_dir"].rstrip("/")
S1 = f"{OUT}/stage_1_restore_output"
S2 = f"{OUT}/stage_2_detection_output"
S3 = f"{OUT}/stage_3_face_output/each_img"
S3_BY_PHOTO = f"{OUT}/stage_3_face_output/by_photo"  # face_jobs: per_image
FINAL = f"{OUT}/final_output"
LOGS = f"{OUT}/logs"
BENCH = f"{OUT}/benchmarks"

try:
    INPUTS = ws.discover_inputs(config["input_dir"])
    BACKEND = ws.resolve_backend(config)
except OldPhotoError as err:
    raise WorkflowError(err.one_line())

FACE_SIZE = 512 if config["hr"] else 256
NETWORK_RULE_GPU = config["gpu_per_job"]


wildcard_constraints:
    image=ws.stems_regex(INPUTS.images),
    face=r"\d+",
    name=r"[A-Za-z0-9_]+",


def get_input_image(wildcards):
    """The original file of one photo (any extension, any case)."""
    return str(INPUTS.images[wildcards.image])


def get_stage1_inputs(wildcards):
    """Global restoration reads the original photo, or the detector's outputs with scratches."""
    if config["with_scratch"]:
        return {
            "image": f"{S1}/masks/input/{wildcards.image}.png",
            "mask": f"{S1}/masks/mask/{wildcards.image}.png",
        }
    return {"image": get_input_image(wildcards)}


def cached_checkpoint(name):
    return f"{config['cache_dir']}/{name}.safetensors"


def get_models(*names):
    """Input function: the verified checkpoint caches a network rule needs (none for classical)."""
    group = "face" if set(names) & {"Setting_9_epoch_100", "FaceSR_512"} else "global"

    def _models(wildcards):
        if BACKEND[group] != "pretrained":
            return {}
        return {name: cached_checkpoint(name) for name in names}

    return _models


def stage1_model_names():
    mapping = "mapping_scratch"
    if config["with_scratch"] and config["hr"]:
        mapping = "mapping_Patch_Attention"
    elif not config["with_scratch"]:
        mapping = "mapping_quality"
    decoder = "VAE_B_scratch" if config["with_scratch"] else "VAE_B_quality"
    return ["VAE_A_quality", mapping, decoder]


FACE_MODEL = "FaceSR_512" if config["hr"] else "Setting_9_epoch_100"


def face_record(image):
    """After the stage-2 checkpoint of one photo: its faces.json path."""
    return Path(checkpoints.detect_faces.get(image=image).output[0]) / "faces.json"


def get_enhanced_faces(wildcards):
    """Stage 4 input: every enhanced face of this photo (known once stage 2 has run): one file per
    face (face_jobs: per_face), or the photo's folder of faces (per_image)."""
    count = ws.face_count(face_record(wildcards.image))
    if count and config["face_jobs"] == "per_image":
        return [f"{S3_BY_PHOTO}/{wildcards.image}"]
    return [f"{S3}/{wildcards.image}_{k}.png" for k in range(1, count + 1)]


def get_final_output():
    return expand(f"{FINAL}/{{image}}.png", image=sorted(INPUTS.images)) + get_report_previews(
        sorted(INPUTS.images)
    )  # get_report_previews: report.smk


def network_resources(mem_mb):
    return {"gpu": NETWORK_RULE_GPU, "mem_mb": mem_mb}


# ---------------------------------------------------------------------------------------------
# Report previews (workflow/rules/report.smk)

from oldphoto import report as report_lib  # noqa: E402

REPORT = f"{OUT}/report"
SUMMARY = f"{OUT}/{ws.SUMMARY_NAME}"
PREVIEW_WIDTH = report_lib.PREVIEW_WIDTH


def before_after_preview(image):
    return f"{REPORT}/previews/{image}.before-after.jpg"


def scratch_preview(image):
    return f"{REPORT}/masks/{image}.scratches.jpg"


def face_preview(image):
    return f"{REPORT}/faces/{image}.faces.jpg"


def face_preview_of(image):
    """Input function: the face strip of ``image`` once stage 2 found faces, else nothing."""

    def _face_preview(wildcards):
        return [face_preview(image)] if ws.face_count(face_record(image)) else []

    return _face_preview


def get_report_previews(images):
    """What every run makes for the report: per photo a before/after preview, the scratch mask
    over the photo (with_scratch), and the face strip (photos with faces, after stage 2)."""
    previews = [before_after_preview(image) for image in images]
    if config["with_scratch"]:
        previews += [scratch_preview(image) for image in images]
    return previews + [face_preview_of(image) for image in images]


def get_aligned_faces(wildcards):
    """Stage-2 aligned faces of this photo (known once stage 2 has run), in face order."""
    count = ws.face_count(face_record(wildcards.image))
    return [f"{S2}/{wildcards.image}/{wildcards.image}_{k}.png" for k in range(1, count + 1)]


def get_finished_report_items(wildcards):
    """What the report can show: for every photo with a final output, the final output and
    whichever of its previews exist (files are checked when the report's DAG is built)."""
    items = []
    for image in report_lib.finished_photos(INPUTS.images, FINAL):
        items.append(f"{FINAL}/{image}.png")
        previews = [before_after_preview(image), face_preview(image)]
        if config["with_scratch"]:
            previews.append(scratch_preview(image))
        items += [preview for preview in previews if Path(preview).is_file()]
    return items


def preview_params(rule):
    return lambda wc: ws.job_params(config, BACKEND, rule, wc.image)


onstart:
    ws.announce(config, BACKEND, INPUTS)


onsuccess:
    ws.finish_run(config, INPUTS, BACKEND, ok=True)


onerror:
    ws.finish_run(config, INPUTS, BACKEND, ok=False)
