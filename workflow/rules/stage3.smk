# Stage 3: SPADE face enhancement, one job per aligned face.


rule enhance_face:
    input:
        unpack(get_models(FACE_MODEL)),
        face=f"{S2}/{{image}}/{{image}}_{{face}}.png",
    output:
        f"{S3}/{{image}}_{{face}}.png",
    log:
        f"{LOGS}/enhance_face/{{image}}_{{face}}.log",
    benchmark:
        f"{BENCH}/enhance_face/{{image}}_{{face}}.tsv"
    params:
        job=lambda wc: ws.job_params(config, BACKEND, "enhance_face", wc.image),
        face_size=FACE_SIZE,
    threads: config["threads"]
    resources:
        **network_resources(mem_mb=3000),
        runtime=10,
    conda:
        "../../envs/oldphoto.yaml"
    script:
        "../scripts/enhance_face.py"
