"""Training on data beyond memory (adam_np.cluster.train, ``adam-np make-data`` / ``train --data PATH.zarr``):
the batches, exactness against the in-memory run, the same result whatever the workers, resume bit for bit,
and every bad input a clear error with exit status 2."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest

from adam_np.book.chapter7 import make_optimizer
from adam_np.book.linreg import grad_squared_loss
from adam_np.cluster import local_client
from adam_np.cluster.data import DataError, make_data, open_data
from adam_np.cluster.train import Plan, batch_gradient, init_cluster_train, run_cluster_train

from conftest import run_cli

pytestmark = pytest.mark.slow  # a Dask cluster in every test (README: pytest -m "slow or not slow")


@pytest.fixture(scope="module")
def store(tmp_path_factory, client):
    """3000 x 4 float64 rows in chunks of 500 (written by the in-process cluster)."""
    path = str(tmp_path_factory.mktemp("data") / "d.zarr")
    make_data(path, rows=3000, features=4, chunk_rows=500, seed=7, noise=0.1)
    return path


@pytest.mark.parametrize("sizes, batch", [([4, 4, 2], 3), ([500] * 6, 64), ([7, 1, 30, 2], 5), ([10], 10)])
def test_plan_visits_every_row_once_and_each_batch_touches_at_most_two_chunks(sizes, batch):
    plan = Plan(sizes, batch, seed=3)
    for epoch in range(3):
        rows = np.concatenate([plan.rows(epoch, b) for b in range(plan.batches)])
        assert sorted(rows.tolist()) == list(range(sum(sizes)))
        for b in range(plan.batches):
            pieces = plan.pieces(epoch, b)
            assert sum(len(local) for _, local in pieces) == min(batch, plan.n - b * batch)
            if batch <= min(sizes):
                assert len(pieces) <= 2
            assert [int(plan.chunk_order(epoch)[j]) for j in plan.positions(epoch, b)] == [k for k, _ in pieces]
    assert not np.array_equal(plan.rows(0, 0), plan.rows(1, 0)) or plan.n <= batch  # a new order each epoch
    assert np.array_equal(Plan(sizes, batch, 3).rows(1, 0), plan.rows(1, 0))  # the seed alone decides


def _book_run(X, y, plan, epochs, seed):
    """The in-memory run on the same batches, with the book's gradient on each whole batch."""
    optimizer = make_optimizer("adam", in_place=True)
    rng = np.random.default_rng(seed)
    params = [rng.normal(0.0, 0.01, size=(X.shape[1], 1)), np.zeros(1)]
    opt_state = optimizer.init(params)
    trace, single = [], []
    for epoch in range(epochs):
        for b in range(plan.batches):
            rows = plan.rows(epoch, b)
            grads = list(grad_squared_loss(X[rows], y[rows], *params))
            params, opt_state = optimizer.update(grads, opt_state, params)
            trace.append([p.copy() for p in params])
            single.append(len(plan.pieces(epoch, b)) == 1)
    return trace, single


def _cluster_trace(client, X, y, plan, epochs, seed):
    optimizer = make_optimizer("adam", in_place=True)
    state = init_cluster_train(optimizer, X, y, seed)
    trace = []
    run_cluster_train(state, optimizer, X, y, plan, epochs, client,
                      on_step=lambda s: trace.append([p.copy() for p in s.params]))
    return trace, state


def test_cluster_run_equals_the_in_memory_run(client, store):
    X, y, _ = open_data(store)
    Xn, yn = X.compute(), y.compute()
    plan = Plan(X.chunks[0], 64, seed=5)  # 64 does not divide 500: some batches span two chunks
    got, _ = _cluster_trace(client, X, y, plan, 1, seed=5)
    want, single = _book_run(Xn, yn, plan, 1, seed=5)
    assert len(got) == len(want) == plan.batches and any(single) and not all(single)
    first_split = single.index(False)
    for step in range(first_split):  # until a batch spans two chunks: bit for bit the book's steps
        for a, b in zip(got[step], want[step]):
            assert np.array_equal(a, b), step
    w_got, w_want = np.concatenate([p.ravel() for p in got[-1]]), np.concatenate([p.ravel() for p in want[-1]])
    err = np.max(np.abs(w_got - w_want)) / np.max(np.abs(w_want))
    assert err <= 1e-12, err  # the two-chunk batches add their partial sums: at most their rounding


def test_batches_within_chunks_are_bit_for_bit(client, store):
    X, y, _ = open_data(store)
    plan = Plan(X.chunks[0], 50, seed=2)  # 50 divides 500: every batch lies in one chunk
    got, _ = _cluster_trace(client, X, y, plan, 2, seed=2)
    want, single = _book_run(X.compute(), y.compute(), plan, 2, seed=2)
    assert all(single)
    for a, b in zip(got[-1], want[-1]):
        assert np.array_equal(a, b)


def test_batch_gradient_is_the_cluster_step(client, store):
    """The in-memory twin (same pieces, same reduction) matches the cluster bit for bit, split batches too."""
    X, y, _ = open_data(store)
    plan = Plan(X.chunks[0], 64, seed=5)
    got, _ = _cluster_trace(client, X, y, plan, 1, seed=5)
    Xn, yn = X.compute(), y.compute()
    optimizer = make_optimizer("adam", in_place=True)
    rng = np.random.default_rng(5)
    params = [rng.normal(0.0, 0.01, size=(4, 1)), np.zeros(1)]
    opt_state = optimizer.init(params)
    for b in range(plan.batches):
        params, opt_state = optimizer.update(list(batch_gradient(Xn, yn, plan, 0, b, *params)), opt_state, params)
    for a, w in zip(got[-1], params):
        assert np.array_equal(a, w)


def test_same_seed_same_result_whatever_the_workers(store):
    X, y, _ = open_data(store)
    plan = Plan(X.chunks[0], 64, seed=9)
    finals = []
    for workers in (1, 3):
        with local_client(n_workers=workers) as c:
            finals.append(_cluster_trace(c, X, y, plan, 1, seed=9)[0][-1])
    for a, b in zip(*finals):
        assert np.array_equal(a, b)


_cli = run_cli


def test_make_data_then_train_recovers_the_true_weights(tmp_path, capsys):
    path = str(tmp_path / "d.zarr")
    code, out, _ = _cli(capsys, "make-data", "--rows", "4000", "--features", "3", "--out", path, "--chunk-rows",
                        "1000", "--seed", "4", "--noise", "0.01", "--workers", "1")
    assert code == 0 and json.loads(out)["rows"] == 4000
    w_true = json.loads(open(os.path.join(path, "zarr.json")).read())["attributes"]["w_true"]
    code, out, err = _cli(capsys, "train", "--data", path, "--batch-size", "50", "--epochs", "3", "--seed", "1",
                          "--lr", "0.05", "--json", "--quiet", "--workers", "1")
    assert code == 0, err
    result = json.loads(out)
    assert result["rows"] == 4000 and result["chunks"] == 4 and result["workers"] == 1
    assert result["final_loss"] < 1e-3 and np.allclose(result["w"], w_true, atol=0.02)
    code, _, err = _cli(capsys, "make-data", "--rows", "10", "--features", "2", "--out", path)
    assert code == 2 and "exists" in err


def test_resume_is_bit_for_bit(store, tmp_path, capsys):
    common = ["train", "--data", store, "--batch-size", "64", "--seed", "3", "--json", "--quiet", "--workers", "1"]
    code, out, err = _cli(capsys, *common)
    assert code == 0, err
    straight = json.loads(out)
    ck = str(tmp_path / "ck.npz")
    code, _, err = _cli(capsys, *common, "--checkpoint", ck, "--max-steps", "70")  # 47 steps an epoch: 2nd epoch
    assert code == 0 and "continue with --resume" in err
    code, out, err = _cli(capsys, *common, "--resume", ck)
    assert code == 0, err
    resumed = json.loads(out)
    assert resumed["w"] == straight["w"] and resumed["b"] == straight["b"] and resumed["losses"] == straight["losses"]


def test_npy_features_and_labels(tmp_path, capsys, store):
    X, y, _ = open_data(store)
    np.save(tmp_path / "X.npy", X.compute())
    np.save(tmp_path / "y.npy", y.compute())
    code, out, err = _cli(capsys, "train", "--data", str(tmp_path / "X.npy"), "--labels", str(tmp_path / "y.npy"),
                          "--batch-size", "100", "--seed", "0", "--json", "--quiet", "--workers", "1")
    assert code == 0, err
    assert json.loads(out)["final_loss"] < json.loads(out)["losses"][0]


def _bad(capsys, tmp_path, *argv):
    """Run train with a bad input; check exit 2, no traceback, the existing checkpoint untouched."""
    ck = tmp_path / "keep.npz"
    ck.write_bytes(b"previous checkpoint")
    code, _, err = _cli(capsys, "train", *argv, "--checkpoint", str(ck), "--quiet", "--workers", "1")
    assert code == 2 and "Traceback" not in err, err
    assert ck.read_bytes() == b"previous checkpoint"
    return err


def test_bad_inputs_exit_2_naming_the_thing(tmp_path, capsys, store):
    err = _bad(capsys, tmp_path, "--data", str(tmp_path / "missing.zarr"))
    assert "argument --data" in err and "does not exist" in err
    broken = tmp_path / "broken.zarr"
    broken.mkdir()
    (broken / "zarr.json").write_text("{not json")
    assert "not a readable Zarr store" in _bad(capsys, tmp_path, "--data", str(broken))
    np.save(tmp_path / "X.npy", np.zeros((10, 2)))
    np.save(tmp_path / "y.npy", np.zeros(9))
    assert "features have 10 rows, labels 9" in _bad(capsys, tmp_path, "--data", str(tmp_path / "X.npy"),
                                                     "--labels", str(tmp_path / "y.npy"))
    assert "give the labels" in _bad(capsys, tmp_path, "--data", str(tmp_path / "X.npy"))
    assert "--batch-size: 5000 is larger than the data (3000 rows)" in _bad(
        capsys, tmp_path, "--data", store, "--batch-size", "5000")
    code, _, err = _cli(capsys, "train", "--data", store, "--scheduler", "tcp://127.0.0.1:9", "--quiet")
    assert code == 2 and "Traceback" not in err
    assert "argument --scheduler: cannot use 'tcp://127.0.0.1:9'" in err


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "adagrad"])
def test_nonfinite_rows_are_named(tmp_path, capsys, optimizer):
    """One rule for every optimizer of the chapter: NaN data exit 2 naming the chunk and rows."""
    X = np.random.default_rng(0).normal(size=(600, 3))
    y = X @ np.ones(3)
    X[437, 1] = np.nan  # chunk 2 of chunks of 200 rows
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    err = _bad(capsys, tmp_path, "--data", str(tmp_path / "X.npy"), "--labels", str(tmp_path / "y.npy"),
               "--batch-size", "50", "--seed", "0", "--optimizer", optimizer)
    assert "the data hold NaN or inf: chunk" in err and "rows [437]" in err, err


def test_open_data_errors_without_the_cli(tmp_path):
    with pytest.raises(DataError, match="only for .npy features"):
        open_data(str(tmp_path), labels="y.npy")
    with pytest.raises(ValueError, match="rows must be an integer >= 1"):
        make_data(str(tmp_path / "x.zarr"), rows=0, features=2)
    assert not (tmp_path / "x.zarr").exists()


def test_readme_commands_run_as_written(tmp_path, capsys, monkeypatch):
    """README's make-data and train lines, verbatim, in a fresh folder: the loss it shows is the loss printed."""
    import shlex
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    lines = readme.splitlines()
    make = next(line for line in lines if line.startswith("$ adam-np make-data"))
    train = next(line for line in lines if line.startswith("$ adam-np train --data data.zarr --batch-size"))
    shown = lines[lines.index(train) + 1]
    monkeypatch.chdir(tmp_path)
    code, _, err = _cli(capsys, *shlex.split(make)[2:], "--workers", "1")
    assert code == 0, err
    code, out, err = _cli(capsys, *shlex.split(train)[2:], "--quiet", "--workers", "1")
    assert code == 0, err
    assert out.startswith("loss: ") and out.split(",")[0] == shown.split(",")[0], (out, shown)
    assert out.rstrip().endswith(" sec per epoch")


def test_resume_refuses_data_whose_values_changed(tmp_path, capsys):
    """Same shapes, same file sizes, one value changed: the resumed run names the chunk and exits 2."""
    X = np.random.default_rng(1).normal(size=(600, 3))
    y = X @ np.ones(3)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    ck = str(tmp_path / "ck.npz")
    common = ["train", "--data", str(tmp_path / "X.npy"), "--labels", str(tmp_path / "y.npy"), "--batch-size", "50",
              "--seed", "0", "--quiet", "--workers", "1"]
    code, _, err = _cli(capsys, *common, "--checkpoint", ck, "--max-steps", "5")
    assert code == 0, err
    y[123] += 1e-9  # a rounding-sized edit: nothing but the values can tell
    np.save(tmp_path / "y.npy", y)
    code, _, err = _cli(capsys, *common, "--resume", ck)
    assert code == 2 and "Traceback" not in err, err
    assert "argument --resume" in err
    assert "the data's values differ from those it was saved with: y rows 0 to 599" in err
    y[123] -= 1e-9
    np.save(tmp_path / "y.npy", y)
    code, _, err = _cli(capsys, *common, "--resume", ck)  # the same values again: accepted
    assert code == 0, err


def test_load_cluster_run_names_the_chunks_whose_values_changed(store, tmp_path, client):
    import shutil

    import zarr

    from adam_np.checkpoint import CheckpointError
    from adam_np.cluster.data import content_fingerprint
    from adam_np.cluster.train import load_cluster_run, save_cluster_run

    copy = str(tmp_path / "copy.zarr")
    shutil.copytree(store, copy)
    X, y, meta = open_data(copy)
    plan, settings = Plan(X.chunks[0], 64, 3), {"batch_size": 64, "epochs": 1, "seed": 3}
    optimizer = make_optimizer("adam", in_place=True)
    state = init_cluster_train(optimizer, X, y, 3)
    run_cluster_train(state, optimizer, X, y, plan, 1, client, on_step=lambda s: s.batch == 3)
    ck = tmp_path / "ck.npz"
    with pytest.raises(ValueError, match="data_meta has no 'content' fingerprint"):
        save_cluster_run(ck, state, optimizer, meta, settings)
    assert not ck.exists()
    meta["content"] = content_fingerprint(X, y)
    save_cluster_run(ck, state, optimizer, meta, settings)
    features = zarr.open_array(copy, path="X", mode="r+")
    features[1700, 2] = features[1700, 2] + 1.0  # chunk 3 of 500 rows; attributes and sizes unchanged
    X, y, meta = open_data(copy)
    with pytest.raises(CheckpointError, match=r"the data's values differ from those it was saved with: "
                                              r"X rows 1500 to 1999\)"):
        load_cluster_run(ck, make_optimizer("adam", in_place=True), X, y, meta, settings, plan)
    assert "content" not in meta  # nothing recorded for a refused checkpoint


@pytest.mark.parametrize("edit, match", [
    (lambda extra: extra.update(run=None), "has a run identity of type NoneType"),
    (lambda extra: extra.update(data_content={"sha256": "0", "X": 3, "y": None}), r"the data differ: 1 row chunks "
                                                                                   "now, None when it was saved"),
    (lambda extra: extra.pop("data_content"), "records no fingerprint of its data's values"),
])
def test_resume_of_a_hand_edited_cluster_checkpoint_exits_2(tmp_path, capsys, edit, match):
    """Metadata edited by hand and its sha256 recomputed: one line naming what is wrong, no traceback."""
    from adam_np import checkpoint

    X = np.random.default_rng(2).normal(size=(300, 2))
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", X @ np.ones(2))
    ck = str(tmp_path / "ck.npz")
    common = ["train", "--data", str(tmp_path / "X.npy"), "--labels", str(tmp_path / "y.npy"), "--batch-size", "50",
              "--seed", "0", "--quiet", "--workers", "1"]
    code, _, err = _cli(capsys, *common, "--checkpoint", ck, "--max-steps", "2")
    assert code == 0, err
    saved = checkpoint.read(ck)
    edit(saved.extra)
    checkpoint.write(ck, saved)
    code, _, err = _cli(capsys, *common, "--resume", ck)
    assert code == 2 and "Traceback" not in err, err
    assert re.search(match, err), err
