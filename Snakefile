# oldphoto: "Bringing Old Photos Back to Life" as a Snakemake workflow.
#
#   snakemake --cores 2                      # restore config["input_dir"] into config["output_dir"]
#   snakemake --cores 8 --resources gpu=2    # workstation with two GPUs
#   snakemake --workflow-profile profiles/slurm   # SLURM cluster
#
# The stage folders under output_dir are the dependency graph (the official run.py layout):
#   stage_1_restore_output/{masks/input,masks/mask,origin,input_image,restored_image}/{image}.png
#   stage_2_detection_output/{image}/   (checkpoint: faces.json + {image}_{face}.png)
#   stage_3_face_output/each_img/{image}_{face}.png
#   final_output/{image}.{png,tif,jpg}   (output_format)
#   report/changes/{image}.changes.jpg, provenance/{image}.json   (change map, sidecar)

import os

from snakemake.utils import min_version

min_version("9.0")


# Defaults from the repository (absolute, so --directory and --configfile work from anywhere).
configfile: os.path.join(workflow.basedir, "config", "config.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/stage1.smk"
include: "workflow/rules/stage2.smk"
include: "workflow/rules/stage3.smk"
include: "workflow/rules/stage4.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        get_final_output(),
    default_target: True
