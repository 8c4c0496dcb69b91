# Stage 3: SPADE face enhancement.
#
# face_jobs: per_image (the default): one job per photo runs stages 2 and 3 (detect and align
# its faces into the stage-2 folder, enhance them all with a single model load into the stage-3
# folder).  face_jobs: per_face: one job per aligned face, after the stage-2 checkpoint.


if PLAN.per_face:

    rule enhance_face:
        input:
            unpack(get_models("face")),
            face=L.aligned_face("{image}", "{face}"),
        output:
            face=L.enhanced_face("{image}", "{face}"),
        log:
            L.log("enhance_face", "{image}_{face}"),
        benchmark:
            L.benchmark("enhance_face", "{image}_{face}")
        params:
            files=job_files,
            job=PLAN.job_params("enhance_face"),
        threads: PLAN.network_threads("face")
        resources:
            **PLAN.network_resources(mem_mb=3000),
            runtime=10,
        conda:
            "../../envs/oldphoto.yaml"
        shell:
            job_shell("enhance_face")

else:

    rule detect_and_enhance_faces:
        input:
            unpack(get_models("face")),
            restored=L.restored("{image}"),
        output:
            faces=directory(L.faces_dir("{image}")),
            enhanced=directory(L.enhanced_dir("{image}")),
        log:
            L.log("detect_and_enhance_faces", "{image}"),
        benchmark:
            L.benchmark("detect_and_enhance_faces", "{image}")
        params:
            files=job_files,
            job=PLAN.job_params("detect_and_enhance_faces"),
        threads: PLAN.network_threads("face")
        resources:
            **PLAN.network_resources(mem_mb=3000),
            runtime=20,
        conda:
            "../../envs/oldphoto.yaml"
        shell:
            job_shell("detect_and_enhance_faces")
