"""Checkpoint detect_faces: restored photo -> folder with faces.json and the aligned faces."""

from pathlib import Path

from oldphoto import stages
from oldphoto.jobs import run_job


def main(job):
    photo = job.read_photo(snakemake.input.restored)
    record, faces = stages.detect_and_align_faces(
        photo.rgb, snakemake.params.landmarks, snakemake.params.face_size
    )
    folder = Path(snakemake.output[0])
    folder.mkdir(parents=True, exist_ok=True)
    for index, face in enumerate(faces, start=1):
        job.write_png(folder / f"{job.image}_{index}.png", face)
    stages.write_record(folder / "faces.json", record)
    job.log(f"{len(faces)} face(s) found")


run_job(snakemake, main)
