""".npz checkpoints: the durability order fsync(file) -> os.replace -> fsync(directory), and a checksum that
covers the metadata (step count, skipped steps, loop position...) as well as the arrays.

A SIGKILL test cannot show a missing fsync (the page cache survives the process), so the calls are recorded:
every ``os.fsync`` is told apart by ``fstat`` of its descriptor (a regular file, by inode, or a directory).
"""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest

from adam_np import Adam, checkpoint
from adam_np.book.chapter7 import AdamRule
from adam_np.book.data import make_synthetic
from adam_np.book.resume import load_run, save_run
from adam_np.book.train import init_train, run_train
from adam_np.checkpoint import CheckpointError


@pytest.fixture
def calls(monkeypatch):
    """Record every os.fsync (as ("fsync", "file", inode) or ("fsync", "dir", inode)) and os.replace
    (as ("replace", src, dst)), in order, then do the real call."""
    log = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        st = os.fstat(fd)
        kind = "dir" if stat.S_ISDIR(st.st_mode) else "file" if stat.S_ISREG(st.st_mode) else "other"
        log.append(("fsync", kind, st.st_ino))
        return real_fsync(fd)

    def replace(src, dst, *args, **kwargs):
        log.append(("replace", os.fspath(src), os.fspath(dst)))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return log


def _assert_durable_order(log, path):
    """fsync of the new file's data, then the rename onto ``path``, then fsync of ``path``'s directory."""
    path = os.path.abspath(os.fspath(path))
    directory = os.path.dirname(path)
    replaces = [i for i, c in enumerate(log) if c[0] == "replace" and os.path.abspath(c[2]) == path]
    assert len(replaces) == 1, log
    r = replaces[0]
    src = log[r][1]
    assert os.path.dirname(os.path.abspath(src)) == directory, "the temporary file must be in the same directory"
    file_ino, dir_ino = os.stat(path).st_ino, os.stat(directory).st_ino  # rename keeps the inode
    file_syncs = [i for i, c in enumerate(log) if c == ("fsync", "file", file_ino)]
    dir_syncs = [i for i, c in enumerate(log) if c == ("fsync", "dir", dir_ino)]
    assert file_syncs and min(file_syncs) < r, f"the file's data must be fsynced before os.replace: {log}"
    assert dir_syncs and max(dir_syncs) > r, f"the directory must be fsynced after os.replace: {log}"


def test_write_atomic_fsyncs_file_then_replaces_then_fsyncs_directory(tmp_path, calls):
    path = tmp_path / "x.npz"
    checkpoint.write_atomic(path, {"a": np.arange(5.0)}, {"format": "demo", "version": 1})
    _assert_durable_order(calls, path)
    members, meta = checkpoint.read_verified(path, "demo", 1)
    assert members["a"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0] and meta["format"] == "demo"


def test_overwriting_a_checkpoint_is_durable_too(tmp_path, calls):
    path = tmp_path / "x.npz"
    checkpoint.write_atomic(path, {"a": np.zeros(2)}, {"format": "demo", "version": 1})
    calls.clear()
    checkpoint.write_atomic(path, {"a": np.ones(2)}, {"format": "demo", "version": 1})
    _assert_durable_order(calls, path)
    assert checkpoint.read_verified(path, "demo", 1)[0]["a"].tolist() == [1.0, 1.0]


def test_optimizer_save_is_durable(tmp_path, calls):
    opt = Adam([np.ones(3)], lr=0.1)
    opt.step([np.ones(3)])
    path = tmp_path / "opt.npz"
    opt.save(path, rng=np.random.default_rng(0), extra={"epoch": 1})
    _assert_durable_order(calls, path)


def test_book_run_save_is_durable(tmp_path, calls):
    X, y, _, _ = make_synthetic(n=30, d=2, seed=1)
    rule = AdamRule()
    state = run_train(init_train(rule, X, y, seed=1), rule, X, y, batch_size=10, num_epochs=1,
                      on_step=lambda s: s.batch == 2)
    path = tmp_path / "run.npz"
    save_run(path, state, rule, X, y, settings={"batch_size": 10})
    _assert_durable_order(calls, path)


# --- what the checksum covers -----------------------------------------------------------------------------------


def _tamper_meta(path, change):
    """Rewrite ``path`` with ``change(meta)`` applied to its JSON metadata, every array and the stored sha256
    digest kept as they were (what a bit flip inside the metadata, or a hand edit, leaves)."""
    with np.load(path) as z:
        members = {k: z[k] for k in z.files}
    meta = json.loads(members["meta"].tobytes().decode())
    change(meta)
    members["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **members)


@pytest.mark.parametrize("change", [
    lambda meta: meta.__setitem__("step", meta["step"] + 1),
    lambda meta: meta.__setitem__("skipped", meta["skipped"] + 1),
    lambda meta: meta["config"].__setitem__("lr", 0.5),
    lambda meta: meta["extra"].__setitem__("epoch", 99),
    lambda meta: meta.__setitem__("mu_product", 0.5),
], ids=["step", "skipped", "lr", "extra", "mu_product"])
def test_metadata_changed_with_digest_kept_is_refused(tmp_path, change):
    opt = Adam([np.linspace(-1.0, 1.0, 4)], lr=0.05)
    for _ in range(3):
        opt.step([np.ones(4)])
    path = tmp_path / "c.npz"
    opt.save(path, extra={"epoch": 1})
    _tamper_meta(path, change)
    with pytest.raises(CheckpointError, match="sha256"):
        checkpoint.read(path)
    target = Adam([np.zeros(4)], lr=0.05)
    with pytest.raises(CheckpointError, match="sha256"):
        target.load(path)
    assert target.state.step == 0 and not target.params[0].any()


def test_book_run_metadata_changed_with_digest_kept_is_refused(tmp_path):
    X, y, _, _ = make_synthetic(n=30, d=2, seed=1)
    rule = AdamRule()
    state = run_train(init_train(rule, X, y, seed=1), rule, X, y, batch_size=10, num_epochs=2,
                      on_step=lambda s: s.epoch == 1 and s.batch == 1)
    path = tmp_path / "run.npz"
    save_run(path, state, rule, X, y, settings={"batch_size": 10})
    _tamper_meta(path, lambda meta: meta.__setitem__("step", meta["step"] + 1))
    with pytest.raises(CheckpointError, match="sha256"):
        load_run(path, AdamRule(), X, y, settings={"batch_size": 10})
