# Stage 3: SPADE face enhancement: one job per photo for all its faces, with a single model
# load (face_jobs: per_image, the default), or one job per aligned face (per_face).


if PER_FACE:

    rule enhance_face:
        input:
            unpack(get_face_model),
            face=L.aligned_face("{image}", "{face}"),
        output:
            face=L.enhanced_face("{image}", "{face}"),
        log:
            L.log("enhance_face", "{image}_{face}"),
        benchmark:
            L.benchmark("enhance_face", "{image}_{face}")
        params:
            files=job_files,
            backend=BACKEND["face"],
            network=get_face_network,
        threads: config["threads"]
        resources:
            **network_resources(mem_mb=3000),
            runtime=10,
        conda:
            "../../envs/oldphoto.yaml"
        shell:
            job_shell("enhance_face", "backend", "network")

else:

    rule enhance_faces:
        input:
            unpack(get_face_model),
            faces=L.faces_dir("{image}"),
        output:
            enhanced=directory(L.enhanced_dir("{image}")),
        log:
            L.log("enhance_faces", "{image}"),
        benchmark:
            L.benchmark("enhance_faces", "{image}")
        params:
            files=job_files,
            backend=BACKEND["face"],
            network=get_face_network,
        threads: config["threads"]
        resources:
            **network_resources(mem_mb=3000),
            runtime=20,
        conda:
            "../../envs/oldphoto.yaml"
        shell:
            job_shell("enhance_faces", "backend", "network")
