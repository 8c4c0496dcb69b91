"""What each task does to its files: one function per task, files in, files out.

A rule's ``shell:`` line runs ``python -m oldphoto.jobs <task> ...`` (:mod:`oldphoto.jobs.entry`),
which hands the job's paths and settings to a warm worker process (or runs it in its own
process); either way the task runs here, through :func:`oldphoto.jobs.runtime.run_request`.
Every function only reads the job's inputs, calls the library, and writes its outputs
(atomically): the logic lives in :mod:`oldphoto.stages` and the modules below it.

``job.params`` are the task's settings, typed, as :data:`oldphoto.jobs.protocol.TASKS` declares
them — only what shapes the outputs (so a changed setting reruns only what it changes; ``None``:
does not apply to this photo); scheduling settings (device, threads, memory budget) are in
``job.scheduling``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from oldphoto.jobs.runtime import Job, run_request
from oldphoto.mode import Mode


# ---------------------------------------------------------------------------------------------
# Stage 1


def detect_scratches(job: Job) -> None:
    from oldphoto import stages, views

    photo = job.read_original(job.input("image"))
    unet = job.network("detection") if job.params["backend"] == "pretrained" else None
    image, mask = stages.detect_scratches(photo.rgb, job.params["backend"], unet, job.device)
    job.write_png(job.output("image"), image)
    job.write_png(job.output("mask"), stages.mask_to_rgb(mask))
    job.log(f"scratch mask covers {100.0 * (mask > 0).mean():.2f}% of the photo")
    # the report's view of the mask, made while it is in memory
    overlay = views.mask_overlay(image, mask)
    views.write_jpeg(job.output("preview"),
                     views.fit_within(overlay, job.params["preview_width"]))


def triage_scratches(job: Job) -> None:
    """``with_scratch: auto``: the scratch mask -> the decision (JSON) and its figures."""
    from oldphoto import stages, triage
    from oldphoto.atomic import write_json

    decision = triage.scratch_decision(stages.read_mask(job.input("mask")))
    record = decision.record()
    record["backend"] = job.params["backend"]
    write_json(job.output("decision"), record)
    job.log(f"triage: {'scratch' if decision.with_scratch else 'no scratch'} path: "
            f"{decision.reason}")


def restore_global(job: Job) -> None:
    """Stage 1.  A photo whose triage decides its path (setting ``triage``: ``with_scratch:
    auto``) takes the path of its decision (input ``triage``): exactly the computation of the
    explicit setting, on the detector's outputs or on the original."""
    from oldphoto import stages
    from oldphoto.archival.settings import path_taken

    p = job.params
    mode = p["mode"]
    if p["triage"]:
        decision = stages.read_record(job.input("triage"))
        mode = path_taken(mode, decision)
        job.log(f"triage decided: {mode.key} ({decision['reason']})")
    source = job.input("image") if mode.with_scratch else job.input(
        "original" if p["triage"] else "image")
    photo = job.read_original(source)
    mask = stages.read_mask(job.input("mask")) if mode.with_scratch else None
    networks = None
    if p["backend"] == "pretrained":
        networks = {role: job.network(name) for role, name in
                    zip(("encoder", "mapping", "decoder"), mode.stage1_networks)}
    budget = job.scheduling["memory_budget_mb"]
    result = stages.restore_global(
        photo.rgb, mask, p["backend"], mode=mode, networks=networks, device=job.device,
        test_mode=p["test_mode"], stage1_stretch=p["stage1_stretch"], log=job.log,
        **({} if budget is None else {"memory_budget_mb": budget}),
    )
    job.write_png(job.output("origin"), result.origin)
    job.write_png(job.output("input_image"), result.input_image)
    job.write_png(job.output("restored"), result.restored)


# ---------------------------------------------------------------------------------------------
# Stage 2


def _detect_faces_into(job: Job, folder: Path) -> int:
    """Stage 2: detect and align the faces of the restored photo into ``folder``
    (``faces.json`` and ``<image>_<k>.png``); returns how many."""
    from oldphoto import stages
    from oldphoto.faces import FaceOptions

    p = job.params
    photo = job.read_photo(job.input("restored"))
    if not p["faces"]:  # faces: no — the photo keeps its stage-1 faces
        record, faces = stages.no_faces_record(photo.rgb, p["face_size"]), []
        job.log("face detection off for this photo (faces: no)")
    else:
        options = FaceOptions(detector=p["face_detector"], upsample=p["face_upsample"],
                              only_center_face=p["only_center_face"], max_faces=p["max_faces"])
        models = job.face_models(p["landmarks"], options.detector)
        record, faces = stages.detect_and_align_faces(photo.rgb, models, p["face_size"],
                                                      options)
    folder.mkdir(parents=True, exist_ok=True)
    for index, face in enumerate(faces, start=1):
        job.write_png(folder / f"{job.image}_{index}.png", face)
    stages.write_record(folder / "faces.json", record)
    job.log(f"{len(faces)} face(s) found")
    return len(faces)


def detect_faces(job: Job) -> None:
    """Stage 2 alone (``face_jobs: per_face``: the checkpoint before one job per face)."""
    _detect_faces_into(job, Path(job.output("faces")))


# ---------------------------------------------------------------------------------------------
# Stage 3


def _face_generator(job: Job):
    if job.params["backend"] != "pretrained":
        return None
    return job.network(job.params["face_network"])


def enhance_face(job: Job) -> None:
    """One aligned face -> its enhanced face (``face_jobs: per_face``)."""
    from oldphoto import stages

    face = job.read_photo(job.input("face")).rgb
    enhanced = stages.enhance_face(face, job.params["backend"], _face_generator(job), job.device)
    job.write_png(job.output("face"), enhanced)


def detect_and_enhance_faces(job: Job) -> None:
    """Stages 2 and 3 of one photo in one job (``face_jobs: per_image``, the default): detect and
    align its faces into the stage-2 folder, then enhance every one of them into the stage-3
    folder with a single model load."""
    from oldphoto import stages

    faces = Path(job.output("faces"))
    count = _detect_faces_into(job, faces)
    generator = _face_generator(job) if count else None
    folder = Path(job.output("enhanced"))
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(1, count + 1):
        name = f"{job.image}_{k}.png"
        face = job.read_photo(faces / name).rgb
        enhanced = stages.enhance_face(face, job.params["backend"], generator, job.device)
        job.write_png(folder / name, enhanced)
        job.log(f"enhanced {name}")


# ---------------------------------------------------------------------------------------------
# Stage 4


def blend_faces(job: Job) -> None:
    """Stage 4: blend the faces in and write the final output as an archival derivative of the
    input (``oldphoto.archival.final``), moving aside a final of the photo under another
    extension (``oldphoto.archival.supersede``); then, from the files just written, the photo's
    views for the report (before/after, face strip, change map) and its sidecar.

    What it records is the path the photo took: a ``with_scratch: auto`` photo's triage
    decision (input ``triage``) picks its mode, and its settings are typed
    (``oldphoto.archival.settings``).
    """
    import json

    from oldphoto import stages
    from oldphoto.archival import final as archival
    from oldphoto.archival.formats import format_of_extension
    from oldphoto.archival.settings import networks_used, path_taken, recorded_settings
    from oldphoto.archival.tone import apply_tone_keep
    from oldphoto.jobs.protocol import recorded

    p = job.params
    restored = job.read_photo(job.input("restored")).rgb
    record = stages.read_record(stages.record_path(job.input("faces")))
    enhanced = stages.read_enhanced_faces(job.inputs_list("enhanced"))
    original = job.read_original(job.input("original"))
    keep_size = p["final_size"] == "original"
    final = stages.compose_final(
        restored, record, enhanced, face_blending=p["face_blending"],
        original_size=original.size if keep_size else None, log=job.log,
    )
    if p["tone"] == "keep":
        final = apply_tone_keep(original.rgb, final)
    faces = len(record.get("faces") or [])
    # with_scratch: auto: the triage decided the path (restore_global read the same file)
    triage = stages.read_record(job.input("triage")) if "triage" in job.inputs else None
    configured = p["mode"]
    taken = path_taken(configured, triage)
    settings = recorded_settings(recorded(job.task, p), triage=triage,
                                 final_format=format_of_extension(job.output("final")))
    used = networks_used(taken, detector_ran=configured.with_scratch,
                         face_network=p["face_network"] if faces else None)
    checkpoints = archival.checkpoint_sha256s(job.inputs_list("checkpoint_records"),
                                              p["face_network"], faces)
    derivation = archival.write_final(
        job.output("final"), final, master_path=job.input("original"),
        alpha=original.alpha if keep_size else None,
        backend=archival.provenance_backend(p["backend"], faces),
        checkpoints={name: sha for name, sha in checkpoints.items() if name in used},
        settings=settings, carry_metadata=p["carry_metadata"],
        jpeg_quality=p["jpeg_quality"],
        text=dict(job.metadata(), **{"oldphoto:settings": json.dumps(settings, sort_keys=True)}),
    )
    output = derivation["output"]
    job.log(f"wrote {output['file']}: {output['format']} {output['bits']}-bit, "
            f"{derivation['record']['digital_source_type'].rsplit('/', 1)[-1]}, "
            f"{taken.key} path")
    _supersede_other_finals(job)
    _write_views(job, original.rgb, record, enhanced, derivation, taken, triage)


def _supersede_other_finals(job: Job) -> None:
    """One final per photo: a final of this photo under another extension (its output_format
    changed) moves to ``superseded/`` with its record (``docs/archival.md``)."""
    from oldphoto.archival.supersede import supersede_other_finals

    for moved in supersede_other_finals(job.output("final")):
        job.log(f"superseded {moved['file']}: moved to {moved['moved_to']}")


def _write_views(job: Job, before, record: dict, enhanced: dict, derivation: dict,
                 taken: Mode, triage: dict | None) -> None:
    """The report's views of one finished photo: ``before`` (the input as stage 4 read it)
    beside the final output read back as written, the face strip (aligned over ``enhanced``
    faces), the change map (scratches outlined only where the path ``taken`` repaired them) and
    the sidecar (the final output's provenance, the change statistics, the stage timings, the
    ``triage`` decision and the finals this one superseded)."""
    import cv2

    from oldphoto import report, stages, views
    from oldphoto.archival.changes import change_map, replaced_face_boxes
    from oldphoto.archival.provenance import write_sidecar
    from oldphoto.archival.supersede import superseded_history

    preview_width = job.params["preview_width"]
    after = job.read_original(job.output("final")).rgb
    views.write_jpeg(job.output("before_after"),
                     views.side_by_side(before, after, max_width=preview_width))

    folder = Path(stages.record_path(job.input("faces"))).parent
    pairs = [(job.read_photo(folder / f"{job.image}_{k}.png").rgb, enhanced[k])
             for k in sorted(enhanced)]
    Path(job.output("face_strip")).mkdir(parents=True, exist_ok=True)
    if pairs:  # the folder stays empty without faces
        views.write_jpeg(Path(job.output("face_strip")) / f"{job.image}.faces.jpg",
                         views.fit_width(views.face_strip(pairs), preview_width))

    height, width = after.shape[:2]
    if before.shape[:2] != (height, width):  # final_size: official
        before = cv2.resize(before, (width, height), interpolation=cv2.INTER_AREA)
    # an auto photo's mask is an input, but only the scratch path repaired what it marks
    mask = (stages.read_mask(job.input("mask"))
            if "mask" in job.inputs and taken.with_scratch else None)
    changes, stats = change_map(before, after, mask, replaced_face_boxes(record, (width, height)))
    views.write_jpeg(job.output("changes"),
                     views.fit_within(changes, job.params["change_map_width"]))
    provenance = dict(derivation["record"], changes=stats)
    timings = report.stage_timings(job.params["benchmarks"], job.image)
    timings[job.rule] = round(job.elapsed(), 3)  # this job: its own clock (no benchmark yet)
    write_sidecar(job.output("sidecar"), provenance, timings=timings,
                  output=derivation["output"], triage=triage,
                  superseded=superseded_history(job.output("final")))
    job.log(f"changed {100 * stats['changed_fraction']:.1f}% of the photo")


# ---------------------------------------------------------------------------------------------
# Checkpoints


def prepare_checkpoint(job: Job) -> None:
    from oldphoto.checkpoints import convert_to_cache

    convert_to_cache(job.input("official"), job.params["name"], job.output("cache"))
    job.log(f"verified {job.input('official')} -> {job.output('cache')}")


def download_checkpoints(job: Job) -> None:
    from oldphoto.checkpoints import download_official

    for path in download_official(job.params["checkpoints_dir"]):
        job.log(f"downloaded and verified {path}")


TASKS: dict[str, Callable[[Job], None]] = {
    "detect_scratches": detect_scratches,
    "triage_scratches": triage_scratches,
    "restore_global": restore_global,
    "detect_faces": detect_faces,
    "enhance_face": enhance_face,
    "detect_and_enhance_faces": detect_and_enhance_faces,
    "blend_faces": blend_faces,
    "prepare_checkpoint": prepare_checkpoint,
    "download_checkpoints": download_checkpoints,
}


def run_task(request: dict) -> dict:
    """The worker handler (and the in-process path): run one job request, return its outcome
    (:data:`oldphoto.jobs.protocol.HANDLER`)."""
    return run_request(request, TASKS)
