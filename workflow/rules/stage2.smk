# Stage 2: dlib face detection, 68 landmarks -> 5 points, similarity alignment to the template.
# One folder per photo: faces.json + the aligned faces.
#
# face_jobs: per_image (the default): stages 2 and 3 of a photo run as one job, the rule
# detect_and_enhance_faces in stage3.smk (one job instead of two per photo: at archive scale
# Snakemake's own cost is per job, bench/results/scale.md).
# face_jobs: per_face: this checkpoint, then one stage-3 job per face it found.


if PLAN.per_face:

    checkpoint detect_faces:
        input:
            restored=L.restored("{image}"),
        output:
            faces=directory(L.faces_dir("{image}")),
        log:
            L.log("detect_faces", "{image}"),
        benchmark:
            L.benchmark("detect_faces", "{image}")
        params:
            files=job_files,
            job=PLAN.job_params("detect_faces"),
        threads: 1
        resources:
            mem_mb=1000,
            runtime=10,
        conda:
            "../../envs/oldphoto.yaml"
        shell:
            job_shell("detect_faces")
