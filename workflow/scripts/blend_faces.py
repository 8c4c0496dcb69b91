"""Rule blend_faces: restored photo + enhanced faces (stage-2 matrices) -> final output."""

from oldphoto import stages
from oldphoto.jobs import run_job


def main(job):
    p = job.params
    restored = job.read_photo(snakemake.input.restored).rgb
    record = stages.read_record(snakemake.input.faces)
    enhanced = stages.read_enhanced_faces(snakemake.input.enhanced)
    original = job.read_photo(snakemake.input.original)
    final = stages.compose_final(
        restored, record, enhanced, blending=p["face_blending"],
        original_size=original.size if p["final_size"] == "original" else None, log=job.log,
    )
    alpha = original.alpha if p["final_size"] == "original" else None
    job.write_png(snakemake.output[0], final, alpha=alpha)


run_job(snakemake, main)
