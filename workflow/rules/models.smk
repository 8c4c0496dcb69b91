# Checkpoints: the official files (laid out as in the official repository) are verified against
# their manifests once and converted to a memory-mappable cache that every network job loads.


rule prepare_checkpoint:
    input:
        official=lambda wc: ws.official_checkpoint(config, wc.name),
    output:
        cache=f"{config['cache_dir']}/{{name}}.safetensors",
        record=f"{config['cache_dir']}/{{name}}.safetensors.json",
    log:
        f"{LOGS}/prepare_checkpoint/{{name}}.log",
    benchmark:
        f"{BENCH}/prepare_checkpoint/{{name}}.tsv"
    params:
        job=lambda wc: ws.job_params(config, BACKEND, "prepare_checkpoint", wc.name),
        name=lambda wc: wc.name,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/oldphoto.yaml"
    script:
        "../scripts/prepare_checkpoint.py"


if config["allow_download"]:

    rule download_checkpoints:
        output:
            ws.all_official_checkpoints(config),
        log:
            f"{LOGS}/download_checkpoints.log",
        benchmark:
            f"{BENCH}/download_checkpoints.tsv"
        params:
            job=ws.job_params(config, BACKEND, "download_checkpoints", "all"),
            checkpoints_dir=config["checkpoints_dir"],
        threads: 1
        resources:
            mem_mb=2000,
            runtime=60,
        conda:
            "../../envs/oldphoto.yaml"
        script:
            "../scripts/download_checkpoints.py"
