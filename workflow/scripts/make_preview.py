"""Rules make_preview, make_scratch_preview, make_face_preview: stage files -> a report JPEG."""

from oldphoto import report, stages
from oldphoto.jobs import run_job


def before_after(job):
    before = job.read_photo(snakemake.input.before).rgb
    after = job.read_photo(snakemake.input.after).rgb
    return report.side_by_side(before, after, max_width=snakemake.params.width)


def scratches(job):
    photo = job.read_photo(snakemake.input.image).rgb
    overlay = report.mask_overlay(photo, stages.read_mask(snakemake.input.mask))
    return report.fit_width(overlay, snakemake.params.width)


def faces(job):
    enhanced = stages.read_enhanced_faces(snakemake.input.enhanced)  # files or a photo's folder
    pairs = [(job.read_photo(aligned).rgb, enhanced[k])
             for k, aligned in enumerate(snakemake.input.aligned, start=1)]
    return report.fit_width(report.face_strip(pairs), snakemake.params.width)


def main(job):
    make = {"before_after": before_after, "scratches": scratches, "faces": faces}
    report.write_jpeg(snakemake.output[0], make[snakemake.params.kind](job))


run_job(snakemake, main)
