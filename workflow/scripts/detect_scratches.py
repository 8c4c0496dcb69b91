"""Rule detect_scratches: one photo -> the image the restoration uses and its scratch mask."""

from oldphoto import stages
from oldphoto.jobs import run_job


def main(job):
    photo = job.read_photo(snakemake.input.image)
    unet = job.network("detection") if job.backend == "pretrained" else None
    image, mask = stages.detect_scratches(photo.rgb, job.backend, unet, job.device)
    job.write_png(snakemake.output.image, image)
    job.write_png(snakemake.output.mask, stages.mask_to_rgb(mask))
    job.log(f"scratch mask covers {100.0 * (mask > 0).mean():.2f}% of the photo")


run_job(snakemake, main)
