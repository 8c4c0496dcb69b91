# Stage 1: global restoration.  Without scratches: VAE_A encoder -> mapping -> VAE_B decoder.
# With scratches: scratch detection first (U-Net, threshold 0.4), then the mask-aware mapping
# (non-local; patch attention in HR mode).  Each photo's mode decides (the run plan,
# oldphoto.plan); a with_scratch: auto photo runs the detector, then triage_scratches decides
# its path.


rule detect_scratches:
    input:
        unpack(get_models("detector")),
        image=get_input_image,
    output:
        image=L.scratch_input("{image}"),
        mask=L.scratch_mask("{image}"),
        # the report's view of the mask (workflow/report/scratches.rst)
        preview=report(
            L.preview("scratches", "{image}"),
            caption="../report/scratches.rst",
            category="Scratch masks",
            labels={"photo": "{image}"},
        ),
    log:
        L.log("detect_scratches", "{image}"),
    benchmark:
        L.benchmark("detect_scratches", "{image}")
    params:
        files=job_files,
        job=PLAN.job_params("detect_scratches"),
        # The report's caption.
        title=get_title,
        backend=PLAN.backend["global"],
        preview_width=views_lib.PREVIEW_WIDTH,
    threads: PLAN.network_threads("global")
    resources:
        **PLAN.network_resources(mem_mb=3000),
        runtime=20,
    conda:
        "../../envs/oldphoto.yaml"
    shell:
        job_shell("detect_scratches")


rule triage_scratches:
    input:
        mask=L.scratch_mask("{image}"),
    output:
        decision=L.triage("{image}"),
    log:
        L.log("triage_scratches", "{image}"),
    benchmark:
        L.benchmark("triage_scratches", "{image}")
    params:
        files=job_files,
        job=PLAN.job_params("triage_scratches"),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../../envs/oldphoto.yaml"
    shell:
        job_shell("triage_scratches")


rule restore_global:
    input:
        unpack(get_stage1_inputs),
        unpack(get_models("stage1")),
    output:
        origin=L.stage1("origin", "{image}"),
        input_image=L.stage1("input_image", "{image}"),
        restored=L.restored("{image}"),
    log:
        L.log("restore_global", "{image}"),
    benchmark:
        L.benchmark("restore_global", "{image}")
    params:
        files=job_files,
        job=PLAN.job_params("restore_global"),
    threads: PLAN.network_threads("global")
    resources:
        **PLAN.network_resources(mem_mb=config["memory_budget_mb"]),
        runtime=60,
    conda:
        "../../envs/oldphoto.yaml"
    shell:
        job_shell("restore_global")
