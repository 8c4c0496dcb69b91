# Stage 4: warp every enhanced face back with the stage-2 matrices, histogram-match it to the
# original crop and blend it in.  Photos without faces pass through.


rule blend_faces:
    input:
        restored=L.restored("{image}"),
        faces=get_stage2,
        enhanced=get_enhanced_faces,
        original=get_input_image,
    output:
        final=report(
            L.final("{image}"),
            caption="../report/final.rst",
            category="Restored photos",
            labels={"photo": "{image}"},
        ),
    log:
        L.log("blend_faces", "{image}"),
    benchmark:
        L.benchmark("blend_faces", "{image}")
    params:
        files=job_files,
        backend=get_backend_label,
        blending=photo_setting("face_blending"),
        final_size=config["final_size"],
    threads: 1
    resources:
        mem_mb=1500,
        runtime=10,
    conda:
        "../../envs/oldphoto.yaml"
    shell:
        job_shell("blend_faces", "backend", "blending", "final_size")
