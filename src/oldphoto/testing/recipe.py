"""Deterministic, RNG-free weights for the official checkpoint layouts (tests, demos, benchmarks).

The recipe gives every network a full set of well-conditioned weights without any real checkpoint,
so tests, demos and benchmarks can run the whole pipeline and compare against the golden outputs
recorded from the official code. It is a pure function of a manifest's ordered ``entries``
(``[key, shape, dtype]``) and its ``recipe_salt``:

* ``base(salt, i, j)`` is a SplitMix64-style hash of entry index ``i``, element index ``j`` and the
  salt, mapped to ``[-1, 1)`` with uint64 arithmetic only (bit-exact on every platform);
* values are derived from ``base`` by rules that depend on the key and shape (He-uniform weights,
  small biases, unit-ish norm scales, positive running variances, the fixed blur filter of the
  detection U-Net, and spectral-norm ``u``/``v`` from ten float64 power iterations);
* everything is computed in float64 and cast once to the manifest dtype.

``state_dict_sha256`` is the fingerprint recorded in ``testing/data/recipe_weight_sha256.json``;
:func:`write_recipe_checkpoints` writes the weights as files in the official layout.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from oldphoto.checkpoints.files import OFFICIAL_CHECKPOINTS, manifest_of, official_path
from oldphoto.errors import CheckpointError

if TYPE_CHECKING:  # torch is imported lazily
    import torch

DATA_DIR = Path(__file__).resolve().parent / "data"

# SplitMix64 constants: golden-ratio increments for i, j and the salt, then the finaliser.
_STEP_ENTRY = np.uint64(0x9E3779B97F4A7C15)
_STEP_ELEMENT = np.uint64(0xD1B54A32D192ED03)
_OFFSET = np.uint64(0x632BE59BD9B4E019)
_STEP_SALT = np.uint64(0xA0761D6478BD642F)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)

_POWER_ITERATIONS = 10

Entry = Sequence[Any]  # [key: str, shape: list[int], dtype: str]


@lru_cache(maxsize=1)
def recipe_sha256() -> dict[str, str]:
    """Recorded sha256 of the recipe weights per manifest stem (see ``state_dict_sha256``)."""
    table = json.loads((DATA_DIR / "recipe_weight_sha256.json").read_text(encoding="utf-8"))
    return {name: digest for name, digest in table.items() if not name.startswith("_")}


def hash_base(salt: int, entry_index: int, count: int) -> np.ndarray:
    """``count`` float64 values in ``[-1, 1)``: the hash of ``(salt, entry_index, j)``, j = 0..count-1."""
    with np.errstate(over="ignore"):  # the uint64 products are meant to wrap modulo 2**64
        z = np.arange(count, dtype=np.uint64)
        z *= _STEP_ELEMENT
        z += np.uint64(entry_index) * _STEP_ENTRY + _OFFSET + np.uint64(salt) * _STEP_SALT
        z ^= z >> np.uint64(30)
        z *= _MIX_1
        z ^= z >> np.uint64(27)
        z *= _MIX_2
        z ^= z >> np.uint64(31)
    z >>= np.uint64(11)  # top 53 bits: exactly representable in float64
    return z.astype(np.float64) * (2.0 / 2.0**53) - 1.0


def _value(key: str, shape: Sequence[int], base: np.ndarray) -> np.ndarray:
    """Rules 1-3 and 5-9 of the recipe (spectral-norm vectors are handled separately)."""
    if key.endswith("num_batches_tracked"):
        return np.zeros(base.size)
    if key.endswith(".filt"):
        # The anti-aliasing blur buffer holds the same fixed binomial filter as the real checkpoint.
        binomial = np.outer([1.0, 2.0, 1.0], [1.0, 2.0, 1.0]) / 16.0
        return np.broadcast_to(binomial, tuple(shape))
    if len(shape) >= 2:
        fan_in = float(np.prod(shape[1:]))
        return base * np.sqrt(6.0 / fan_in)
    if key.endswith("running_var"):
        return 1.0 + 0.1 * np.abs(base)
    if key.endswith("weight"):
        return 1.0 + 0.1 * base
    return 0.01 * base  # running_mean, bias, anything else


def _spectral_vectors(weight: np.ndarray, v_start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ten float64 power iterations on ``weight`` (out x in) from ``v_start``; returns (u, v)."""
    v = v_start / np.linalg.norm(v_start)
    for _ in range(_POWER_ITERATIONS):
        u = weight @ v
        u = u / np.linalg.norm(u)
        v = weight.T @ u
        v = v / np.linalg.norm(v)
    u = weight @ v
    return u / np.linalg.norm(u), v


def recipe_state_dict(entries: Sequence[Entry], salt: int) -> dict[str, torch.Tensor]:
    """Deterministic weights for a manifest's ``entries``, in the same order (CPU tensors).

    Args:
        entries: ``[key, shape, dtype]`` per state-dict entry, in state-dict order. The position of
            an entry is part of its values, so the order matters.
        salt: the manifest's ``recipe_salt``.
    """
    import torch

    position = {entry[0]: i for i, entry in enumerate(entries)}
    values: dict[str, np.ndarray] = {}
    for i, (key, shape, _dtype) in enumerate(entries):
        if key.endswith(("weight_u", "weight_v")):
            continue  # derived from the matching weight_orig below
        values[key] = _value(key, shape, hash_base(salt, i, int(np.prod(shape)))).reshape(shape)
    for key, shape, _dtype in entries:
        if not key.endswith("weight_v"):
            continue
        prefix = key[: -len("weight_v")]
        weight = values[prefix + "weight_orig"]
        u, v = _spectral_vectors(weight.reshape(weight.shape[0], -1),
                                 hash_base(salt, position[key], int(shape[0])))
        values[key], values[prefix + "weight_u"] = v, u
    state = {}
    for key, shape, dtype in entries:
        array = np.ascontiguousarray(values[key], dtype=np.float64).reshape(shape)
        state[key] = torch.from_numpy(array).to(getattr(torch, dtype))
    return state


def state_dict_sha256(entries: Sequence[Entry], state: dict[str, torch.Tensor]) -> str:
    """sha256 over, per entry in order, the key (UTF-8) then the tensor's raw little-endian bytes.

    Tensors are taken in the manifest dtype (``num_batches_tracked`` is one int64), C-contiguous.
    This is the definition used by ``testing/data/recipe_weight_sha256.json``.
    """
    import torch

    digest = hashlib.sha256()
    for key, _shape, dtype in entries:
        array = state[key].detach().to("cpu", getattr(torch, dtype)).contiguous().numpy()
        digest.update(key.encode("utf-8"))
        digest.update(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())
    return digest.hexdigest()



def recipe_weights(name: str) -> dict[str, torch.Tensor]:
    """The recipe state dict of official checkpoint ``name`` (from its bundled manifest)."""
    m = manifest_of(name)
    return recipe_state_dict(m["entries"], m["recipe_salt"])


def recipe_network(name: str) -> torch.nn.Module:
    """The network of official checkpoint ``name`` with its recipe weights, strictly loaded."""
    from oldphoto.checkpoints.registry import build_network

    net = build_network(name)
    net.load_state_dict(recipe_weights(name), strict=True)
    return net.eval()

def write_recipe_checkpoints(
    checkpoints_dir: str | Path, names: Iterable[str] | None = None, *, overwrite: bool = False
) -> list[Path]:
    """Write deterministic recipe weights in the official file layout under ``checkpoints_dir``.

    Plain ``torch.save``d state dicts (detection wrapped as ``{"model_state": ...}``) at
    :func:`oldphoto.checkpoints.official_path`, byte-identical on every call. For tests, demos and
    benchmarks: these are NOT the official weights. An existing file is never replaced unless
    ``overwrite`` (it may be a real checkpoint).
    """
    from collections import OrderedDict

    import torch

    written = []
    for name in list(OFFICIAL_CHECKPOINTS) if names is None else list(names):
        path = official_path(checkpoints_dir, name)
        if path.exists() and not overwrite:
            raise CheckpointError(path, "exists; not replaced by recipe weights (overwrite=False)")
        state = OrderedDict(recipe_weights(name))
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
