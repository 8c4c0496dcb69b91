# Stage 2: dlib face detection, 68 landmarks -> 5 points, similarity alignment to the template.
# One folder per photo (faces.json + the aligned faces).  With one stage-3 job per photo (the
# default) it is a plain rule; with one stage-3 job per face (face_jobs: per_face) it is a
# checkpoint, since the number of faces is known only after it has run.



if PER_FACE:

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
            face_size=get_face_size,
            landmarks=dag.landmarks_path(config),
            faces=get_faces,
        threads: 1
        resources:
            mem_mb=1000,
            runtime=10,
        conda:
            "../../envs/oldphoto.yaml"
        shell:
            job_shell("detect_faces", "face_size", "landmarks", "faces")

else:

    rule detect_faces:
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
            face_size=get_face_size,
            landmarks=dag.landmarks_path(config),
            faces=get_faces,
        threads: 1
        resources:
            mem_mb=1000,
            runtime=10,
        conda:
            "../../envs/oldphoto.yaml"
        shell:
            job_shell("detect_faces", "face_size", "landmarks", "faces")
