# Stage 4: warp every enhanced face back with the stage-2 matrices, histogram-match it to the
# original crop and blend it in.  Photos without faces pass through.


rule blend_faces:
    input:
        restored=f"{S1}/restored_image/{{image}}.png",
        faces=lambda wc: face_record(wc.image),
        enhanced=get_enhanced_faces,
        original=get_input_image,
    output:
        report(
            f"{FINAL}/{{image}}.png",
            caption="../report/final.rst",
            category="Restored photos",
            labels={"photo": "{image}"},
        ),
    log:
        f"{LOGS}/blend_faces/{{image}}.log",
    benchmark:
        f"{BENCH}/blend_faces/{{image}}.tsv"
    params:
        job=lambda wc: ws.job_params(config, BACKEND, "blend_faces", wc.image),
    threads: 1
    resources:
        mem_mb=1500,
        runtime=10,
    conda:
        "../../envs/oldphoto.yaml"
    script:
        "../scripts/blend_faces.py"
