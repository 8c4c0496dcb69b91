"""Rule restore_global: one photo (and its scratch mask) -> origin, input_image, restored_image."""

from oldphoto import stages
from oldphoto.jobs import run_job


def main(job):
    p = job.params
    photo = job.read_photo(snakemake.input.image)
    mask = stages.read_mask(snakemake.input.mask) if p["with_scratch"] else None
    networks = None
    if job.backend == "pretrained":
        encoder, mapping, decoder = stages.stage1_network_names(p["with_scratch"], p["hr"])
        networks = {"encoder": job.network(encoder), "mapping": job.network(mapping),
                    "decoder": job.network(decoder)}
    result = stages.restore_global(
        photo.rgb, mask, job.backend, networks=networks, device=job.device,
        test_mode=p["test_mode"], hr=p["hr"], stretch=p["stage1_stretch"],
        memory_budget_mb=p["memory_budget_mb"], log=job.log,
    )
    job.write_png(snakemake.output.origin, result.origin)
    job.write_png(snakemake.output.input_image, result.input_image)
    job.write_png(snakemake.output.restored, result.restored)


run_job(snakemake, main)
