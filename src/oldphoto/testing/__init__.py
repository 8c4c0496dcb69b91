"""Helpers for tests, demos and benchmarks only: never imported by a production module.

* :mod:`oldphoto.testing.recipe` -- deterministic, RNG-free weights for every official checkpoint
  layout, and :func:`~oldphoto.testing.recipe.write_recipe_checkpoints`, which writes them as files
  in the official layout (these are NOT the official weights).
* :mod:`oldphoto.testing.degrade` -- synthetic old-photo degradations with a known ground truth.

Nothing under ``oldphoto`` outside this package imports it (``tests/unit/test_layering.py`` checks
that importing the production modules leaves ``oldphoto.testing`` out of ``sys.modules``), so the
restoration can never run on test weights by accident.
"""
