# Stage 3: SPADE face enhancement, one job per aligned face (face_jobs: per_face) or one job per
# photo for all its faces with a single model load (face_jobs: per_image).


if config["face_jobs"] == "per_face":

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

else:

    rule enhance_faces:
        input:
            unpack(get_models(FACE_MODEL)),
            faces=lambda wc: face_record(wc.image),
            aligned=get_aligned_faces,
        output:
            directory(f"{S3_BY_PHOTO}/{{image}}"),
        log:
            f"{LOGS}/enhance_faces/{{image}}.log",
        benchmark:
            f"{BENCH}/enhance_faces/{{image}}.tsv"
        params:
            job=lambda wc: ws.job_params(config, BACKEND, "enhance_faces", wc.image),
        threads: config["threads"]
        resources:
            **network_resources(mem_mb=3000),
            runtime=lambda wc, input: 5 + 2 * len(input.aligned),
        conda:
            "../../envs/oldphoto.yaml"
        script:
            "../scripts/enhance_faces.py"
