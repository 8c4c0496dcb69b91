"""Rule enhance_face: one aligned face -> the enhanced face."""

from oldphoto import stages
from oldphoto.jobs import run_job


def main(job):
    face = job.read_photo(snakemake.input.face).rgb
    generator = None
    if job.backend == "pretrained":
        generator = job.network(stages.face_network_name(job.params["hr"]))
    job.write_png(snakemake.output[0], stages.enhance_face(face, job.backend, generator, job.device))


run_job(snakemake, main)
