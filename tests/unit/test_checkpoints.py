"""oldphoto.checkpoints: official layout, strict pickle-free reading, verified cache, download.

The round trips write recipe weights in the official file layout (the big ones are 150 MB for
detection and 350 MB per face model) and remove them at the end of each test, so pytest's kept
temporary folders stay small.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import time
import zipfile
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from oldphoto import checkpoints as ck
from oldphoto.checkpoints import registry
from oldphoto.checkpoints.registry import build_network
from oldphoto.checkpoints import cache as ck_cache
from oldphoto.errors import CheckpointError
from oldphoto.testing import recipe
from oldphoto.testing.recipe import recipe_weights

ALL = list(ck.OFFICIAL_FILES)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread: the machines running the tests share few cores (and outputs are compared
    between two networks in the same test, so the thread count cannot change a result)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def scratch(tmp_path):
    """A temporary folder that is emptied after the test (checkpoint files are large)."""
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)


def make_input(*shape: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.tanh(torch.randn(*shape, generator=gen))


def block_mask(h: int, w: int) -> torch.Tensor:
    mask = torch.zeros(1, 1, h, w)
    mask[..., h // 4 : h // 2, w // 3 : w // 2 + 3] = 1.0
    return mask


def outputs(name: str, net: torch.nn.Module) -> list[torch.Tensor]:
    """A small forward of each network through its public interface (docs/design.md)."""
    with torch.no_grad():
        if name == "detection":
            return [net(make_input(1, 1, 48, 64))]
        if name.startswith("VAE_"):
            z = net.encode(make_input(1, 3, 32, 48))
            return [z, net.decode(z)]
        if name == "mapping_quality":
            return [net(make_input(1, 64, 8, 12))]
        if name == "mapping_scratch":
            return [net(make_input(1, 64, 8, 12), block_mask(32, 48))]
        if name == "mapping_Patch_Attention":
            return [net(make_input(1, 64, 16, 16), block_mask(64, 64))]
        return [net(make_input(1, 3, 256, 256))]  # face generators


# -- registry ---------------------------------------------------------------------------------


def test_official_files_are_the_manifest_checkpoints():
    assert len(ALL) == 9
    for name in ALL:
        m = ck.manifest(ck.OFFICIAL_CHECKPOINTS[name].manifest)
        assert ck.OFFICIAL_FILES[name] == m["checkpoint"]
        assert ck.manifest_of(name) == m
    assert set(ck.OFFICIAL_CHECKPOINTS) == set(ALL)


def test_official_path_layout(tmp_path):
    root = tmp_path / "clone"
    assert ck.official_path(root, "detection") == (
        root / "Global" / "checkpoints" / "detection" / "FT_Epoch_latest.pt"
    )
    assert ck.official_path(root, "mapping_scratch") == (
        root / "Global/checkpoints/restoration/mapping_scratch/latest_net_mapping_net.pth"
    )
    assert ck.official_path(root, "FaceSR_512") == (
        root / "Face_Enhancement/checkpoints/FaceSR_512/latest_net_G.pth"
    )
    with pytest.raises(CheckpointError, match="unknown network 'VAE_C'"):
        ck.official_path(root, "VAE_C")


def test_missing_checkpoints_and_message_name_the_exact_paths(tmp_path):
    root = tmp_path / "ckpts"
    names = ["detection", "VAE_A_quality", "mapping_scratch", "VAE_B_scratch",
             "Setting_9_epoch_100"]
    present = root / "Global/checkpoints/restoration/VAE_A_quality/latest_net_G.pth"
    present.parent.mkdir(parents=True)
    present.write_bytes(b"x")
    # a folder where a file should be does not count as present
    (root / "Global/checkpoints/detection/FT_Epoch_latest.pt").mkdir(parents=True)

    missing = ck.missing_checkpoints(root, names)
    assert missing == [
        root / "Global/checkpoints/detection/FT_Epoch_latest.pt",
        root / "Global/checkpoints/restoration/mapping_scratch/latest_net_mapping_net.pth",
        root / "Global/checkpoints/restoration/VAE_B_scratch/latest_net_G.pth",
        root / "Face_Enhancement/checkpoints/Setting_9_epoch_100/latest_net_G.pth",
    ]
    message = ck.missing_message(root, missing)
    for path in missing:
        assert f"  {path}\n" in message
    assert str(present) not in message
    release = "https://github.com/microsoft/Bringing-Old-Photos-Back-to-Life/releases/download/v1.0"
    assert f"{release}/global_checkpoints.zip  -> unzip into {root / 'Global'}/" in message
    assert f"{release}/face_checkpoints.zip  -> unzip into {root / 'Face_Enhancement'}/" in message

    only_global = ck.missing_message(root, missing[:1])
    assert "face_checkpoints.zip" not in only_global
    assert ck.missing_checkpoints(root, ["VAE_A_quality"]) == []


# -- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_round_trip(name, scratch):
    """Recipe weights in the official file -> read -> cache -> load_network == direct load."""
    stem = ck.OFFICIAL_CHECKPOINTS[name].manifest
    entries = ck.manifest(stem)["entries"]
    (official,) = recipe.write_recipe_checkpoints(scratch / "ckpts", [name])
    assert official == ck.official_path(scratch / "ckpts", name)
    if name == "detection":  # the official container
        assert list(torch.load(official, map_location="cpu", weights_only=True)) == ["model_state"]

    state = ck.read_official(official, name)
    assert [k for k, _, _ in entries] == list(state)
    assert all(str(state[k].dtype) == f"torch.{dtype}" for k, _, dtype in entries)
    # bit for bit the recipe weights recorded from the reference (no second generation needed)
    assert recipe.state_dict_sha256(entries, state) == recipe.recipe_sha256()[stem]

    cache = scratch / "cache" / f"{name}.safetensors"
    record = ck.convert_to_cache(official, name, cache)
    assert record == ck.read_record(cache)
    assert record["name"] == name and record["manifest"] == stem
    assert record["official_sha256"] == ck.sha256_file(official)
    assert record["official_size"] == official.stat().st_size
    assert record["cache_sha256"] == ck.sha256_file(cache)
    assert record["cache_size"] == cache.stat().st_size
    assert record["tensors"] == len(entries)
    assert not list(cache.parent.glob(".*.tmp"))  # no temporary left behind

    loaded = ck.load_network(name, cache)
    assert not loaded.training
    loaded_state = loaded.state_dict()
    assert list(loaded_state) == list(state)
    assert all(torch.equal(loaded_state[k], state[k]) for k in state)
    assert all(t.device.type == "cpu" for t in loaded_state.values())

    if name == "FaceSR_512":
        # Same architecture as Setting_9_epoch_100, whose forward through the cache is compared
        # below; the 512 generator's forward (~30 s per pass on 2 cores) runs in test_nets.py.
        return
    direct = build_network(name)
    direct.load_state_dict(state, strict=True)
    del state, loaded_state
    got, want = outputs(name, loaded), outputs(name, direct)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.shape == b.shape and torch.isfinite(a).all()
        assert torch.equal(a, b)


def test_recipe_files_are_deterministic_and_never_replace_a_file(scratch):
    (a,) = recipe.write_recipe_checkpoints(scratch / "a", ["VAE_B_scratch"])
    (b,) = recipe.write_recipe_checkpoints(scratch / "b", ["VAE_B_scratch"])
    assert a.read_bytes() == b.read_bytes()
    assert not [p for p in a.parent.iterdir() if p != a]  # no temporary left behind
    with pytest.raises(CheckpointError, match="exists; not replaced") as info:
        recipe.write_recipe_checkpoints(scratch / "a", ["VAE_B_scratch"])
    assert str(a) in str(info.value)
    (again,) = recipe.write_recipe_checkpoints(scratch / "a", ["VAE_B_scratch"], overwrite=True)
    assert again.read_bytes() == b.read_bytes()


# -- strict reading ---------------------------------------------------------------------------


class _Payload:
    """Unpickling this runs code: it would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


class _OpenPayload(_Payload):
    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("how", ["torch.save", "pickle", "inside model_state"])
def test_a_pickle_that_runs_code_is_refused_without_running_it(how, tmp_path):
    official = ck.official_path(tmp_path / "ckpts", "VAE_A_quality")
    official.parent.mkdir(parents=True)
    marker = tmp_path / "code-ran"
    if how == "torch.save":
        torch.save(_Payload(marker), official)
    elif how == "pickle":
        with open(official, "wb") as f:
            pickle.dump({"encoder.0.weight": _OpenPayload(marker)}, f, protocol=2)
    else:
        state = recipe_weights("VAE_A_quality")
        state["encoder.1.bias"] = _Payload(marker)
        torch.save({"model_state": state}, official)

    with pytest.raises(CheckpointError) as info:
        ck.read_official(official, "VAE_A_quality")
    message = str(info.value)
    assert str(official) in message
    assert "refused: not a plain weights file" in message
    assert not marker.exists()

    cache = tmp_path / "cache" / "VAE_A_quality.safetensors"
    with pytest.raises(CheckpointError, match="refused"):
        ck.convert_to_cache(official, "VAE_A_quality", cache)
    assert not marker.exists()
    assert not cache.exists() and not ck.record_path(cache).exists()


def test_missing_unexpected_and_misshaped_keys_are_all_named(tmp_path):
    official = tmp_path / "latest_net_mapping_net.pth"
    state = recipe_weights("mapping_quality")
    missing_key, wrong_key = list(state)[3], list(state)[-2]
    expected_shape = list(state[wrong_key].shape)
    del state[missing_key]
    state[wrong_key] = torch.zeros(expected_shape[0], expected_shape[1], 1, 1)
    state["extra.weight"] = torch.zeros(2)
    torch.save(state, official)

    with pytest.raises(CheckpointError) as info:
        ck.read_official(official, "mapping_quality")
    message = str(info.value)
    assert str(official) in message
    assert f"missing (1): {missing_key}" in message
    assert "unexpected (1): extra.weight" in message
    found = [expected_shape[0], expected_shape[1], 1, 1]
    assert f"wrong shape (1): {wrong_key} (expected {expected_shape}, found {found})" in message


def test_another_checkpoint_in_the_wrong_place_is_recognised(tmp_path):
    official = tmp_path / "latest_net_mapping_net.pth"
    torch.save(recipe_weights("VAE_A_quality"), official)
    with pytest.raises(CheckpointError, match=r"has the layout of VAE_A_quality") as info:
        ck.read_official(official, "mapping_quality")
    assert "missing (40)" in str(info.value)


def test_module_prefix_other_dtypes_and_non_state_dicts(tmp_path):
    expected = recipe_weights("VAE_B_quality")
    prefixed = OrderedDict((f"module.{k}", v.half()) for k, v in expected.items())
    official = tmp_path / "latest_net_G.pth"
    torch.save(prefixed, official)
    state = ck.read_official(official, "VAE_B_quality")
    assert list(state) == list(expected)
    assert all(state[k].dtype == torch.float32 for k in state)
    assert all(torch.equal(state[k], expected[k].half().float()) for k in state)

    torch.save([1, 2, 3], official)
    with pytest.raises(CheckpointError, match="not a state dict"):
        ck.read_official(official, "VAE_B_quality")
    official.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CheckpointError, match="cannot be read as a torch checkpoint"):
        ck.read_official(official, "VAE_B_quality")
    with pytest.raises(CheckpointError, match="missing: no such file"):
        ck.read_official(tmp_path / "nothing.pth", "VAE_B_quality")


def test_legacy_face_file_without_num_batches_tracked_and_weight_v(scratch):
    """A torch < 1.0 style file: old serialization, no num_batches_tracked, computed weight."""
    name = "FaceSR_512"
    expected = recipe_weights(name)
    legacy = OrderedDict()
    for key, value in expected.items():
        if key.endswith(("num_batches_tracked", "weight_v")):
            continue
        legacy[key] = value
        if key.endswith("weight_orig"):
            prefix = key[: -len("weight_orig")]
            matrix = value.reshape(value.shape[0], -1)
            sigma = torch.dot(expected[prefix + "weight_u"], matrix @ expected[prefix + "weight_v"])
            legacy[prefix + "weight"] = value / sigma
    official = scratch / "latest_net_G.pth"
    torch.save(legacy, official, _use_new_zipfile_serialization=False)
    del legacy

    state, notes = ck.read_official_with_notes(official, name)
    assert list(state) == list(expected)
    assert any("num_batches_tracked" in n for n in notes)
    assert any("weight_v for 18 layer(s)" in n for n in notes)
    for key, value in expected.items():
        if not key.endswith("weight_v"):
            assert torch.equal(state[key], value), key
            continue
        prefix = key[: -len("weight_v")]
        matrix = state[prefix + "weight_orig"].flatten(1)
        u = state[prefix + "weight_u"]
        # torch's invariants: u = normalize(W v) and W / (u.W v) is the stored effective weight
        assert torch.allclose(torch.nn.functional.normalize(matrix @ state[key], dim=0), u,
                              atol=1e-6)
        ours = matrix / torch.dot(u, matrix @ state[key])
        theirs = matrix / torch.dot(u, matrix @ value)
        assert torch.allclose(ours, theirs, rtol=1e-5, atol=1e-8), key


# -- verified cache ---------------------------------------------------------------------------


@pytest.fixture
def vae_cache(tmp_path):
    (official,) = recipe.write_recipe_checkpoints(tmp_path / "ckpts", ["VAE_A_quality"])
    cache = tmp_path / "cache" / "VAE_A_quality.safetensors"
    ck.convert_to_cache(official, "VAE_A_quality", cache)
    return official, cache


def _flip_byte(path: Path, offset_from_end: int = 1000) -> None:
    with open(path, "r+b") as f:
        f.seek(-offset_from_end, os.SEEK_END)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x55]))


def test_a_cache_modified_after_verification_is_refused(vae_cache):
    _, cache = vae_cache
    ck.load_network("VAE_A_quality", cache)  # fine before
    _flip_byte(cache)  # same size, new bytes, written after the record
    for verify in ("stat", "full"):
        with pytest.raises(CheckpointError, match="changed since it was verified") as info:
            ck.load_network("VAE_A_quality", cache, verify=verify)
        assert str(cache) in str(info.value)


def test_full_verification_catches_a_change_that_kept_the_mtime(vae_cache):
    _, cache = vae_cache
    record = ck.read_record(cache)
    _flip_byte(cache)
    os.utime(cache, ns=(record["cache_mtime_ns"], record["cache_mtime_ns"]))
    with pytest.raises(CheckpointError, match="changed since it was verified"):
        ck.load_network("VAE_A_quality", cache, verify="full")


def test_a_cache_with_another_size_is_refused(vae_cache):
    _, cache = vae_cache
    with open(cache, "ab") as f:
        f.write(b"\0")
    with pytest.raises(CheckpointError, match=r"changed since it was verified \(size"):
        ck.load_network("VAE_A_quality", cache)


def test_a_copied_cache_with_a_new_mtime_is_rehashed_and_accepted(vae_cache, tmp_path):
    _, cache = vae_cache
    copy_dir = tmp_path / "copy"
    copy_dir.mkdir()
    for path in (cache, ck.record_path(cache)):
        shutil.copy(path, copy_dir / path.name)  # content only: new mtimes
    net = ck.load_network("VAE_A_quality", copy_dir / cache.name)
    assert torch.equal(net.state_dict()["encoder.1.weight"],
                       recipe_weights("VAE_A_quality")["encoder.1.weight"])


def test_a_cache_is_only_loaded_as_its_own_network(vae_cache):
    _, cache = vae_cache
    with pytest.raises(CheckpointError, match="holds 'VAE_A_quality'.*not 'VAE_B_quality'"):
        ck.load_network("VAE_B_quality", cache)
    ck.record_path(cache).unlink()
    with pytest.raises(CheckpointError, match="no verification record"):
        ck.load_network("VAE_A_quality", cache)


def test_an_official_file_modified_after_verification_is_refused(vae_cache):
    official, cache = vae_cache
    digest = ck.verify_official(official, "VAE_A_quality", cache)
    assert digest == ck.read_record(cache)["official_sha256"]
    assert ck.verify_official(official, "VAE_A_quality", ck.record_path(cache)) == digest
    _flip_byte(official, offset_from_end=5000)
    with pytest.raises(CheckpointError, match="changed since it was verified") as info:
        ck.verify_official(official, "VAE_A_quality", cache)
    assert str(official) in str(info.value)
    with pytest.raises(CheckpointError, match="is for 'VAE_A_quality'"):
        ck.verify_official(official, "VAE_B_quality", cache)


# -- download ---------------------------------------------------------------------------------


def test_download_unpacks_and_verifies(tmp_path):
    names = ["VAE_A_quality", "VAE_B_quality"]
    source = tmp_path / "source"
    recipe.write_recipe_checkpoints(source, names)
    archive = tmp_path / "global_checkpoints.zip"
    with zipfile.ZipFile(archive, "w") as zf:  # as the release zip: checkpoints/... at the top
        zf.writestr("checkpoints/", "")
        for name in names:
            zip_path = ck.OFFICIAL_FILES[name].removeprefix("Global/")
            zf.write(ck.official_path(source, name), zip_path)
        zf.writestr("__MACOSX/checkpoints/._junk", "x")
    root = tmp_path / "ckpts"
    urls = {
        "global_checkpoints.zip": archive.as_uri(),
        "face_checkpoints.zip": (tmp_path / "not-needed.zip").as_uri(),  # must not be fetched
    }
    lines = []
    paths = ck.download_official(root, names, urls=urls, log=lines.append)
    assert paths == [ck.official_path(root, n) for n in names]
    for name in names:
        got = ck.official_path(root, name).read_bytes()
        assert got == ck.official_path(source, name).read_bytes()
    assert not (root / "Global" / "global_checkpoints.zip").exists()
    assert not (root / "Global" / "__MACOSX").exists()
    assert not (root / "Face_Enhancement").exists()
    assert any(line.startswith("verified") for line in lines)


def test_download_refuses_an_escaping_zip_and_a_missing_file(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../../outside.txt", "x")
    root = tmp_path / "a" / "ckpts"
    def download(archive):
        urls = {"global_checkpoints.zip": archive.as_uri()}
        return ck.download_official(root, ["VAE_A_quality"], urls=urls, log=lambda line: None)

    with pytest.raises(CheckpointError, match="would be written outside"):
        download(archive)
    assert not (tmp_path / "outside.txt").exists() and not (tmp_path / "a" / "outside.txt").exists()

    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("checkpoints/readme.txt", "nothing here")
    with pytest.raises(CheckpointError, match="did not provide every file") as info:
        download(empty)
    assert str(ck.official_path(root, "VAE_A_quality")) in str(info.value)

    with pytest.raises(CheckpointError, match="download failed"):
        download(tmp_path / "none.zip")


def test_skipping_random_init_never_leaves_a_tensor_the_load_does_not_overwrite(monkeypatch):
    class WithScratchBuffer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(2, 3, 1)
            self.register_buffer("noise", torch.empty(4).normal_(), persistent=False)

    monkeypatch.setattr(registry, "build_network", lambda name: WithScratchBuffer().eval())
    torch.manual_seed(0)
    net = ck.build_without_init("VAE_A_quality")  # falls back to a normal build
    torch.manual_seed(0)
    assert torch.equal(net.noise, WithScratchBuffer().noise)

    monkeypatch.setattr(registry, "build_network",
                        lambda name: torch.nn.Conv2d(2, 3, 1).eval())
    torch.manual_seed(0)
    skipped = ck.build_without_init("VAE_A_quality")
    torch.manual_seed(0)
    assert not torch.equal(skipped.weight, torch.nn.Conv2d(2, 3, 1).weight)  # init was skipped


def _touch_like_snakemake(*paths: Path) -> None:
    """Snakemake touches a job's outputs after it ends: cache and record share a new mtime."""
    now = time.time_ns() + 10_000_000
    for path in paths:
        os.utime(path, ns=(now, now))


def test_a_touched_cache_is_rehashed_once_then_trusted_by_its_stamp(vae_cache, monkeypatch):
    _, cache = vae_cache
    _touch_like_snakemake(cache, ck.record_path(cache))
    hashed = []
    real = ck_cache.sha256_file
    monkeypatch.setattr(ck_cache, "sha256_file", lambda path: hashed.append(path) or real(path))

    ck.load_network("VAE_A_quality", cache)
    assert hashed == [cache]  # the mtime moved: the bytes decided, once
    stamp = json.loads(ck.stamp_path(cache).read_text("utf-8"))
    assert stamp["cache_sha256"] == ck.read_record(cache)["cache_sha256"]
    assert stamp["mtime_ns"] == cache.stat().st_mtime_ns

    ck.load_network("VAE_A_quality", cache)
    ck.load_network("VAE_A_quality", cache)
    assert hashed == [cache]  # later loads trust the stamp
    ck.load_network("VAE_A_quality", cache, verify="full")
    assert hashed == [cache, cache]  # "full" always re-hashes


def test_a_cache_changed_after_its_stamp_is_refused(vae_cache):
    _, cache = vae_cache
    _touch_like_snakemake(cache, ck.record_path(cache))
    ck.load_network("VAE_A_quality", cache)  # writes the stamp
    _flip_byte(cache)  # same size, new bytes, new mtime
    with pytest.raises(CheckpointError, match="changed since it was verified"):
        ck.load_network("VAE_A_quality", cache)


def test_a_forged_or_stale_stamp_is_not_trusted(vae_cache):
    _, cache = vae_cache
    _touch_like_snakemake(cache, ck.record_path(cache))
    ck.load_network("VAE_A_quality", cache)
    stamp = ck.stamp_path(cache)
    data = json.loads(stamp.read_text("utf-8"))
    _flip_byte(cache)
    st = cache.stat()
    data.update(mtime_ns=st.st_mtime_ns, cache_sha256="0" * 64)  # fits the stat, not the record
    stamp.write_text(json.dumps(data), "utf-8")
    with pytest.raises(CheckpointError, match="changed since it was verified"):
        ck.load_network("VAE_A_quality", cache)
    stamp.write_text("{not json", "utf-8")
    with pytest.raises(CheckpointError, match="changed since it was verified"):
        ck.load_network("VAE_A_quality", cache)


def test_a_cache_folder_that_refuses_the_stamp_still_loads(vae_cache, monkeypatch):
    _, cache = vae_cache
    _touch_like_snakemake(cache, ck.record_path(cache))

    def refuse(*args, **kwargs):  # a read-only folder (chmod does not stop root, who runs CI)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(ck_cache.tempfile, "mkstemp", refuse)
    net = ck.load_network("VAE_A_quality", cache)  # re-hashes, cannot stamp, no error
    assert not ck.stamp_path(cache).exists()
    assert torch.equal(net.state_dict()["encoder.1.weight"],
                       recipe_weights("VAE_A_quality")["encoder.1.weight"])
