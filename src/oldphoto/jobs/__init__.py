"""Jobs: what runs when Snakemake starts one job, from its shell line to its outputs.

* :mod:`~oldphoto.jobs.protocol` — the boundary, both ends: every task's settings (typed,
  declared once), how the run plan writes them onto the job's command line and how the job reads
  them back, the environment jobs read (scheduling), which tasks need a device, the line a job's
  outcome leaves in its log.  Standard library only.
* :mod:`~oldphoto.jobs.entry` — the entry point, ``python -m oldphoto.jobs TASK ARGUMENTS``:
  hands the job to a warm worker (:mod:`oldphoto.worker`, the transport) or runs it in its own
  process.  Standard library only (no numpy or torch): a job starts in tens of milliseconds.
* :mod:`~oldphoto.jobs.runtime` — :class:`~oldphoto.jobs.runtime.Job` (files, typed settings,
  log, device, cached networks) and :func:`~oldphoto.jobs.runtime.run_request`.
* :mod:`~oldphoto.jobs.tasks` — one function per task, files in, files out, around
  :mod:`oldphoto.stages`.

Imports go one way: ``tasks`` → ``runtime`` → ``protocol`` ← ``entry``.  Nothing is imported
here, so the entry point stays light.
"""
