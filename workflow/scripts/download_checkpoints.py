"""Rule download_checkpoints: fetch the two official release zips (the only network access)."""

from oldphoto.checkpoints import download_official
from oldphoto.jobs import run_job


def main(job):
    for path in download_official(snakemake.params.checkpoints_dir):
        job.log(f"downloaded and verified {path}")


run_job(snakemake, main)
