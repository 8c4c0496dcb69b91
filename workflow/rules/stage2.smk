# Stage 2: dlib face detection, 68 landmarks -> 5 points, similarity alignment to the template.
# A checkpoint: the number of faces of a photo is known only after it has run.


checkpoint detect_faces:
    input:
        restored=f"{S1}/restored_image/{{image}}.png",
    output:
        directory(f"{S2}/{{image}}"),
    log:
        f"{LOGS}/detect_faces/{{image}}.log",
    benchmark:
        f"{BENCH}/detect_faces/{{image}}.tsv"
    params:
        job=lambda wc: ws.job_params(config, BACKEND, "detect_faces", wc.image),
        face_size=FACE_SIZE,
        landmarks=ws.landmarks_path(config),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/oldphoto.yaml"
    script:
        "../scripts/detect_faces.py"
