"""adam_np.book.chapter7: the chapter's update rules vs the book's scratch formulas, purity, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest

import adam_np
from adam_np.book.chapter7 import OPTIMIZERS, SGD, AdaDelta, AdaGrad, AdamRule, Momentum, RMSProp, make_optimizer

from conftest import to_numpy

GRADS = [0.3, -1.2, 2.0, 0.05, -0.7]


def _reference(name: str, hyper: dict, x0: float) -> float:
    """The book's scratch code for one scalar parameter, in plain Python floats."""
    x, v, s, delta = x0, 0.0, 0.0, 0.0
    for g in GRADS:
        if name == "sgd":
            x -= hyper["lr"] * g
        elif name == "momentum":
            v = hyper["momentum"] * v + g
            x -= hyper["lr"] * v
        elif name == "adagrad":
            s += g * g
            x -= hyper["lr"] * g / math.sqrt(s + hyper["eps"])
        elif name == "rmsprop":
            s = hyper["gamma"] * s + (1 - hyper["gamma"]) * g * g
            x -= hyper["lr"] * g / math.sqrt(s + hyper["eps"])
        elif name == "adadelta":
            s = hyper["rho"] * s + (1 - hyper["rho"]) * g * g
            g2 = math.sqrt(delta + hyper["eps"]) / math.sqrt(s + hyper["eps"]) * g
            x -= g2
            delta = hyper["rho"] * delta + (1 - hyper["rho"]) * g2 * g2
    return x


BOOK = {
    "sgd": {"lr": 0.05}, "momentum": {"lr": 0.02, "momentum": 0.5}, "adagrad": {"lr": 0.1, "eps": 1e-6},
    "rmsprop": {"lr": 0.01, "gamma": 0.9, "eps": 1e-6}, "adadelta": {"rho": 0.9, "eps": 1e-5},
}


@pytest.mark.parametrize("name", sorted(BOOK))
def test_book_defaults(name):
    assert make_optimizer(name).hyperparams() == BOOK[name]


def test_adam_book_defaults():
    cfg = make_optimizer("adam").config
    assert (cfg.lr, cfg.eps, cfg.beta1, cfg.beta2, cfg.eps_mode) == (0.01, 1e-6, 0.9, 0.999, "outside")


@pytest.mark.parametrize("name", sorted(BOOK))
def test_rule_matches_book_scratch(name, xp):
    rule = make_optimizer(name)
    x = [xp.asarray([1.5, -0.5], dtype=xp.float64)]
    state = rule.init(x)
    for g in GRADS:
        x, state = rule.update([xp.asarray([g, g], dtype=xp.float64)], state, x)
    assert state.step == len(GRADS)
    expected = [_reference(name, BOOK[name], 1.5), _reference(name, BOOK[name], -0.5)]
    np.testing.assert_allclose(to_numpy(x[0]), expected, rtol=1e-13, atol=1e-15)


def test_adam_rule_is_adam_np_update():
    rule = AdamRule()
    params = [np.array([[1.0], [2.0]]), np.array([0.5])]
    state, ref_state, ref = rule.init(params), adam_np.init(params), params
    x = params
    for k in range(3):
        grads = [np.array([[0.1 * k], [-1.0]]), np.array([2.0 + k])]
        x, state = rule.update(grads, state, x)
        ref, ref_state = adam_np.update(grads, ref_state, ref, adam_np.AdamConfig(lr=0.01, eps=1e-6))
    for a, r in zip(x, ref):
        np.testing.assert_array_equal(a, r)
    assert state.step == 3


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_update_is_pure_and_keeps_float32(name):
    rule = make_optimizer(name)
    x = [np.ones((3, 1), np.float32), np.zeros(1, np.float32)]
    grads = [np.full((3, 1), 0.5, np.float32), np.ones(1, np.float32)]
    copies = [a.copy() for a in x + grads]
    state = rule.init(x)
    new_x, _new_state = rule.update(grads, state, x)
    for a, c in zip(x + grads, copies):
        np.testing.assert_array_equal(a, c)
    assert all(a.dtype == np.float32 for a in new_x)
    assert not np.array_equal(new_x[0], x[0])
    # the old state still gives the same step again (nothing mutated)
    again, _ = rule.update(grads, state, x)
    np.testing.assert_array_equal(again[0], new_x[0])


@pytest.mark.parametrize("ctor, kwargs, match", [
    (SGD, {"lr": 0.0}, "lr must be > 0, got 0.0"),
    (Momentum, {"momentum": 1.0}, r"momentum must be in \[0, 1\), got 1.0"),
    (AdaGrad, {"eps": -1e-3}, "eps must be >= 0, got -0.001"),
    (RMSProp, {"gamma": -0.1}, r"gamma must be in \[0, 1\), got -0.1"),
    (AdaDelta, {"eps": 0.0}, "eps must be > 0, got 0.0"),
    (SGD, {"lr": "big"}, "lr must be a real number, got str"),
])
def test_hyperparameter_validation(ctor, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        ctor(**kwargs)


def test_make_optimizer_errors():
    with pytest.raises(ValueError, match="optimizer must be one of .*, got 'lbfgs'"):
        make_optimizer("lbfgs")
    with pytest.raises(ValueError, match="sgd has no hyper-parameter 'eps'"):
        make_optimizer("sgd", eps=1e-3)
    with pytest.raises(ValueError, match="lr must be > 0, got -1.0"):
        make_optimizer("adam", lr=-1.0)
    assert make_optimizer("adam", lr=0.1, beta1=0.5).config.beta1 == 0.5


def test_update_validates_before_computing():
    rule = Momentum()
    x = [np.ones(2)]
    state = rule.init(x)
    with pytest.raises(ValueError, match=r"grads\[0\] has shape \(3,\)"):
        rule.update([np.ones(3)], state, x)
    with pytest.raises(ValueError, match="grads has 2 arrays, expected 1"):
        rule.update([np.ones(2), np.ones(2)], state, x)
    with pytest.raises(TypeError, match="state must be a SlotState with slots"):
        rule.update([np.ones(2)], AdaDelta().init(x), x)
    with pytest.raises(TypeError, match=r"params\[0\] must have a real floating dtype"):
        SGD().init([np.ones(2, dtype=int)])
    np.testing.assert_array_equal(x[0], [1.0, 1.0])


@pytest.mark.parametrize("name", ["momentum", "adagrad", "rmsprop", "adadelta"])
def test_update_checks_state_slots_against_params(name):
    rule = make_optimizer(name)
    x = [np.arange(5.0), np.ones(1)]
    g = [np.full(5, 0.5), np.ones(1)]
    k = rule.slot_names[-1]
    good = rule.init(x)
    bad_states = [
        (ValueError, rf"state.slots\['{k}'\]\[0\] has shape \(5, 1\), expected \(5,\)",
         {**good.slots, k: [np.zeros((5, 1)), np.zeros(1)]}),  # would broadcast to (5, 5)
        (TypeError, rf"state.slots\['{k}'\]\[1\] has dtype float32, expected float64",
         {**good.slots, k: [np.zeros(5), np.zeros(1, np.float32)]}),  # would promote silently
        (ValueError, rf"state.slots\['{k}'\] has 1 arrays, expected a list of 2",
         {**good.slots, k: [np.zeros(5)]}),  # was a bare IndexError
    ]
    for error, match, slots in bad_states:
        state = adam_np.book.chapter7.SlotState(3, slots)
        before = [a.tobytes() for seq in slots.values() for a in seq] + [p.tobytes() for p in x]
        with pytest.raises(error, match=match):
            rule.update(g, state, x)
        assert [a.tobytes() for seq in slots.values() for a in seq] + [p.tobytes() for p in x] == before


def test_adam_in_place_equals_pure_and_writes_into_params():
    params = [np.array([[1.0], [2.0]]), np.array([0.5])]
    mine = [p.copy() for p in params]
    pure, fast = AdamRule(), AdamRule(in_place=True)
    s_pure, opt = pure.init(params), fast.init(mine)
    x = params
    for k in range(4):
        grads = [np.array([[0.3 * k], [-1.0]]), np.array([2.0 - k])]
        x, s_pure = pure.update(grads, s_pure, x)
        out, opt = fast.update(grads, opt, mine)
        assert out[0] is mine[0] and out[1] is mine[1]
    for a, b in zip(mine, x):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="params must be the arrays the in-place state was made for"):
        fast.update(grads, opt, [m.copy() for m in mine])
    with pytest.raises(TypeError, match="in_place must be a bool"):
        AdamRule(in_place=1)


def test_make_optimizer_in_place_adam():
    rule = make_optimizer("adam", in_place=True, lr=0.1)
    assert rule.in_place and rule.config.lr == 0.1 and rule.config.eps == 1e-6
