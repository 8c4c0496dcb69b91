"""The official checkpoints: where they live, strict pickle-free loading, and a fast verified cache.

One module per concern, one moment of a run each:

* :mod:`~oldphoto.checkpoints.files` -- the table of the nine official checkpoints (file, manifest,
  constructor), where they lie under ``checkpoints_dir`` and which a run needs
  (:func:`official_path`, :func:`missing_checkpoints`, :func:`missing_message`; which networks a
  photo needs is :meth:`oldphoto.mode.Mode.networks`), and the bundled manifests. No torch.
* :mod:`~oldphoto.checkpoints.registry` -- :func:`build_network`: the network of a checkpoint,
  the table's constructor call (class of :mod:`oldphoto.nets` and options), for a strict load.
  Imported on first use (``oldphoto.checkpoints.build_network``): the package itself stays free
  of torch.
* :mod:`~oldphoto.checkpoints.official` -- :func:`read_official`: an official file, weights only,
  unwrapped, legacy details repaired, checked strictly against its manifest.
* :mod:`~oldphoto.checkpoints.cache` -- :func:`convert_to_cache` (verify once, write safetensors
  and a sha256 record) and :func:`load_network` (per job: cheap check, memory-mapped load).
* :mod:`~oldphoto.checkpoints.download` -- :func:`download_official` (only the explicit download
  rule calls it).

Test weights in the official layout are written by :mod:`oldphoto.testing.recipe`, which no
production module imports.
"""

import importlib
from typing import Any

from oldphoto.checkpoints.cache import (build_without_init, convert_to_cache, load_network,
                                        read_record, record_path, sha256_file, stamp_path,
                                        verify_official)
from oldphoto.checkpoints.download import download_official
from oldphoto.checkpoints.files import (MANIFEST_DIR, OFFICIAL_CHECKPOINTS, OFFICIAL_FILES,
                                        OFFICIAL_ZIPS, OfficialCheckpoint, expected_layout,
                                        manifest, manifest_of, missing_checkpoints,
                                        missing_message, official_path)
from oldphoto.checkpoints.official import read_official, read_official_with_notes

__all__ = [
    "OFFICIAL_CHECKPOINTS",
    "OFFICIAL_FILES",
    "OFFICIAL_ZIPS",
    "MANIFEST_DIR",
    "OfficialCheckpoint",
    "manifest",
    "manifest_of",
    "expected_layout",
    "official_path",
    "missing_checkpoints",
    "missing_message",
    "download_official",
    "read_official",
    "read_official_with_notes",
    "convert_to_cache",
    "record_path",
    "read_record",
    "load_network",
    "build_without_init",
    "verify_official",
    "sha256_file",
    "stamp_path",
    "build_network",
    "REGISTRY",
]

_LAZY = {"build_network": "registry", "REGISTRY": "registry"}  # torch only when used


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'oldphoto.checkpoints' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"oldphoto.checkpoints.{_LAZY[name]}"), name)
    globals()[name] = value
    return value
