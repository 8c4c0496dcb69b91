"""Rule prepare_checkpoint: verify an official checkpoint and write its safetensors cache."""

from oldphoto.checkpoints import convert_to_cache
from oldphoto.jobs import run_job


def main(job):
    convert_to_cache(snakemake.input.official, snakemake.params.name, snakemake.output.cache)
    job.log(f"verified {snakemake.input.official} -> {snakemake.output.cache}")


run_job(snakemake, main)
