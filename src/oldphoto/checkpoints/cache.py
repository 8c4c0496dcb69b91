"""The verified cache of the official checkpoints: convert once, then load fast in every job.

* **Verify once** -- :func:`convert_to_cache` reads an official file strictly
  (:func:`oldphoto.checkpoints.official.read_official`) and writes the verified tensors as
  safetensors plus a JSON record of the sha256, size and mtime of both files.
* **Load fast, per job** -- :func:`load_network` checks the cache against its record (size + mtime
  by default, or the stamp of its last successful re-hash, see :func:`stamp_path`; full sha256
  with ``verify="full"``), memory-maps it and copies the tensors into a network built without
  random initialisation.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oldphoto.atomic import fsync_dir, temp_file_beside, write_json
from oldphoto.checkpoints.files import OFFICIAL_CHECKPOINTS, known_name
from oldphoto.checkpoints.official import read_official_with_notes
from oldphoto.errors import CheckpointError
from oldphoto.hashing import sha256_file

if TYPE_CHECKING:  # heavy imports only where used
    import torch
    from torch import nn

__all__ = [
    "sha256_file",
    "record_path",
    "read_record",
    "convert_to_cache",
    "stamp_path",
    "load_network",
    "verify_official",
    "build_without_init",
]

_RECORD_FORMAT = "oldphoto-checkpoint-cache/1"


# -- records ----------------------------------------------------------------------------------


def record_path(cache_file: str | Path) -> Path:
    """The JSON record beside a cache file: ``<cache_file>.json``."""
    cache_file = Path(cache_file)
    return cache_file.with_name(cache_file.name + ".json")


def read_record(cache_file: str | Path) -> dict[str, Any]:
    """The verification record of a cache file (accepts the cache file or the record itself)."""
    cache_file = Path(cache_file)
    record = cache_file if cache_file.suffix == ".json" else record_path(cache_file)
    try:
        data = json.loads(record.read_text("utf-8"))
    except FileNotFoundError:
        raise CheckpointError(
            record, "no verification record: convert the official file again (convert_to_cache)"
        ) from None
    except (OSError, ValueError) as err:
        raise CheckpointError(record, f"unreadable verification record: {err}") from None
    if not isinstance(data, dict) or data.get("format") != _RECORD_FORMAT:
        raise CheckpointError(record, f"not a verification record of format {_RECORD_FORMAT}")
    return data


# -- converting to the cache ------------------------------------------------------------------


def convert_to_cache(
    official_file: str | Path, name: str, cache_file: str | Path
) -> dict[str, Any]:
    """Verify ``official_file`` and write it as safetensors to ``cache_file`` plus its record.

    Both files are written atomically (temporary file + rename). The record
    ``<cache_file>.json`` holds the sha256 and size of the official file and of the cache, the
    cache's mtime (for the cheap check of :func:`load_network`), the manifest name and any legacy
    repairs. Returns the record.
    """
    import safetensors
    import safetensors.torch
    import torch

    official_file, cache_file = Path(official_file), Path(cache_file)
    state, notes = read_official_with_notes(official_file, name)
    official_stat = official_file.stat()
    official_sha256 = sha256_file(official_file)

    seen: set[int] = set()
    tensors = {}
    for key, tensor in state.items():  # safetensors refuses shared or strided storage
        tensor = tensor.contiguous()
        if tensor.numel() and tensor.untyped_storage().data_ptr() in seen:
            tensor = tensor.clone()
        if tensor.numel():
            seen.add(tensor.untyped_storage().data_ptr())
        tensors[key] = tensor

    cache_file.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        "format": _RECORD_FORMAT,
        "name": name,
        "manifest": OFFICIAL_CHECKPOINTS[name].manifest,
        "official_sha256": official_sha256,
    }
    tmp = temp_file_beside(cache_file)
    try:
        safetensors.torch.save_file(tensors, tmp, metadata=metadata)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        cache_sha256 = sha256_file(tmp)
        os.replace(tmp, cache_file)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(cache_file.parent)
    cache_stat = cache_file.stat()

    record = {
        "format": _RECORD_FORMAT,
        "name": name,
        "manifest": OFFICIAL_CHECKPOINTS[name].manifest,
        "official_file": str(official_file.resolve()),
        "official_sha256": official_sha256,
        "official_size": official_stat.st_size,
        "cache_file": cache_file.name,
        "cache_sha256": cache_sha256,
        "cache_size": cache_stat.st_size,
        "cache_mtime_ns": cache_stat.st_mtime_ns,
        "tensors": len(tensors),
        "elements": sum(t.numel() for t in tensors.values()),
        "notes": notes,
        "verified_with": {"torch": torch.__version__, "safetensors": safetensors.__version__},
    }
    record_file = record_path(cache_file)
    # The cheap check trusts (size, mtime) only when the record was written in a later clock tick
    # than the cache: any write after the record then moves the mtime. Retry briefly on coarse
    # clocks; if it never succeeds, load_network simply re-hashes.
    for _ in range(50):
        write_json(record_file, record)
        if record_file.stat().st_mtime_ns > cache_stat.st_mtime_ns:
            break
        time.sleep(0.005)
    return record


# -- verified loading -------------------------------------------------------------------------


def _verify_cache(cache_file: Path, record: Mapping[str, Any], verify: str) -> None:
    if verify not in ("stat", "full"):
        raise ValueError(f"verify must be 'stat' or 'full', not {verify!r}")
    try:
        stat = cache_file.stat()
    except FileNotFoundError:
        raise CheckpointError(cache_file, "missing: no such cache file") from None
    if stat.st_size != record["cache_size"]:
        raise CheckpointError(
            cache_file,
            f"changed since it was verified (size {stat.st_size} bytes, recorded "
            f"{record['cache_size']}); delete it and convert the official file again",
        )
    if verify == "stat":
        record_stat = record_path(cache_file).stat()
        if (
            stat.st_mtime_ns == record["cache_mtime_ns"]
            and record_stat.st_mtime_ns > record["cache_mtime_ns"]
        ):
            return
        if _read_stamp(cache_file) == _stamp(stat, record):
            return
    digest = sha256_file(cache_file)  # full check, or mtime moved: the bytes decide
    if digest != record["cache_sha256"]:
        raise CheckpointError(
            cache_file,
            f"changed since it was verified (sha256 {digest}, recorded {record['cache_sha256']}); "
            "delete it and convert the official file again",
        )
    _write_stamp(cache_file, _stamp(stat, record))


def stamp_path(cache_file: str | Path) -> Path:
    """The re-verification stamp beside a cache file: ``<cache_file>.verified``.

    Snakemake touches every output after a job, so the cache's mtime no longer equals the one its
    record holds and the cheap check of :func:`load_network` would fail for every later job (each
    re-hashing 150-370 MB).  The first load that re-hashes the cache successfully writes this
    stamp -- the cache's size, mtime, inode and the sha256 it was found to have -- and later loads
    trust a cache whose stat still equals the stamp.  The stamp is no input or output of any rule
    (writing it never makes Snakemake rerun anything); when it cannot be written (read-only cache
    folder) every load simply re-hashes.
    """
    cache_file = Path(cache_file)
    return cache_file.with_name(cache_file.name + ".verified")


def _stamp(stat: os.stat_result, record: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "cache_sha256": record["cache_sha256"],
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "ino": stat.st_ino,
        "dev": stat.st_dev,
    }


def _read_stamp(cache_file: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(stamp_path(cache_file).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_stamp(cache_file: Path, stamp: dict[str, Any]) -> None:
    target = stamp_path(cache_file)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError:
        return  # read-only folder: later loads re-hash
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(stamp, handle)
        os.replace(tmp, target)  # atomic: concurrent jobs each write a whole, equal stamp
    except OSError:
        Path(tmp).unlink(missing_ok=True)


def _init_functions() -> frozenset:
    import torch

    init = torch.nn.init
    return frozenset({
        init.uniform_, init.normal_, init.trunc_normal_, init.kaiming_uniform_,
        init.kaiming_normal_, init.xavier_uniform_, init.xavier_normal_, init.orthogonal_,
        init.sparse_, torch.Tensor.uniform_, torch.Tensor.normal_,
    })


def build_without_init(name: str) -> nn.Module:
    """:func:`~oldphoto.checkpoints.registry.build_network` without filling its weights with
    random numbers.

    Random initialisation is most of the cost of building a network (0.5 s for a face generator)
    and every value it writes is overwritten by the strict load. The random-fill functions are
    skipped through a torch-function mode; if one was applied to a tensor that the state dict
    does not cover (so the load would not overwrite it), the network is built again normally.
    (Building on the meta device instead would import torch._dynamo, a second per process.)
    """
    from torch.overrides import TorchFunctionMode

    from oldphoto.checkpoints.registry import build_network

    skip = _init_functions()
    skipped = []

    class SkipRandomInit(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func in skip:
                tensor = args[0] if args else kwargs["tensor"]
                skipped.append(tensor)
                return tensor
            return func(*args, **kwargs)

    with SkipRandomInit():
        net = build_network(name)
    covered = {t.data_ptr() for t in net.state_dict().values()}
    if any(t.data_ptr() not in covered for t in skipped):
        net = build_network(name)
    return net


def load_network(
    name: str,
    cache_file: str | Path,
    device: str | torch.device = "cpu",
    verify: str = "stat",
) -> nn.Module:
    """Network ``name`` with the weights of its verified cache, in eval mode on ``device``.

    ``verify="stat"`` (default) trusts the cache when its size and mtime are those recorded at
    conversion (and re-hashes it when only the mtime moved, e.g. after a copy); ``verify="full"``
    always re-hashes. A cache whose bytes changed after verification is refused with
    :class:`CheckpointError`. The tensors are memory-mapped (``safetensors``) and copied with a
    strict ``load_state_dict`` into a network built without random initialisation, so loading
    costs about one read of the file; outputs are bit-identical to a normally loaded network.
    """
    import torch
    from safetensors import safe_open

    cache_file = Path(cache_file)
    manifest = OFFICIAL_CHECKPOINTS[known_name(name, cache_file)].manifest
    record = read_record(cache_file)
    if record.get("name") != name or record.get("manifest") != manifest:
        raise CheckpointError(
            cache_file,
            f"holds {record.get('name')!r} ({record.get('manifest')}), not {name!r}",
        )
    _verify_cache(cache_file, record, verify)

    try:
        with safe_open(cache_file, framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            state = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (memory-mapped)
    except Exception as err:
        raise CheckpointError(cache_file, f"unreadable safetensors file: {err}") from None
    if metadata.get("name") != name:
        raise CheckpointError(cache_file, f"holds {metadata.get('name')!r}, not {name!r}")

    net = build_without_init(name)
    try:
        # Copy (not assign) into the network's own tensors: the memory-mapped ones start wherever
        # the previous tensor ended, and oneDNN/BLAS take other summation paths for buffers that
        # are not 16-byte aligned -- the outputs would differ from a normally loaded network in
        # the last bits (2e-6 on the face generator).
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(cache_file, f"does not fit network {name}: {err}") from None
    return net.to(torch.device(device)).eval()


def verify_official(
    official_file: str | Path, name: str, cache_file: str | Path
) -> str:
    """Re-hash ``official_file`` and compare it with the sha256 recorded when it was converted.

    ``cache_file`` is the cache (or its ``.json`` record) that :func:`convert_to_cache` wrote for
    it. Returns the sha256; raises :class:`CheckpointError` when the file changed since it was
    verified, or when the record is for another network.
    """
    official_file = Path(official_file)
    record = read_record(cache_file)
    if record.get("name") != name:
        raise CheckpointError(
            official_file, f"the record {record_path(cache_file)} is for {record.get('name')!r}"
        )
    if not official_file.is_file():
        raise CheckpointError(official_file, "missing: no such file")
    digest = sha256_file(official_file)
    if digest != record["official_sha256"]:
        raise CheckpointError(
            official_file,
            f"changed since it was verified (sha256 {digest}, recorded "
            f"{record['official_sha256']}); verify and convert it again",
        )
    return digest
