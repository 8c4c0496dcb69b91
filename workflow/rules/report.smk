# Report: what people look at.  Every run makes scaled views beside the stage folders, in the jobs
# that have the pictures at hand (no job of their own): the scratch mask over the photo in
# detect_scratches, the before/after preview, the face strip and the change map in blend_faces.
# `snakemake --report` then collects them:
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


# The landing page (workflow.rst) embeds a thumbnail of the first before/after previews.
report_lib.register_thumbnail_directive()
# A markup error in a caption or the landing page stops the report instead of showing up in it.
report_lib.halt_on_rst_errors(os.path.join(workflow.basedir, "workflow", "report", "docutils.conf"))


rule gallery:
    input:
        get_finished_report_items,
        summary=report(L.summary, caption="../report/summary.rst", category="Run summary"),
    params:
        tables=lambda wc: report_lib.report_tables(L.summary, L.benchmarks_dir),
