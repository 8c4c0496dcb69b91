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
        after=get_final,
    output:
        preview=report(
            L.preview("before-after", "{image}"),
            caption="../report/preview.rst",
            category="Gallery",
            labels={"photo": "{image}"},
        ),
    log:
        L.log("make_preview", "{image}"),
    benchmark:
        L.benchmark("make_preview", "{image}")
    params:
        files=job_files,
        kind="before_after",
        width=PREVIEW_WIDTH,
        title=lambda wc: report_lib.rst_text(wc.image),
        backend=get_backend_label,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../../envs/oldphoto.yaml"
    shell:
        job_shell("make_preview", "kind", "width")


rule make_scratch_preview:
    input:
        image=L.scratch_input("{image}"),
        mask=L.scratch_mask("{image}"),
    output:
        preview=report(
            L.preview("scratches", "{image}"),
            caption="../report/scratches.rst",
            category="Scratch masks",
            labels={"photo": "{image}"},
        ),
    log:
        L.log("make_scratch_preview", "{image}"),
    benchmark:
        L.benchmark("make_scratch_preview", "{image}")
    params:
        files=job_files,
        kind="scratches",
        width=PREVIEW_WIDTH,
        title=lambda wc: report_lib.rst_text(wc.image),
        backend=get_backend_label,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../../envs/oldphoto.yaml"
    shell:
        job_shell("make_preview", "kind", "width", rule="make_scratch_preview")


rule make_change_map:
    input:
        unpack(get_change_map_inputs),
        original=get_input_image,
        final=get_final,
        faces=get_stage2,
        derivation=L.derivation("{image}"),
    output:
        changes=report(
            L.preview("changes", "{image}"),
            caption="../report/changes.rst",
            category="Changes",
            labels={"photo": "{image}"},
        ),
        sidecar=L.sidecar("{image}"),
    log:
        L.log("make_change_map", "{image}"),
    benchmark:
        L.benchmark("make_change_map", "{image}")
    params:
        files=job_files,
        width=CHANGE_MAP_WIDTH,
        benchmarks=L.benchmarks_dir,
        title=lambda wc: report_lib.rst_text(wc.image),
        backend=get_backend_label,
    threads: 1
    resources:
        mem_mb=1500,
        runtime=5,
    conda:
        "../../envs/oldphoto.yaml"
    shell:
        job_shell("make_change_map", "width", "benchmarks")


rule make_face_preview:
    input:
        faces=get_stage2,
        enhanced=get_enhanced_faces,
    output:
        preview=report(
            L.preview("faces", "{image}"),
            caption="../report/faces.rst",
            category="Faces",
            labels={"photo": "{image}"},
        ),
    log:
        L.log("make_face_preview", "{image}"),
    benchmark:
        L.benchmark("make_face_preview", "{image}")
    params:
        files=job_files,
        kind="faces",
        width=PREVIEW_WIDTH,
        title=lambda wc: report_lib.rst_text(wc.image),
        backend=get_backend_label,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../../envs/oldphoto.yaml"
    shell:
        job_shell("make_preview", "kind", "width", rule="make_face_preview")


rule gallery:
    input:
        get_finished_report_items,
        summary=report(L.summary, caption="../report/summary.rst", category="Run summary"),
    params:
        tables=lambda wc: report_lib.report_tables(L.summary, L.benchmarks_dir),
