# Stage 1: global restoration.  Without scratches: VAE_A encoder -> mapping -> VAE_B decoder.
# With scratches: scratch detection first (U-Net, threshold 0.4), then the mask-aware mapping
# (non-local; patch attention with hr).


rule detect_scratches:
    input:
        unpack(get_models("detection")),
        image=get_input_image,
    output:
        image=f"{S1}/masks/input/{{image}}.png",
        mask=f"{S1}/masks/mask/{{image}}.png",
    log:
        f"{LOGS}/detect_scratches/{{image}}.log",
    benchmark:
        f"{BENCH}/detect_scratches/{{image}}.tsv"
    params:
        job=lambda wc: ws.job_params(config, BACKEND, "detect_scratches", wc.image),
    threads: config["threads"]
    resources:
        **network_resources(mem_mb=3000),
        runtime=20,
    conda:
        "../../envs/oldphoto.yaml"
    script:
        "../scripts/detect_scratches.py"


rule restore_global:
    input:
        unpack(get_stage1_inputs),
        unpack(get_models(*stage1_model_names())),
    output:
        origin=f"{S1}/origin/{{image}}.png",
        input_image=f"{S1}/input_image/{{image}}.png",
        restored=f"{S1}/restored_image/{{image}}.png",
    log:
        f"{LOGS}/restore_global/{{image}}.log",
    benchmark:
        f"{BENCH}/restore_global/{{image}}.tsv"
    params:
        job=lambda wc: ws.job_params(config, BACKEND, "restore_global", wc.image),
    threads: config["threads"]
    resources:
        **network_resources(mem_mb=config["memory_budget_mb"]),
        runtime=60,
    conda:
        "../../envs/oldphoto.yaml"
    script:
        "../scripts/restore_global.py"
