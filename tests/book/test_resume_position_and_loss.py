"""Cluster training against the book: the whole-set loss is the book's loss (:mod:`adam_np.book.linreg`) on the
same numbers, and a checkpoint whose loop position the run cannot reach is refused, for the cluster run
(:func:`adam_np.cluster.train.load_cluster_run`) and for the in-memory run (:func:`adam_np.book.resume.load_run`).
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from adam_np import checkpoint
from adam_np.book.chapter7 import AdamRule, make_optimizer
from adam_np.book.data import make_synthetic
from adam_np.book.linreg import linreg, squared_loss
from adam_np.book.resume import load_run, save_run
from adam_np.book.train import init_train, run_train
from adam_np.checkpoint import CheckpointError
from adam_np.cluster.data import content_fingerprint
from adam_np.cluster.train import (
    Plan,
    init_cluster_train,
    load_cluster_run,
    run_cluster_train,
    save_cluster_run,
    whole_loss,
)


def _data(n=50, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = X @ np.array([2.0, -3.4, 1.5][:d]) + 4.2 + 0.1 * rng.standard_normal(n)
    return X, y


def _book_loss(X, y, w, b):
    return float(squared_loss(linreg(X, w, b), y))


@pytest.mark.parametrize("chunk", [None, 7, 50])
def test_whole_loss_is_the_books_loss(chunk):
    X, y = _data()
    rng = np.random.default_rng(1)
    for _ in range(3):
        w, b = rng.standard_normal((3, 1)), rng.standard_normal(1)
        want = _book_loss(X, y, w, b)
        Xa, ya = (X, y) if chunk is None else (da.from_array(X, chunks=(chunk, 3)), da.from_array(y, chunks=chunk))
        assert whole_loss(Xa, ya, w, b) == pytest.approx(want, rel=1e-12)
    # by hand, on numbers small enough to check: residuals 1 and 3 -> (1 + 9) / 2 / 2
    assert whole_loss(np.array([[1.0], [0.0]]), np.array([0.0, 0.0]), np.array([[-2.0]]), np.array([3.0])) == 2.5


def test_first_recorded_loss_is_the_books_loss():
    X, y = _data()
    state = init_cluster_train(make_optimizer("adam"), da.from_array(X, chunks=(10, 3)),
                               da.from_array(y, chunks=10), seed=3)
    assert state.losses[0] == pytest.approx(_book_loss(X, y, *state.params), rel=1e-12)


def test_cluster_run_records_the_books_loss_of_each_epochs_parameters(client):
    X, y = _data(n=60)
    Xd, yd = da.from_array(X, chunks=(20, 3)), da.from_array(y, chunks=20)
    plan = Plan(Xd.chunks[0], 16, seed=2)
    optimizer = make_optimizer("adam")
    state = init_cluster_train(optimizer, Xd, yd, seed=2)
    at_epoch_end = []
    run_cluster_train(state, optimizer, Xd, yd, plan, 3, client,
                      on_step=lambda s: s.batch == plan.batches and at_epoch_end.append(
                          [np.asarray(p).copy() for p in s.params]) and False)
    assert len(state.losses) == 4 and len(at_epoch_end) == 3
    for loss, params in zip(state.losses[1:], at_epoch_end):
        assert loss == pytest.approx(_book_loss(X, y, *params), rel=1e-12)
    assert state.losses[-1] < state.losses[0]  # it trains


# --- loop positions a run cannot reach ---------------------------------------------------------------------------

N, BATCH, EPOCHS = 50, 8, 2  # 7 batches per epoch, the last one of 2 examples
SETTINGS = {"batch_size": BATCH, "epochs": EPOCHS, "seed": 3}


def _position(epoch, batch, seen):
    return lambda ck: ck.extra.update(epoch=epoch, batch=batch, examples_seen=seen)


UNREACHABLE = {  # the saved run is at epoch 1, batch 2 (66 examples seen)
    "epoch-beyond-plan": _position(3, 0, 150),
    "epoch-at-end-mid-epoch": _position(2, 1, 108),
    "batch-beyond-epoch": _position(1, 8, 100),
    "seen-too-many": _position(1, 2, 67),
    "seen-too-few": _position(1, 2, 60),
    "negative-epoch": _position(-1, 2, -34),
    "negative-batch": _position(1, -1, 42),
    "negative-seen": _position(0, 0, -1),
    "bool-epoch": _position(True, 2, 66),
    "float-batch": _position(1, 2.0, 66),
    "str-seen": _position(1, 2, "66"),
    "missing": lambda ck: ck._replace(extra={k: v for k, v in ck.extra.items() if k != "batch"}),
}
REACHABLE = {
    "start": _position(0, 0, 0),
    "end-of-an-epoch": _position(0, 7, 50),  # the on_step after an epoch's last batch, before the epoch ends
    "finished": _position(2, 0, 100),
}


def _craft(path, change):
    """The run at ``path`` rewritten, with a valid checksum, as ``change(ck)`` edits (or returns) its checkpoint."""
    ck = checkpoint.read(path)
    out = path.with_name("crafted.npz")
    checkpoint.write(out, change(ck) or ck)
    return out


@pytest.fixture
def cluster_checkpoint(tmp_path):
    X, y = _data(n=N)
    Xd, yd = da.from_array(X, chunks=(10, 3)), da.from_array(y, chunks=10)
    plan = Plan(Xd.chunks[0], BATCH, seed=SETTINGS["seed"])
    assert plan.batches == 7
    optimizer = make_optimizer("adam")
    state = init_cluster_train(optimizer, Xd, yd, seed=3)
    state.epoch, state.batch, state.examples_seen = 1, 2, N + 2 * BATCH
    data_meta = {"fingerprint": "0" * 64, "content": content_fingerprint(Xd, yd)}
    path = tmp_path / "run.npz"
    save_cluster_run(path, state, optimizer, data_meta, SETTINGS)

    def load(p):
        return load_cluster_run(p, make_optimizer("adam"), Xd, yd, data_meta, SETTINGS, plan)

    assert (load(path).epoch, load(path).batch, load(path).examples_seen) == (1, 2, 66)
    return path, load


@pytest.mark.parametrize("change", list(UNREACHABLE))
def test_cluster_resume_refuses_an_unreachable_position(cluster_checkpoint, change):
    path, load = cluster_checkpoint
    with pytest.raises(CheckpointError, match="loop position|epoch|batch"):
        load(_craft(path, UNREACHABLE[change]))


@pytest.mark.parametrize("change", list(REACHABLE))
def test_cluster_resume_accepts_a_reachable_position(cluster_checkpoint, change):
    path, load = cluster_checkpoint
    state = load(_craft(path, REACHABLE[change]))
    assert state.examples_seen in (0, 50, 100)


@pytest.fixture
def book_checkpoint(tmp_path):
    X, y, _, _ = make_synthetic(n=N, d=3, seed=2)
    rule = AdamRule()
    state = run_train(init_train(rule, X, y, seed=3), rule, X, y, batch_size=BATCH, num_epochs=EPOCHS,
                      on_step=lambda s: s.epoch == 1 and s.batch == 2)
    path = tmp_path / "run.npz"
    save_run(path, state, rule, X, y, settings=SETTINGS)

    def load(p):
        return load_run(p, AdamRule(), X, y, settings=SETTINGS)

    assert load(path).examples_seen == 66
    return path, load


@pytest.mark.parametrize("change", list(UNREACHABLE))
def test_book_resume_refuses_an_unreachable_position(book_checkpoint, change):
    path, load = book_checkpoint
    with pytest.raises(CheckpointError, match="loop position|epoch|batch|examples_seen"):
        load(_craft(path, UNREACHABLE[change]))


def _duplicate_in_order(ck):
    order = ck.extra["order"].copy()
    order[1] = order[0]  # one example twice, another never: not a permutation
    ck.extra["order"] = order


def _mt19937_state(ck):
    state = np.random.MT19937(0).state
    state["state"]["key"] = state["state"]["key"].tolist()  # JSON, as a file would hold it
    return ck._replace(rng_state=state)


@pytest.mark.parametrize("change, match", [
    (_duplicate_in_order, r"'order' that is not a permutation of 50 examples"),
    (lambda ck: ck.extra.__setitem__("order", ck.extra["order"][:-1]), r"not a permutation"),
    (lambda ck: ck.extra.__setitem__("order", [0, 1]), r"not a permutation"),
    (_mt19937_state, r"rng state does not fit PCG64"),
    (lambda ck: ck._replace(rng_state=None), r"holds no rng state"),
], ids=["duplicate", "short", "json", "mt19937", "none"])
def test_book_resume_refuses_a_bad_order_or_generator(book_checkpoint, change, match):
    path, load = book_checkpoint
    with pytest.raises(CheckpointError, match=match):
        load(_craft(path, change))
