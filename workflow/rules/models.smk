# Checkpoints: the official files (laid out as in the official repository) are verified against
# their manifests once and converted to a memory-mappable cache that every network job loads.


rule prepare_checkpoint:
    input:
        official=lambda wc: PLAN.official_checkpoint(wc.name),
    output:
        cache=PLAN.cache_file("{name}"),
        record=PLAN.cache_file("{name}") + ".json",
    log:
        L.log("prepare_checkpoint", "{name}"),
    benchmark:
        L.benchmark("prepare_checkpoint", "{name}")
    params:
        files=job_files,
        job=PLAN.checkpoint_job_params(),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/oldphoto.yaml"
    shell:
        job_shell("prepare_checkpoint")


if config["allow_download"]:

    rule download_checkpoints:
        output:
            PLAN.all_official_checkpoints(),
        log:
            f"{L.logs_dir}/download_checkpoints.log",
        benchmark:
            f"{L.benchmarks_dir}/download_checkpoints.tsv"
        params:
            files="",
            job=PLAN.download_job_params(),
        threads: 1
        resources:
            mem_mb=2000,
            runtime=60,
        conda:
            "../../envs/oldphoto.yaml"
        shell:
            job_shell("download_checkpoints")
