"""Rule enhance_faces (face_jobs: per_image): every aligned face of a photo -> its folder of
enhanced faces, with one model load."""

from pathlib import Path

from oldphoto import stages
from oldphoto.jobs import run_job


def main(job):
    generator = None
    if job.backend == "pretrained":
        generator = job.network(stages.face_network_name(job.params["hr"]))
    folder = Path(snakemake.output[0])
    folder.mkdir(parents=True, exist_ok=True)
    for aligned in snakemake.input.aligned:
        face = job.read_photo(aligned).rgb
        enhanced = stages.enhance_face(face, job.backend, generator, job.device)
        job.write_png(folder / Path(aligned).name, enhanced)
        job.log(f"enhanced {Path(aligned).name}")


run_job(snakemake, main)
