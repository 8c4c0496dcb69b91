# Stage 4: warp every enhanced face back with the stage-2 matrices, histogram-match it to the
# original crop and blend it in (photos without faces pass through), then write the final output
# as an archival derivative of the input: its format (output_format), 16-bit when the input is,
# the input's ICC profile, resolution, EXIF/IPTC/XMP and the provenance XMP (docs/archival.md).
# The same job then makes the photo's views for the report from the files it wrote (before/after
# preview, face strip, change map) and its provenance sidecar: no extra job per photo.  A final
# of the photo under another extension (its output_format changed) is moved to superseded/.
# A with_scratch: auto photo's triage decision is an input: the provenance records the path
# the photo took (its mode setting is the configured one).
# The final output's extension follows output_format per photo (the run plan's final_ext): one
# rule per extension (the final's extension picks it), all sharing this rule's log and benchmark
# names.  The job's settings (oldphoto.jobs.protocol, task blend_faces) include what shaped the
# photo upstream too (mode, test_mode, stage1_stretch, face_network): they go into the
# provenance, and upstream reruns anyway when one of them changes.


rule blend_faces:
    input:
        unpack(get_change_map_inputs),
        unpack(get_triage_decision),
        restored=L.restored("{image}"),
        faces=get_stage2,
        enhanced=get_enhanced_faces,
        original=get_input_image,
        checkpoint_records=get_checkpoint_records,
    output:
        **stage4_outputs("png"),
    log:
        L.log("blend_faces", "{image}"),
    benchmark:
        L.benchmark("blend_faces", "{image}")
    params:
        files=job_files,
        job=PLAN.job_params("blend_faces"),
        # The report's captions.
        title=get_title,
        backend=PLAN.backend_label,
        preview_width=views_lib.PREVIEW_WIDTH,
        change_map_width=views_lib.CHANGE_MAP_WIDTH,
    threads: 1
    resources:
        mem_mb=1500,
        runtime=10,
    conda:
        "../../envs/oldphoto.yaml"
    shell:
        job_shell("blend_faces")


use rule blend_faces as blend_faces_tif with:
    output:
        **stage4_outputs("tif"),


use rule blend_faces as blend_faces_jpg with:
    output:
        **stage4_outputs("jpg"),
