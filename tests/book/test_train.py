"""adam_np.book.train: the D2L train_ch7 loop, the book's acceptance figure, resumable loop state."""

from __future__ import annotations

import numpy as np
import pytest

from adam_np.book.chapter7 import OPTIMIZERS, SGD, AdamRule, make_optimizer
from adam_np.book.data import get_data_ch7, make_synthetic
from adam_np.book.train import init_train, result_of, run_train, train_ch7

from conftest import to_numpy


@pytest.fixture(scope="module")
def airfoil(airfoil_path):
    return get_data_ch7(airfoil_path)


def test_book_acceptance_mean_final_loss_over_seeds(airfoil):
    """Adam lr 0.01, eps 1e-6, batch 10, 2 epochs: the book printed 0.245370 and 0.242066."""
    X, y = airfoil
    finals = [train_ch7(AdamRule(), X, y, batch_size=10, num_epochs=2, seed=s).final_loss for s in range(10)]
    assert 0.240 <= float(np.mean(finals)) <= 0.250, finals


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_rule_trains_airfoil(airfoil, name):
    X, y = airfoil
    result = train_ch7(make_optimizer(name), X, y, seed=0)
    assert result.optimizer == name
    assert result.losses[0] > 0.45 and 0.235 < result.final_loss < 0.26  # from ~0.5 down to the book's plateau


def test_history_axis_and_counts(airfoil):
    X, y = airfoil
    r = train_ch7(AdamRule(), X, y, seed=1)
    assert r.examples_seen == 3000 and r.num_epochs == 2
    assert len(r.losses) == len(r.epochs) == 31
    np.testing.assert_allclose(r.epochs, np.arange(31) * 100 / 1500)
    assert r.sec_per_epoch > 0
    w, b = r.params
    assert tuple(w.shape) == (5, 1) and tuple(b.shape) == (1,) and w.dtype == np.float32
    assert r.line() == f"loss: {r.final_loss:f}, {r.sec_per_epoch:f} sec per epoch"


def test_initial_weights_and_loss_are_the_books():
    X, y, _, _ = make_synthetic(n=50, d=3, dtype=np.float64)
    state = init_train(SGD(), X, y, seed=7)
    w_expected = np.random.default_rng(7).normal(0.0, 0.01, size=(3, 1))
    np.testing.assert_array_equal(state.params[0], w_expected)
    np.testing.assert_array_equal(state.params[1], [0.0])
    r = X @ w_expected[:, 0] - y
    assert state.losses == [pytest.approx(float(np.mean(r * r) / 2), rel=1e-14)]


def test_seeded_runs_repeat_and_differ(airfoil):
    X, y = airfoil
    a, b, c = (train_ch7(AdamRule(), X, y, seed=s) for s in (3, 3, 4))
    assert a.losses == b.losses
    assert a.losses != c.losses


def test_sgd_matches_a_plain_loop():
    """Same RNG stream, same order, the gradient by hand: the loop adds nothing else."""
    X, y, _, _ = make_synthetic(n=30, d=2, dtype=np.float64)
    r = train_ch7(SGD(lr=0.1), X, y, batch_size=7, num_epochs=2, seed=5, eval_every=1000)
    rng = np.random.default_rng(5)
    w, b = rng.normal(0.0, 0.01, size=(2, 1)), np.zeros(1)
    for _ in range(2):
        order = rng.permutation(30)
        for i in range(0, 30, 7):
            Xb, yb = X[order[i:i + 7]], y[order[i:i + 7]]
            res = Xb @ w + b - yb[:, None]
            w, b = w - 0.1 * Xb.T @ res / len(yb), b - 0.1 * res.sum(0) / len(yb)
    np.testing.assert_allclose(r.params[0], w, rtol=1e-13)
    np.testing.assert_allclose(r.params[1], b, rtol=1e-13)
    assert r.epochs == (0.0, 2.0)  # no multiple of 1000 passed: only start and end recorded


def test_partial_last_batch():
    X, y, _, _ = make_synthetic(n=25, d=2)
    r = train_ch7(SGD(), X, y, batch_size=10, num_epochs=2, seed=0, eval_every=20)
    assert r.examples_seen == 50
    np.testing.assert_allclose(r.epochs, [0, 20 / 25, 45 / 25, 2.0])  # batches of 10, 10, 5: 40 passed at 45


def test_stop_and_continue_equals_uninterrupted(airfoil):
    """The explicit loop position + one RNG: a run stopped at any step continues bit-identically."""
    X, y = airfoil
    rule = AdamRule()
    full = train_ch7(rule, X, y, seed=11)
    state = init_train(rule, X, y, seed=11)
    stops = {77, 150, 151}  # mid-epoch, exactly at the epoch end, and right after it
    run_train(state, rule, X, y, on_step=lambda s: s.opt_state.step in stops and stops.remove(s.opt_state.step) is None)
    while state.epoch < 2:
        assert state.opt_state.step in (77, 150, 151)
        run_train(state, rule, X, y,
                  on_step=lambda s: s.opt_state.step in stops and stops.remove(s.opt_state.step) is None)
    resumed = result_of(state, rule, 2)
    assert resumed.losses == full.losses and resumed.epochs == full.epochs
    for a, b in zip(resumed.params, full.params):
        np.testing.assert_array_equal(a, b)


def test_converges_to_known_solution():
    data = make_synthetic(noise=0.0, seed=2, dtype=np.float64)
    r = train_ch7(AdamRule(), data.features, data.labels, num_epochs=10, seed=0)
    np.testing.assert_allclose(r.params[0], data.w, atol=2e-3)
    np.testing.assert_allclose(r.params[1], [data.b], atol=2e-3)


def test_any_namespace_agrees_with_numpy(xp):
    data = make_synthetic(n=60, d=3, dtype=np.float64)
    ref = train_ch7(AdamRule(), data.features, data.labels, seed=0, eval_every=20)
    X, y = xp.asarray(data.features), xp.asarray(data.labels)
    r = train_ch7(AdamRule(), X, y, seed=0, eval_every=20)
    np.testing.assert_allclose(r.losses, ref.losses, rtol=1e-12)
    np.testing.assert_allclose(to_numpy(r.params[0]), ref.params[0], rtol=1e-12)


@pytest.mark.parametrize("kwargs, match", [
    ({"batch_size": 0}, "batch_size must be an int >= 1, got 0"),
    ({"num_epochs": 1.5}, "num_epochs must be an int >= 1, got 1.5"),
    ({"eval_every": -3}, "eval_every must be an int >= 1, got -3"),
])
def test_argument_validation(kwargs, match):
    X, y, _, _ = make_synthetic(n=20, d=2)
    with pytest.raises(ValueError, match=match):
        train_ch7(SGD(), X, y, **kwargs)


def test_data_validation():
    X, y, _, _ = make_synthetic(n=20, d=2)
    with pytest.raises(ValueError, match=r"features must be \(n, d\) and labels \(n,\)"):
        train_ch7(SGD(), X, y[:5])
    with pytest.raises(TypeError, match="share one real floating dtype"):
        train_ch7(SGD(), X, y.astype(np.float64))


def test_to_dict_is_json_ready(airfoil):
    import json

    X, y = airfoil
    d = train_ch7(AdamRule(), X, y, seed=0).to_dict()
    assert json.loads(json.dumps(d))["final_loss"] == d["losses"][-1]
    assert len(d["w"]) == 5 and isinstance(d["b"], float)


def test_in_place_adam_trains_identically(airfoil):
    X, y = airfoil
    pure = train_ch7(AdamRule(), X, y, seed=2)
    fast = train_ch7(AdamRule(in_place=True), X, y, seed=2)
    assert fast.losses == pure.losses
    np.testing.assert_array_equal(fast.params[0], pure.params[0])
