"""Zarr checkpoints of Dask-held state (adam_np.cluster): round trip bit for bit, written last and atomically,
corrupt or mismatched stores refused by name with nothing loaded."""

from __future__ import annotations

import json
import os

import dask.array as da
import numpy as np
import pytest

import adam_np
from adam_np import variants
from adam_np.checkpoint import CheckpointError
from adam_np.cluster import load_zarr, read_manifest, save_zarr
from adam_np.cluster import zarr_checkpoint as zc

from conftest import assert_bitwise

pytestmark = [pytest.mark.usefixtures("client"), pytest.mark.slow]  # a Dask cluster in every test


def _grads(seed, shapes, chunks, n):
    rng = np.random.default_rng(seed)
    return [[da.from_array(rng.normal(size=s).astype(np.float32), chunks=c) for s, c in zip(shapes, chunks)]
            for _ in range(n)]


SHAPES, CHUNKS = [(30, 4), (7,)], [(8, 3), 3]


def _optimizer(config=None, chunks=CHUNKS):
    rng = np.random.default_rng(0)
    params = [da.from_array(rng.normal(size=s).astype(np.float32), chunks=c) for s, c in zip(SHAPES, chunks)]
    return adam_np.Adam(params, config=config or adam_np.AdamConfig(lr=0.01))


def _values(opt):
    st = opt.state
    return [a.compute() for a in [*opt.params, *st.v, *st.s, *(st.master or []), *(st.s_max or [])]]


@pytest.mark.parametrize("config", [adam_np.AdamConfig(lr=0.01), variants.amsgrad(lr=0.01), variants.nadam()],
                         ids=["adam", "amsgrad", "nadam"])
def test_round_trip_resumes_bit_for_bit(tmp_path, config):
    grads = _grads(1, SHAPES, CHUNKS, 10)
    straight = _optimizer(config)
    for g in grads:
        straight.step(g)
    first = _optimizer(config)
    for g in grads[:4]:
        first.step(g)
    save_zarr(tmp_path / "ck", first, extra={"epoch": 1, "batch": 4})
    resumed = _optimizer(adam_np.AdamConfig())  # another config: the checkpoint's wins
    info = load_zarr(tmp_path / "ck", resumed)
    assert (info.step, info.extra) == (4, {"epoch": 1, "batch": 4})
    assert resumed.config == config and resumed.state.mu_product == first.state.mu_product
    for got, want in zip(_values(resumed), _values(first)):
        assert_bitwise(got, want)
    assert [p.chunks for p in resumed.params] == [p.chunks for p in first.params]
    for g in grads[4:]:
        resumed.step(g)
    for got, want in zip(_values(resumed), _values(straight)):
        assert_bitwise(got, want)


def test_manifest_names_every_array_with_chunk_digests(tmp_path):
    opt = _optimizer()
    opt.step(_grads(2, SHAPES, CHUNKS, 1)[0])
    save_zarr(tmp_path / "ck", opt)
    manifest = read_manifest(tmp_path / "ck")
    assert sorted(manifest["arrays"]) == ["params/0", "params/1", "s/0", "s/1", "v/0", "v/1"]
    entry = manifest["arrays"]["params/0"]
    assert entry["shape"] == [30, 4] and np.dtype(entry["dtype"]) == np.float32
    assert len(entry["sha256"]) == 4 * 2  # one per chunk: 30 rows in 8s, 4 columns in 3s
    assert manifest["step"] == 1 and manifest["format"] == zc.FORMAT and manifest["version"] == zc.VERSION
    assert os.path.isdir(tmp_path / "ck" / manifest["store"])


def test_irregular_chunks_are_stored_and_restored(tmp_path):
    chunks = [((5, 10, 15), (4,)), ((2, 5),)]
    opt = _optimizer(chunks=chunks)
    opt.step(_grads(3, SHAPES, chunks, 1)[0])
    save_zarr(tmp_path / "ck", opt)
    other = _optimizer()
    load_zarr(tmp_path / "ck", other)
    assert [p.chunks for p in other.params] == [p.chunks for p in opt.params]
    for got, want in zip(_values(other), _values(opt)):
        assert_bitwise(got, want)


def test_a_crash_before_the_manifest_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    opt = _optimizer()
    grads = _grads(4, SHAPES, CHUNKS, 3)
    opt.step(grads[0])
    save_zarr(tmp_path / "ck", opt)
    at_step_1 = _values(opt)
    opt.step(grads[1])

    def crash(*args):
        raise OSError("simulated crash before the commit")

    monkeypatch.setattr(zc.os, "replace", crash)  # all chunks of the new store are written by now
    with pytest.raises(OSError, match="simulated crash"):
        save_zarr(tmp_path / "ck", opt)
    monkeypatch.undo()
    assert len([d for d in os.listdir(tmp_path / "ck") if d.startswith("step-")]) == 2  # the new one, orphaned
    other = _optimizer()
    assert load_zarr(tmp_path / "ck", other).step == 1
    for got, want in zip(_values(other), at_step_1):
        assert_bitwise(got, want)
    save_zarr(tmp_path / "ck", opt)  # the next save clears the orphan and the old store
    assert len([d for d in os.listdir(tmp_path / "ck") if d.startswith("step-")]) == 1
    assert load_zarr(tmp_path / "ck", other).step == 2


def _saved(tmp_path):
    opt = _optimizer()
    opt.step(_grads(5, SHAPES, CHUNKS, 1)[0])
    save_zarr(tmp_path / "ck", opt)
    return tmp_path / "ck", read_manifest(tmp_path / "ck")


def _assert_nothing_loaded(path, match):
    victim = _optimizer()
    params, state, config = victim.params, victim.state, victim.config
    with pytest.raises(CheckpointError, match=match):
        load_zarr(path, victim)
    assert victim.params is params and victim.state is state and victim.config is config


def test_a_corrupt_chunk_is_named_and_nothing_loaded(tmp_path):
    path, manifest = _saved(tmp_path)
    chunk_dir = path / manifest["store"] / "v" / "1" / "c"
    chunk = chunk_dir / sorted(os.listdir(chunk_dir))[1]
    data = bytearray(chunk.read_bytes())
    data[-1] ^= 0xFF  # still a valid Zarr chunk (no compression checksum saw it): only our digest does
    chunk.write_bytes(bytes(data))
    _assert_nothing_loaded(path, r"array 'v/1' does not match its checksum \(chunks \[1\] of 3\)")


def test_a_missing_array_is_named(tmp_path):
    path, manifest = _saved(tmp_path)
    import shutil

    shutil.rmtree(path / manifest["store"] / "s" / "0")
    _assert_nothing_loaded(path, "array 's/0' cannot be opened")


def test_an_altered_or_missing_manifest_is_refused(tmp_path):
    path, manifest = _saved(tmp_path)
    manifest["step"] = 7  # a plausible edit: the manifest's own digest catches it
    (path / "manifest.json").write_text(json.dumps(manifest))
    _assert_nothing_loaded(path, "does not match its own sha256")
    (path / "manifest.json").write_text("{not json")
    _assert_nothing_loaded(path, "cannot be read")
    os.remove(path / "manifest.json")
    _assert_nothing_loaded(path, "holds no manifest.json")


def test_wrong_format_version_is_refused(tmp_path):
    path, manifest = _saved(tmp_path)
    manifest["version"] = 99
    manifest["sha256"] = zc._manifest_digest(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest))
    _assert_nothing_loaded(path, "version 99, expected")


def test_mismatched_optimizer_is_refused_before_reading(tmp_path):
    path, _ = _saved(tmp_path)
    small = adam_np.Adam([da.zeros((30, 4), chunks=8, dtype=np.float32)])
    with pytest.raises(CheckpointError, match="holds 2 parameters, the optimizer has 1"):
        load_zarr(path, small)
    wrong = adam_np.Adam([da.zeros((30, 4), chunks=8, dtype=np.float64), da.zeros(7, chunks=3, dtype=np.float32)])
    with pytest.raises(CheckpointError, match=r"'params/0' is \(30, 4\) float32, params\[0\] is \(30, 4\) float64"):
        load_zarr(path, wrong)


def test_bad_arguments(tmp_path):
    numpy_opt = adam_np.Adam([np.zeros(3)])
    with pytest.raises(TypeError, match="optimizer must hold Dask arrays"):
        save_zarr(tmp_path / "ck", numpy_opt)
    with pytest.raises(TypeError, match="must be an adam_np.Adam"):
        save_zarr(tmp_path / "ck", object())
    opt = _optimizer()
    with pytest.raises(TypeError, match="extra must be JSON-serializable"):
        save_zarr(tmp_path / "ck", opt, extra={"f": object()})
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="exists and is not a directory"):
        save_zarr(tmp_path / "file", opt)
    with pytest.raises(TypeError, match="use adam_np.cluster.save_zarr"):
        opt.save(tmp_path / "ck.npz")
    assert not (tmp_path / "ck").exists() and not (tmp_path / "ck.npz").exists()


# --- issue 18: concurrent saves, a user's entries, leftovers, damaged or hand-edited checkpoints ---------------


def _stores(path):
    return sorted(d for d in os.listdir(path) if d.startswith("step-"))


def test_concurrent_saves_from_threads_never_name_a_deleted_store_and_the_last_wins(tmp_path, monkeypatch):
    import threading

    path, commits, replace = tmp_path / "ck", [], os.replace

    def logged_replace(src, dst):  # records the order in which manifests were committed
        tag = json.loads(open(src).read())["extra"]["tag"] if str(dst).endswith(zc.MANIFEST) else None
        replace(src, dst)
        if tag is not None:
            commits.append(tag)

    monkeypatch.setattr(zc.os, "replace", logged_replace)
    opts = []
    for k in range(4):
        opt = _optimizer()
        for g in _grads(k, SHAPES, CHUNKS, k + 1):
            opt.step(g)
        opts.append(opt)
    errors = []

    def saver(k):
        try:
            for r in range(3):
                save_zarr(path, opts[k], extra={"tag": f"{k}.{r}"})
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=saver, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(commits) == 12
    manifest = read_manifest(path)
    assert manifest["extra"]["tag"] == commits[-1]  # the last save to complete wins
    assert _stores(path) == [manifest["store"]]  # superseded stores are gone, the current one is there
    other = _optimizer()
    k = int(commits[-1].split(".")[0])
    assert load_zarr(path, other).step == k + 1
    for got, want in zip(_values(other), _values(opts[k])):
        assert_bitwise(got, want)


_PROCESS_SAVER = """
import sys, dask, dask.array as da, numpy as np, adam_np
from adam_np.cluster import save_zarr
dask.config.set(scheduler="synchronous")
k = int(sys.argv[2])
opt = adam_np.Adam([da.from_array(np.full((40, 3), float(k)), chunks=8)], lr=0.1)
for r in range(int(sys.argv[3])):
    opt.step([da.ones((40, 3), chunks=8)])
    save_zarr(sys.argv[1], opt, extra={"writer": k, "r": r})
"""


@pytest.mark.slow
def test_concurrent_saves_from_two_processes_leave_a_loadable_checkpoint(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "ck"
    procs = [subprocess.Popen([sys.executable, "-c", _PROCESS_SAVER, str(path), str(k), "8"],
                              stderr=subprocess.PIPE, text=True) for k in range(2)]
    errs = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    manifest = read_manifest(path)
    assert _stores(path) == [manifest["store"]]
    other = adam_np.Adam([da.zeros((40, 3), chunks=8)])
    info = load_zarr(path, other)
    assert info.step == 8 and info.extra["r"] == 7
    k = info.extra["writer"]
    want = adam_np.Adam([da.from_array(np.full((40, 3), float(k)), chunks=8)], lr=0.1)
    for _ in range(8):
        want.step([da.ones((40, 3), chunks=8)])
    assert_bitwise(other.params[0].compute(), want.params[0].compute())


def test_a_save_leaves_a_users_step_entries_alone(tmp_path):
    path = tmp_path / "ck"
    path.mkdir()
    (path / "step-notes").mkdir()
    (path / "step-notes" / "todo.txt").write_text("mine")
    lookalike = path / "step-000000000001-deadbeef"  # this module's naming, but not its marker
    lookalike.mkdir()
    (lookalike / "data.bin").write_bytes(b"mine too")
    (path / "step-000000000002-cafef00d").write_text("a file")
    opt = _optimizer()
    opt.step(_grads(6, SHAPES, CHUNKS, 1)[0])
    save_zarr(path, opt)
    opt.step(_grads(7, SHAPES, CHUNKS, 1)[0])
    save_zarr(path, opt)  # removes the first save's store, and only that
    assert (path / "step-notes" / "todo.txt").read_text() == "mine"
    assert (lookalike / "data.bin").read_bytes() == b"mine too"
    assert (path / "step-000000000002-cafef00d").read_text() == "a file"
    assert _stores(path) == sorted(["step-notes", lookalike.name, "step-000000000002-cafef00d",
                                    read_manifest(path)["store"]])


def test_a_save_removes_what_killed_saves_left(tmp_path):
    path, manifest = _saved(tmp_path)
    import shutil

    orphan = path / "step-000000000009-0badc0de"  # a killed save's store: marker, some chunks, no manifest
    shutil.copytree(path / manifest["store"], orphan)
    (path / ".manifest.json.0123abcd.tmp").write_text("{")
    opt = _optimizer()
    save_zarr(path, opt)
    assert _stores(path) == [read_manifest(path)["store"]]
    assert sorted(os.listdir(path)) == sorted([zc.LOCK, zc.MANIFEST, read_manifest(path)["store"]])


def test_a_truncated_chunk_is_a_checkpoint_error(tmp_path):
    path, manifest = _saved(tmp_path)
    chunk_dir = path / manifest["store"] / "s" / "0" / "c" / "1"
    chunk = chunk_dir / sorted(os.listdir(chunk_dir))[0]
    chunk.write_bytes(chunk.read_bytes()[:10])
    _assert_nothing_loaded(path, r"array 's/0' chunk \d+ of 8 cannot be read \(RuntimeError: .*truncated or corrupt")


def _edit(manifest, dotted, value):
    edited = json.loads(json.dumps(manifest))
    *keys, last = dotted.split(".")
    target = edited
    for key in keys:
        target = target[key]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return edited


@pytest.mark.parametrize("dotted, value, match", [
    ("store", "../other", r"store is '\.\./other', expected the name of a store inside the checkpoint"),
    ("store", "/tmp", "store is '/tmp'"),
    ("store", 3, "store is 3"),
    ("step", "1", "step is '1', expected an integer >= 0"),
    ("n_params", None, "n_params is None"),
    ("master", KeyError, "master is None, expected a bool"),
    ("config", [], "config is"),
    ("config.beta1", "x", "does not hold a valid state"),
    ("config.nonsense", 1, "does not hold a valid state"),
    ("arrays.v/0", KeyError, "arrays are"),
    ("arrays.v/0.shape", None, r"arrays\['v/0'\]\.shape is None"),
    ("arrays.v/0.dtype", "int8", r"arrays\['v/0'\]\.dtype is 'int8', expected a float dtype"),
    ("arrays.v/0.dtype", {"a": 1}, r"arrays\['v/0'\]\.dtype"),
    ("arrays.v/0.chunks", [[30], [5]], r"arrays\['v/0'\]\.chunks is"),
    ("arrays.v/0.store_chunks", KeyError, r"arrays\['v/0'\]\.store_chunks is None"),
    ("arrays.v/0.sha256", ["a"], r"arrays\['v/0'\]\.sha256 is not a list of 8 digests"),
    ("extra", "x", "extra is 'x', expected a dict"),
    ("mu_product", "1", "mu_product is '1', expected a number"),
])
def test_a_hand_edited_manifest_with_a_recomputed_digest_is_refused(tmp_path, dotted, value, match):
    path, manifest = _saved(tmp_path)
    (tmp_path / "other").mkdir()
    edited = _edit(manifest, dotted, value)
    edited["sha256"] = zc._manifest_digest(edited)
    (path / "manifest.json").write_text(json.dumps(edited))
    _assert_nothing_loaded(path, match)
