# Checkpoints: the official files (laid out as in the official repository) are verified against
# their manifests once and converted to a memory-mappable cache that every network job loads.


rule prepare_checkpoint:
    input:
        official=lambda wc: dag.official_checkpoint(config, wc.name),
    output:
        cache=f"{config['cache_dir']}/{{name}}.safetensors",
        record=f"{config['cache_dir']}/{{name}}.safetensors.json",
    log:
        L.log("prepare_checkpoint", "{name}"),
    benchmark:
        L.benchmark("prepare_checkpoint", "{name}")
    params:
        files=job_files,
        job=job_args("name", name=lambda wc: wc.name),
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
            dag.all_official_checkpoints(config),
        log:
            f"{L.logs_dir}/download_checkpoints.log",
        benchmark:
            f"{L.benchmarks_dir}/download_checkpoints.tsv"
        params:
            files="",
            checkpoints_dir=config["checkpoints_dir"],
        threads: 1
        resources:
            mem_mb=2000,
            runtime=60,
        conda:
            "../../envs/oldphoto.yaml"
        shell:
            "{JOB} download_checkpoints rule=download_checkpoints image=all log={log:q} "
            "threads={threads} p.checkpoints_dir={params.checkpoints_dir:q}"
