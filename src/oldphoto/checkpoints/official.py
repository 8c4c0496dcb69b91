"""Reading an official checkpoint file: weights only, unwrapped, repaired and strictly checked.

:func:`read_official` opens an official file without ever unpickling code
(``torch.load(weights_only=True)``), unwraps the detection file's ``model_state`` and an optional
``module.`` prefix, repairs the two legacy details of files written by torch < 1.0, and checks
every tensor against the bundled manifest (missing, unexpected and mis-shaped keys are all named).

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

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oldphoto.checkpoints.files import (OFFICIAL_CHECKPOINTS, OFFICIAL_FILES, expected_layout,
                                        known_name)
from oldphoto.errors import CheckpointError

if TYPE_CHECKING:  # heavy imports only where used
    import torch

__all__ = ["read_official", "read_official_with_notes"]


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
    own = {(k, tuple(s)) for k, (s, _) in expected_layout(name).items()}
    for other in OFFICIAL_FILES:
        theirs = {(k, tuple(s)) for k, (s, _) in expected_layout(other).items()}
        if theirs != own and theirs == layout:
            return f" (it has the layout of {other}: {OFFICIAL_FILES[other]})"
    return ""


def _check_layout(state: dict[str, Any], name: str, path: Path) -> dict[str, torch.Tensor]:
    import torch

    expected = expected_layout(name)
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
            f"(manifest {OFFICIAL_CHECKPOINTS[name].manifest}){_looks_like(state, name)}: "
            + "; ".join(problems),
        )
    out = {}
    for key, (_, dtype) in expected.items():  # manifest order
        tensor = state[key].detach()
        if tensor.layout != torch.strided:
            tensor = tensor.to_dense()
        out[key] = tensor.to(getattr(torch, dtype))
    return out


def read_official_with_notes(
    path: str | Path, name: str
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """:func:`read_official` and the notes of what was unwrapped or repaired, one line each."""
    path = Path(path)
    known_name(name, path)
    notes: list[str] = []
    state = _unwrap(_torch_load(path), path, notes)
    _repair_legacy(state, expected_layout(name), path, notes)
    return _check_layout(state, name, path), notes


def read_official(path: str | Path, name: str) -> dict[str, torch.Tensor]:
    """The state dict of the official file ``path`` of network ``name``, checked strictly.

    Never unpickles code: a file that needs anything but tensors and plain containers is refused.
    Accepts the detection file's ``{"model_state": ...}`` wrapper, a ``module.`` prefix and the
    legacy details of torch < 1.0 files (see the module docstring). Every key of the manifest must
    be present with its exact shape and no other key may be; otherwise :class:`CheckpointError`
    names the file and every offending key. Tensors come back in manifest order and dtype, on the
    CPU.
    """
    return read_official_with_notes(path, name)[0]
