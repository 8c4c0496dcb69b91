# Report: what people look at.  Every run makes scaled previews beside the stage folders (rule all
# requests them through get_final_output); `snakemake --report` then collects them:
#
#   snakemake --report results/report.html gallery   # one self-contained HTML file
#   snakemake --report results/report.zip gallery    # big runs: the files beside a report.html
#
# `gallery` is the report's target.  It takes every photo that has finished (a photo that failed
# or has not run yet has no final output, and Snakemake refuses to build a report with a missing
# item) and the run summary, whose caption shows restored/failed photos with their reasons and
# per-rule runtimes from the benchmark files, computed when the report is built.  The input
# functions of these rules are in common.smk, with all the others.


report: "../report/workflow.rst"


# The landing page (workflow.rst) embeds a thumbnail of every before/after preview.
report_lib.register_thumbnail_directive()


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
