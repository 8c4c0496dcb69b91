# Report: what people look at.  Every run makes scaled previews beside the stage folders (rule all
# requests them through get_final_output); `snakemake --report` then collects them:
#
#   snakemake --report results/report.html gallery   # one self-contained HTML file
#   snakemake --report results/report.zip gallery    # big runs: the files beside a report.html
#
# `gallery` is the report's target.  It takes every photo that has finished (a photo that failed
# or has not run yet has no final output, and Snakemake refuses to build a report with a missing
# item) and the run summary, whose caption shows restored/failed photos with their reasons and
# per-rule runtimes from the benchmark files, computed when the report is built.  These input
# functions live here rather than in common.smk because only this file and rule all use them.

from oldphoto import report as report_lib  # noqa: E402  (common.smk put src/ on the path)


report: "../report/workflow.rst"


# The landing page (workflow.rst) embeds a thumbnail of every before/after preview.
report_lib.register_thumbnail_directive()


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


rule make_preview:
    input:
        before=get_input_image,
        after=f"{FINAL}/{{image}}.png",
    output:
        report(
            f"{REPORT}/previews/{{image}}.before-after.jpg",
            caption="../report/preview.rst",
            category="Gallery",
            labels={"photo": "{image}"},
        ),
    log:
        f"{LOGS}/make_preview/{{image}}.log",
    benchmark:
        f"{BENCH}/make_preview/{{image}}.tsv"
    params:
        job=preview_params("make_preview"),
        kind="before_after",
        width=PREVIEW_WIDTH,
        title=lambda wc: report_lib.rst_text(wc.image),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../../envs/oldphoto.yaml"
    script:
        "../scripts/make_preview.py"


rule make_scratch_preview:
    input:
        image=f"{S1}/masks/input/{{image}}.png",
        mask=f"{S1}/masks/mask/{{image}}.png",
    output:
        report(
            f"{REPORT}/masks/{{image}}.scratches.jpg",
            caption="../report/scratches.rst",
            category="Scratch masks",
            labels={"photo": "{image}"},
        ),
    log:
        f"{LOGS}/make_scratch_preview/{{image}}.log",
    benchmark:
        f"{BENCH}/make_scratch_preview/{{image}}.tsv"
    params:
        job=preview_params("make_scratch_preview"),
        kind="scratches",
        width=PREVIEW_WIDTH,
        title=lambda wc: report_lib.rst_text(wc.image),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../../envs/oldphoto.yaml"
    script:
        "../scripts/make_preview.py"


rule make_face_preview:
    input:
        faces=lambda wc: face_record(wc.image),
        aligned=get_aligned_faces,
        enhanced=get_enhanced_faces,
    output:
        report(
            f"{REPORT}/faces/{{image}}.faces.jpg",
            caption="../report/faces.rst",
            category="Faces",
            labels={"photo": "{image}"},
        ),
    log:
        f"{LOGS}/make_face_preview/{{image}}.log",
    benchmark:
        f"{BENCH}/make_face_preview/{{image}}.tsv"
    params:
        job=preview_params("make_face_preview"),
        kind="faces",
        width=PREVIEW_WIDTH,
        title=lambda wc: report_lib.rst_text(wc.image),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../../envs/oldphoto.yaml"
    script:
        "../scripts/make_preview.py"


rule gallery:
    input:
        get_finished_report_items,
        summary=report(SUMMARY, caption="../report/summary.rst", category="Run summary"),
    params:
        tables=lambda wc: report_lib.report_tables(SUMMARY, BENCH),
