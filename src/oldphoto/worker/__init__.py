"""Warm model workers: long-lived processes that keep networks and models loaded between jobs.

A Snakemake job that calls a network pays ``import torch`` and a checkpoint load every time it
starts.  Here such a job is a **thin client** (:mod:`oldphoto.worker.client`, standard library
only) that hands the job's paths and settings to a **worker** (:mod:`oldphoto.worker.server`)
which imported the handler and loaded its models once.

- A *pool* (``"cpu"``, ``"net"``, ``"net-gpu1"``) has workers in slots 0, 1, 2, ...; a client takes
  the first slot whose lock it can hold, so one worker serves one job at a time and parallel jobs
  run on parallel workers.  The lock is held for the whole request.
- A missing or dead worker is spawned by the client holding its slot lock (so exactly one spawn),
  fully detached, with the client's environment (``CUDA_VISIBLE_DEVICES``, Slurm's variables).
- A worker exits when idle for ``idle_timeout`` seconds, when the process that owns the run
  (the outermost Snakemake ancestor of the first client) is gone, on a shutdown request
  (:func:`oldphoto.worker.client.shutdown_all`) or on SIGTERM.
- :func:`oldphoto.worker.client.run_in_process` calls the handler in the client process instead,
  with the same result dict (the workflow's jobs do with ``workers: false``,
  :mod:`oldphoto.jobs.entry`).

The wire format is in :mod:`oldphoto.worker.protocol`, the handler contract in
:mod:`oldphoto.worker.handler`.  Nothing is imported here, so ``import oldphoto.worker.client``
stays light.
"""
