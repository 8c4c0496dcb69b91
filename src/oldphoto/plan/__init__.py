"""The run plan: from a config and a folder of photos to what every job of the run is given.

* :mod:`~oldphoto.plan.config` — the config's spellings made canonical before the schema.
* :mod:`~oldphoto.plan.settings` — each photo's effective settings (sheet row, else config) and
  what ``with_scratch: auto`` means; the review page asks it too.
* :mod:`~oldphoto.plan.backend` — the backend of each group of networks.
* :mod:`~oldphoto.plan.run` — :func:`build_plan` and :class:`RunPlan`: per photo, the files each
  job reads, the networks each stage loads and each job's settings (through
  :mod:`oldphoto.jobs.protocol`).

Built once per reading of the Snakefile (``workflow/rules/common.smk``), and by the ``oldphoto``
command before it runs Snakemake (:func:`oldphoto.requirements.refuse_missing_for_config`).
No image file is read and nothing heavy is imported.
"""

from oldphoto.plan.run import PhotoPlan, RunPlan, build_plan, face_count

__all__ = ["PhotoPlan", "RunPlan", "build_plan", "face_count"]
