"""The official checkpoints: where they live, strict pickle-free loading, and a fast verified cache.

Three layers, one per moment in a run:

* **Where** -- :data:`OFFICIAL_FILES` is the layout of a clone of the official repository after
  unpacking its two release zips; :func:`official_path`, :func:`missing_checkpoints`,
  :func:`missing_message` and :func:`networks_for` answer "which files does this run need and
  which are not there". :func:`download_official` fetches the zips (only the explicit download rule
  calls it).
* **Verify once** -- :func:`read_official` opens an official file without ever unpickling code
  (``torch.load(weights_only=True)``), unwraps the detection file's ``model_state`` and an optional
  ``module.`` prefix, repairs the two legacy details of files written by torch < 1.0, and checks
  every tensor against the bundled manifest (missing, unexpected and mis-shaped keys are all named).
  :func:`convert_to_cache` writes the verified tensors as safetensors plus a JSON record of the
  sha256, size and mtime of both files.
* **Load fast, per job** -- :func:`load_network` checks the cache against its record (size + mtime
  by default, or the stamp of its last successful re-hash, see :func:`stamp_path`; full sha256
  with ``verify="full"``), memory-maps it and copies the tensors into a
  network built without random initialisation.

Legacy files (torch < 1.0):

* BatchNorm without ``num_batches_tracked``: filled with 0, as torch's own BatchNorm load does
  (the value is never used at inference).
* Spectral norm without ``weight_v`` but with the computed ``weight``: ``v`` is solved the way
  torch's ``SpectralNormLoadStateDictPreHook`` does (``u = normalize(W v)`` and ``u.W v = sigma``
  with ``sigma`` = ``weight_orig / weight``), in float64: ``v`` is the minimum-norm solution of
  ``W v = u`` (torch's ``pinv(W'W) W' u``) computed through the smaller Gram matrix ``W W'`` or
  ``W'W`` (about a second instead of a minute for the 1024 x 9216 face convs), and ``sigma`` is
  fitted by least squares rather than an element-wise mean (a zero in ``weight`` cannot make it
  infinite). The effective weight ``weight_orig / (u.W v)`` then equals the stored ``weight`` to
  float32 rounding. The stored ``weight`` is dropped (the network has no such key).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from oldphoto.errors import CheckpointError
from oldphoto.imageio import fsync_dir, write_json

if TYPE_CHECKING:  # heavy imports only where used
    import torch
    from torch import nn

__all__ = [
    "OFFICIAL_FILES",
    "OFFICIAL_ZIPS",
    "official_path",
    "missing_checkpoints",
    "missing_message",
    "networks_for",
    "download_official",
    "read_official",
    "convert_to_cache",
    "record_path",
    "read_record",
    "load_network",
    "verify_official",
    "write_recipe_checkpoints",
    "sha256_file",
    "stamp_path",
]

# -- where the files live ---------------------------------------------------------------------

_RESTORATION = "Global/checkpoints/restoration"
_FACE = "Face_Enhancement/checkpoints"

#: registry name -> path relative to ``checkpoints_dir`` (a clone of the official repository
#: after unpacking ``global_checkpoints.zip`` into ``Global/`` and ``face_checkpoints.zip`` into
#: ``Face_Enhancement/``). Equal to each manifest's ``checkpoint`` field (checked by the tests).
OFFICIAL_FILES: dict[str, str] = {
    "detection": "Global/checkpoints/detection/FT_Epoch_latest.pt",
    "VAE_A_quality": f"{_RESTORATION}/VAE_A_quality/latest_net_G.pth",
    "VAE_B_quality": f"{_RESTORATION}/VAE_B_quality/latest_net_G.pth",
    "VAE_B_scratch": f"{_RESTORATION}/VAE_B_scratch/latest_net_G.pth",
    "mapping_quality": f"{_RESTORATION}/mapping_quality/latest_net_mapping_net.pth",
    "mapping_scratch": f"{_RESTORATION}/mapping_scratch/latest_net_mapping_net.pth",
    "mapping_Patch_Attention": f"{_RESTORATION}/mapping_Patch_Attention/latest_net_mapping_net.pth",
    "Setting_9_epoch_100": f"{_FACE}/Setting_9_epoch_100/latest_net_G.pth",
    "FaceSR_512": f"{_FACE}/FaceSR_512/latest_net_G.pth",
}

_RELEASE = "https://github.com/microsoft/Bringing-Old-Photos-Back-to-Life/releases/download/v1.0"

#: release zip -> (folder of the official repository it is unpacked into, download URL)
OFFICIAL_ZIPS: dict[str, tuple[str, str]] = {
    "global_checkpoints.zip": ("Global", f"{_RELEASE}/global_checkpoints.zip"),
    "face_checkpoints.zip": ("Face_Enhancement", f"{_RELEASE}/face_checkpoints.zip"),
}

_QUALITY = ["VAE_A_quality", "mapping_quality", "VAE_B_quality"]
_SCRATCH = ["detection", "VAE_A_quality", "mapping_scratch", "VAE_B_scratch"]
_SCRATCH_HR = ["detection", "VAE_A_quality", "mapping_Patch_Attention", "VAE_B_scratch"]

_RECORD_FORMAT = "oldphoto-checkpoint-cache/1"
_CHUNK = 8 << 20


def _known(name: str, path: str | Path | None = None) -> str:
    if name not in OFFICIAL_FILES:
        raise CheckpointError(
            path, f"unknown network {name!r}; known: {', '.join(OFFICIAL_FILES)}"
        )
    return name


def official_path(checkpoints_dir: str | Path, name: str) -> Path:
    """Where the official file of network ``name`` lies under ``checkpoints_dir``."""
    return Path(checkpoints_dir) / OFFICIAL_FILES[_known(name, checkpoints_dir)]


def missing_checkpoints(checkpoints_dir: str | Path, names: Iterable[str]) -> list[Path]:
    """The official files of ``names`` that are not regular files under ``checkpoints_dir``."""
    paths = dict.fromkeys(official_path(checkpoints_dir, n) for n in names)  # ordered, unique
    return [p for p in paths if not p.is_file()]


def networks_for(with_scratch: bool, hr: bool, faces: bool = True) -> list[str]:
    """The checkpoints a run needs, in stage order.

    Stage 1 without scratches is the quality path (``--HR`` does not change it, as in the official
    ``run.py``); with scratches it adds the detection U-Net and the mask-aware mapping (the
    patch-attention one with ``hr``). Stage 3 uses the 256 face model, or ``FaceSR_512`` with
    ``hr``.
    """
    if not with_scratch:
        names = list(_QUALITY)
    else:
        names = list(_SCRATCH_HR if hr else _SCRATCH)
    if faces:
        names.append("FaceSR_512" if hr else "Setting_9_epoch_100")
    return names


def _zip_of(name: str) -> str:
    top = OFFICIAL_FILES[name].split("/", 1)[0]
    return next(z for z, (folder, _) in OFFICIAL_ZIPS.items() if folder == top)


def missing_message(checkpoints_dir: str | Path, missing: Iterable[str | Path]) -> str:
    """A message that says exactly which files to put where, and where to get them."""
    root = Path(checkpoints_dir)
    missing = [Path(p) for p in missing]
    by_path = {official_path(root, n): n for n in OFFICIAL_FILES}
    lines = [
        f"{len(missing)} official checkpoint file(s) missing under {root}:",
        *(f"  {p}" for p in missing),
    ]
    zips = []
    for p in missing:
        name = by_path.get(p)
        if name is not None and _zip_of(name) not in zips:
            zips.append(_zip_of(name))
    zips = zips or list(OFFICIAL_ZIPS)
    lines.append(
        "They come from release v1.0 of the official repository "
        "(microsoft/Bringing-Old-Photos-Back-to-Life):"
    )
    for z in zips:
        folder, url = OFFICIAL_ZIPS[z]
        lines.append(f"  {url}  -> unzip into {root / folder}/")
    lines.append(
        "(an existing clone of the official repository with its checkpoints unpacked works as "
        "checkpoints_dir as is; or set allow_download: true to let the download rule fetch them)"
    )
    return "\n".join(lines)


# -- manifests --------------------------------------------------------------------------------


def _manifest_stem(name: str) -> str:
    """``detection`` -> ``detection_FT_Epoch_latest`` (the bundled manifest's file stem)."""
    return f"{name}_{PurePosixPath(OFFICIAL_FILES[name]).stem}"


@lru_cache(maxsize=None)
def _manifest(name: str) -> dict[str, Any]:
    from oldphoto import recipe

    return recipe.manifest(_manifest_stem(_known(name)))


def _expected(name: str) -> dict[str, tuple[list[int], str]]:
    return {key: (list(shape), dtype) for key, shape, dtype in _manifest(name)["entries"]}


# -- reading an official file ----------------------------------------------------------------


def _refusal_reason(err: Exception) -> str:
    """The informative line of torch's weights-only refusal (which global it would have called)."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    detail = [ln for ln in lines if "GLOBAL" in ln or ln.lower().startswith("unsupported")]
    reason = (detail or lines[:1] or [type(err).__name__])[0]
    return reason.split(" Please use", 1)[0]  # not torch's advice to allow-list it


def _torch_load(path: Path) -> Any:
    import torch

    if not path.exists():
        raise CheckpointError(path, "missing: no such file")
    if not path.is_file():
        raise CheckpointError(path, "not a regular file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            path,
            "refused: not a plain weights file (loading it would run code or build objects "
            f"other than tensors; nothing was executed): {_refusal_reason(err)}",
        ) from None
    except Exception as err:  # truncated zip, random bytes, ...
        raise CheckpointError(
            path, f"cannot be read as a torch checkpoint: {type(err).__name__}: {err}"
        ) from None


def _unwrap(obj: Any, path: Path, notes: list[str]) -> dict[str, Any]:
    if isinstance(obj, Mapping) and isinstance(obj.get("model_state"), Mapping):
        obj = obj["model_state"]
        notes.append("unwrapped 'model_state'")
    if not isinstance(obj, Mapping):
        raise CheckpointError(path, f"not a state dict (the file holds a {type(obj).__name__})")
    bad_keys = [repr(k) for k in obj if not isinstance(k, str)]
    if bad_keys:
        raise CheckpointError(path, f"not a state dict: non-string keys {', '.join(bad_keys[:5])}")
    state = dict(obj)
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
        notes.append("removed the 'module.' prefix")
    return state


def _solve_spectral_v(weight_orig: torch.Tensor, weight: torch.Tensor, u: torch.Tensor):
    """``v`` of a legacy spectral-norm entry (torch's load-hook equations; see module docstring)."""
    import torch

    w = weight_orig.detach().to(torch.float64).reshape(weight_orig.shape[0], -1)
    w_eff = weight.detach().to(torch.float64).reshape(weight_orig.shape[0], -1)
    u64 = u.detach().to(torch.float64)
    sigma = (w * w_eff).sum() / (w_eff * w_eff).sum()  # w_eff = w / sigma
    try:  # the minimum-norm solution of w v = u through the smaller Gram matrix
        if w.shape[0] <= w.shape[1]:
            v = w.T @ torch.linalg.solve(w @ w.T, u64)
        else:
            v = torch.linalg.solve(w.T @ w, w.T @ u64)
    except RuntimeError:  # singular Gram matrix
        v = torch.linalg.pinv(w) @ u64
    v = v * (sigma / torch.dot(u64, w @ v))
    return v.to(weight_orig.dtype)


def _repair_legacy(
    state: dict[str, Any], expected: Mapping[str, Any], path: Path, notes: list[str]
) -> None:
    """Fill ``num_batches_tracked`` and solve spectral-norm ``weight_v`` of torch < 1.0 files."""
    import torch

    filled = 0
    solved = 0
    for key in expected:
        if key in state:
            continue
        prefix = key.rsplit(".", 1)[0] + "." if "." in key else ""
        if key.endswith("num_batches_tracked") and prefix + "running_mean" in state:
            state[key] = torch.zeros((), dtype=torch.int64)
            filled += 1
        elif (
            key.endswith("weight_v")
            and prefix + "weight" in state
            and prefix + "weight" not in expected
            and isinstance(state.get(prefix + "weight_orig"), torch.Tensor)
            and isinstance(state.get(prefix + "weight_u"), torch.Tensor)
        ):
            weight_orig, u = state[prefix + "weight_orig"], state[prefix + "weight_u"]
            weight = state[prefix + "weight"]
            if (
                not isinstance(weight, torch.Tensor)
                or weight.shape != weight_orig.shape
                or weight_orig.ndim < 2
                or u.shape != (weight_orig.shape[0],)
            ):
                continue  # leave it to the strict check, which names the keys
            state[key] = _solve_spectral_v(weight_orig, weight, u)
            del state[prefix + "weight"]
            solved += 1
    if filled:
        notes.append(f"legacy file: filled num_batches_tracked = 0 for {filled} BatchNorm(s)")
    if solved:
        notes.append(f"legacy file: solved spectral-norm weight_v for {solved} layer(s)")


def _layout_of(state: Mapping[str, Any]) -> set[tuple[str, tuple[int, ...]]]:
    return {(k, tuple(getattr(v, "shape", ()))) for k, v in state.items()}


def _looks_like(state: Mapping[str, Any], name: str) -> str:
    """`` (it has the layout of X)`` when the file matches another checkpoint's layout exactly."""
    layout = _layout_of(state)
    own = {(k, tuple(s)) for k, (s, _) in _expected(name).items()}
    for other in OFFICIAL_FILES:
        theirs = {(k, tuple(s)) for k, (s, _) in _expected(other).items()}
        if theirs != own and theirs == layout:
            return f" (it has the layout of {other}: {OFFICIAL_FILES[other]})"
    return ""


def _check_layout(state: dict[str, Any], name: str, path: Path) -> dict[str, torch.Tensor]:
    import torch

    expected = _expected(name)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    not_tensors = [k for k in state if k in expected and not isinstance(state[k], torch.Tensor)]
    wrong_shape = [
        f"{k} (expected {expected[k][0]}, found {list(state[k].shape)})"
        for k in expected
        if isinstance(state.get(k), torch.Tensor) and list(state[k].shape) != expected[k][0]
    ]
    problems = []
    for label, keys in (
        ("missing", missing),
        ("unexpected", unexpected),
        ("not a tensor", not_tensors),
        ("wrong shape", wrong_shape),
    ):
        if keys:
            problems.append(f"{label} ({len(keys)}): {', '.join(keys)}")
    if problems:
        raise CheckpointError(
            path,
            f"does not match the official {name} layout "
            f"(manifest {_manifest_stem(name)}){_looks_like(state, name)}: " + "; ".join(problems),
        )
    out = {}
    for key, (_, dtype) in expected.items():  # manifest order
        tensor = state[key].detach()
        if tensor.layout != torch.strided:
            tensor = tensor.to_dense()
        out[key] = tensor.to(getattr(torch, dtype))
    return out


def _read_official(path: str | Path, name: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    path = Path(path)
    _known(name, path)
    notes: list[str] = []
    state = _unwrap(_torch_load(path), path, notes)
    _repair_legacy(state, _expected(name), path, notes)
    return _check_layout(state, name, path), notes


def read_official(path: str | Path, name: str) -> dict[str, torch.Tensor]:
    """The state dict of the official file ``path`` of network ``name``, checked strictly.

    Never unpickles code: a file that needs anything but tensors and plain containers is refused.
    Accepts the detection file's ``{"model_state": ...}`` wrapper, a ``module.`` prefix and the
    legacy details of torch < 1.0 files (module docstring). Every key of the manifest must be
    present with its exact shape and no other key may be; otherwise :class:`CheckpointError` names
    the file and every offending key. Tensors come back in manifest order and dtype, on the CPU.
    """
    return _read_official(path, name)[0]


# -- hashing and records ----------------------------------------------------------------------


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def record_path(cache_file: str | Path) -> Path:
    """The JSON record beside a cache file: ``<cache_file>.json``."""
    cache_file = Path(cache_file)
    return cache_file.with_name(cache_file.name + ".json")


def _temp_beside(target: Path) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    return Path(tmp)


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
    state, notes = _read_official(official_file, name)
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
        "manifest": _manifest_stem(name),
        "official_sha256": official_sha256,
    }
    tmp = _temp_beside(cache_file)
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
        "manifest": _manifest_stem(name),
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


def _build_without_init(name: str) -> nn.Module:
    """``oldphoto.nets.build(name)`` without filling its weights with random numbers.

    Random initialisation is most of the cost of building a network (0.5 s for a face generator)
    and every value it writes is overwritten by the strict load. The random-fill functions are
    skipped through a torch-function mode; if one was applied to a tensor that the state dict
    does not cover (so the load would not overwrite it), the network is built again normally.
    (Building on the meta device instead would import torch._dynamo, a second per process.)
    """
    from torch.overrides import TorchFunctionMode

    from oldphoto import nets

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
        net = nets.build(name)
    covered = {t.data_ptr() for t in net.state_dict().values()}
    if any(t.data_ptr() not in covered for t in skipped):
        net = nets.build(name)
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
    _known(name, cache_file)
    record = read_record(cache_file)
    if record.get("name") != name or record.get("manifest") != _manifest_stem(name):
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

    net = _build_without_init(name)
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


# -- recipe weights in the official layout ----------------------------------------------------


def write_recipe_checkpoints(
    checkpoints_dir: str | Path, names: Iterable[str] | None = None, *, overwrite: bool = False
) -> list[Path]:
    """Write deterministic recipe weights (:mod:`oldphoto.recipe`) in the official file layout.

    Plain ``torch.save``d state dicts (detection wrapped as ``{"model_state": ...}``) at
    :func:`official_path`, byte-identical on every call. For tests, demos and benchmarks: these
    are NOT the official weights. An existing file is never replaced unless ``overwrite`` (it may
    be a real checkpoint).
    """
    from collections import OrderedDict

    import torch

    from oldphoto import recipe

    written = []
    for name in list(OFFICIAL_FILES) if names is None else list(names):
        path = official_path(checkpoints_dir, name)
        if path.exists() and not overwrite:
            raise CheckpointError(path, "exists; not replaced by recipe weights (overwrite=False)")
        m = _manifest(name)
        state = OrderedDict(recipe.recipe_state_dict(m["entries"], m["recipe_salt"]))
        obj: Any = {"model_state": state} if name == "detection" else state
        path.parent.mkdir(parents=True, exist_ok=True)
        # torch.save names the archive after the file, so write under the final name in a
        # private folder and rename: the bytes never depend on a temporary name.
        scratch = Path(tempfile.mkdtemp(prefix=".recipe-", dir=path.parent))
        try:
            torch.save(obj, scratch / path.name)
            os.replace(scratch / path.name, path)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        written.append(path)
    return written


# -- download ---------------------------------------------------------------------------------


def _safe_member(name: str) -> PurePosixPath | None:
    """The relative path of a zip member, or None for folders and macOS metadata."""
    path = PurePosixPath(name.replace("\\", "/"))
    if name.endswith("/") or not path.parts or path.parts[0] == "__MACOSX":
        return None
    if path.is_absolute() or ".." in path.parts or ":" in path.parts[0]:
        raise ValueError(name)
    return path


def _download(url: str, target: Path, log: Callable[[str], None]) -> None:
    import urllib.request

    part = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(part, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            next_report = 0.0
            while chunk := response.read(1 << 20):
                out.write(chunk)
                done += len(chunk)
                if total and done / total >= next_report:
                    log(f"{target.name}: {done >> 20} / {total >> 20} MiB")
                    next_report += 0.1
        os.replace(part, target)
    except Exception as err:
        part.unlink(missing_ok=True)
        raise CheckpointError(url, f"download failed: {type(err).__name__}: {err}") from None


def _unpack(archive: Path, folder: Path) -> None:
    """Unzip ``archive`` into ``folder`` like ``unzip``, refusing members that escape it."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = []
            for info in zf.infolist():
                try:
                    rel = _safe_member(info.filename)
                except ValueError:
                    raise CheckpointError(
                        archive, f"refused: member {info.filename!r} would be written outside "
                        f"{folder}"
                    ) from None
                if rel is not None:
                    members.append((info, rel))
            for info, rel in members:
                target = folder.joinpath(*rel.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = _temp_beside(target)
                try:
                    with zf.open(info) as src, open(tmp, "wb") as dst:
                        shutil.copyfileobj(src, dst, _CHUNK)
                    os.replace(tmp, target)
                finally:
                    tmp.unlink(missing_ok=True)
    except (zipfile.BadZipFile, OSError) as err:
        raise CheckpointError(archive, f"cannot be unpacked: {err}") from None


def download_official(
    checkpoints_dir: str | Path,
    names: Iterable[str] | None = None,
    *,
    urls: Mapping[str, str] | None = None,
    log: Callable[[str], None] | None = None,
) -> list[Path]:
    """Download the official release zips, unpack them, and verify every checkpoint file.

    Only the zips that hold a missing file of ``names`` (default: all nine) are fetched, with
    ``urllib``, unpacked like ``unzip`` into ``Global/`` and ``Face_Enhancement/`` of
    ``checkpoints_dir`` and deleted. Every file of ``names`` is then checked with
    :func:`read_official`. ``urls`` overrides the URL of a zip (tests use ``file://``). Returns the
    verified paths.
    """
    root = Path(checkpoints_dir)
    names = list(OFFICIAL_FILES) if names is None else [_known(n) for n in names]
    log = log or (lambda line: print(line, file=sys.stderr))
    urls = {**{z: url for z, (_, url) in OFFICIAL_ZIPS.items()}, **(urls or {})}
    missing = {p: n for n in names if not (p := official_path(root, n)).is_file()}
    for zip_name, (folder, _) in OFFICIAL_ZIPS.items():
        if not any(_zip_of(n) == zip_name for n in missing.values()):
            continue
        (root / folder).mkdir(parents=True, exist_ok=True)
        archive = root / folder / zip_name
        log(f"downloading {urls[zip_name]}")
        _download(urls[zip_name], archive, log)
        try:
            _unpack(archive, root / folder)
        finally:
            archive.unlink(missing_ok=True)
    still_missing = missing_checkpoints(root, names)
    if still_missing:
        raise CheckpointError(
            root, "the downloaded zips did not provide every file:\n"
            + missing_message(root, still_missing)
        )
    verified = []
    for name in names:
        path = official_path(root, name)
        read_official(path, name)
        log(f"verified {path}")
        verified.append(path)
    return verified
