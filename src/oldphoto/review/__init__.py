"""``oldphoto review OUTPUT_DIR``: look at a run's restorations, accept or reject them, send the
rejects back with other settings, and keep the record (docs/review.md).

Modules, from the bottom up:

* :mod:`~oldphoto.review.folder`: what an output folder holds for review (the photo index from
  ``run_summary.json``, the input manifest and the provenance sidecars), sampling, the run's
  operator.
* :mod:`~oldphoto.review.settings`: the run's configuration, its photo sheet, and one photo's
  effective settings (:func:`~oldphoto.review.settings.photo_settings`, the one lookup).
* :mod:`~oldphoto.review.store`: the record, an append-only SQLite history of decisions.
* :mod:`~oldphoto.review.export`: the record as TSV (one row per photo) and PREMIS 3 XML.
* :mod:`~oldphoto.review.images`: paths that stay inside the folder, thumbnails and
  browser-viewable renderings (cached in the folder, never beside an original).
* :mod:`~oldphoto.review.rerun`: the Snakemake rerun of the rejected photos.
* :mod:`~oldphoto.review.security`: the token, cookie, Host and CSRF checks (ASGI middleware).
* :mod:`~oldphoto.review.app`: the web application (Starlette), :mod:`~oldphoto.review.main`:
  the command line and the server (uvicorn).

The web stack is imported only by ``app``, ``security`` and ``main``; the other modules are
plain library code, usable and tested without a server.
"""
