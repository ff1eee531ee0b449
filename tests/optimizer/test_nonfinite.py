"""The non-finite gradient policy: raise, skip (atomically), propagate (as torch); never a partial step."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import adam_np
from adam_np import Adam, AdamConfig, init, update

from conftest import normwise_rel_err, to_numpy


def _snapshot(tree):
    """Bytes + dtype + shape of every array in a container (to prove nothing changed)."""
    if isinstance(tree, dict):
        return {k: _snapshot(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_snapshot(v) for v in tree]
    if tree is None or isinstance(tree, int):
        return tree
    a = to_numpy(tree)
    return (a.dtype.str, a.shape, a.tobytes())


def _state_snapshot(state):
    return (state.step, state.skipped, _snapshot(state.v), _snapshot(state.s), _snapshot(state.master))


def _problem(xp, bad=None):
    """Three parameters in a dict; ``bad`` = (key, value) puts a non-finite value into that gradient."""
    rng = np.random.default_rng(0)
    params = {k: xp.asarray(rng.standard_normal(shape)) for k, shape in (("w", (3, 2)), ("b", (2,)), ("c", (4,)))}
    grads = {k: xp.asarray(rng.standard_normal(tuple(v.shape))) for k, v in params.items()}
    if bad is not None:
        key, value = bad
        g = to_numpy(grads[key]).copy()
        g.flat[1] = value
        grads[key] = xp.asarray(g)
    return params, grads


def _warm_state(xp, params, config):
    state = init(params)
    rng = np.random.default_rng(1)
    for _ in range(3):
        grads = {k: xp.asarray(rng.standard_normal(tuple(v.shape))) for k, v in params.items()}
        params, state = update(grads, state, params, config)
    return params, state


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_raise_updates_nothing(xp, value):
    config = AdamConfig(lr=0.1)  # nonfinite="raise" is the default
    assert config.nonfinite == "raise"
    params, grads = _problem(xp, bad=("c", value))  # the last array: a per-array loop would have updated w, b
    params, state = _warm_state(xp, params, config)
    before = (_snapshot(params), _snapshot(grads), _state_snapshot(state))
    with pytest.raises(FloatingPointError, match="grads contain NaN or inf at step 4; nothing was updated"):
        update(grads, state, params, config)
    assert (_snapshot(params), _snapshot(grads), _state_snapshot(state)) == before


def test_skip_is_atomic_and_does_not_count(xp):
    config = AdamConfig(lr=0.1, nonfinite="skip")
    params, good = _problem(xp)
    _, bad = _problem(xp, bad=("b", math.nan))
    params, state = _warm_state(xp, params, config)
    before = (_snapshot(params), _state_snapshot(state))
    skipped_params, skipped_state = update(bad, state, params, config)
    assert skipped_state.step == state.step == 3
    assert skipped_state.skipped == state.skipped + 1 == 1
    assert (_snapshot(skipped_params), _state_snapshot(skipped_state._replace(skipped=0))) == before
    # The next good step is step 4, identical to never having seen the bad gradient.
    p_after_skip, s_after_skip = update(good, skipped_state, skipped_params, config)
    p_direct, s_direct = update(good, state, params, config)
    assert s_after_skip.step == s_direct.step == 4 and s_after_skip.skipped == 1
    assert _snapshot(p_after_skip) == _snapshot(p_direct)
    assert _state_snapshot(s_after_skip._replace(skipped=0)) == _state_snapshot(s_direct)


def _torch_run(params0, grad_seq, **kw):
    ps = [torch.tensor(p, requires_grad=True) for p in params0]
    opt = torch.optim.Adam(ps, **kw)
    for grads in grad_seq:
        for p, g in zip(ps, grads):
            p.grad = torch.tensor(g)
        opt.step()
    return [p.detach().numpy() for p in ps]


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_propagate_matches_torch(value):
    rng = np.random.default_rng(2)
    params0 = [rng.standard_normal((4, 3)), rng.standard_normal(5)]
    grad_seq = [[rng.standard_normal(p.shape) for p in params0] for _ in range(6)]
    grad_seq[2][1][3] = value  # one element of the second array at step 3
    expected = _torch_run(params0, grad_seq, lr=0.05)
    config = AdamConfig(lr=0.05, nonfinite="propagate")
    params, state = [p.copy() for p in params0], init(params0)
    with np.errstate(invalid="ignore", over="ignore"):
        for grads in grad_seq:
            params, state = update(grads, state, params, config)
    assert state.step == 6 and state.skipped == 0
    for got, ref in zip(params, expected):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
        finite = ~np.isnan(ref)
        assert normwise_rel_err(got[finite], ref[finite]) <= 1e-12
    assert np.isnan(params[1][3]) and np.isfinite(params[0]).all()  # the whole step was applied, NaN only there


@pytest.mark.parametrize("policy", ["raise", "skip"])
def test_stateful_step_no_partial_update(policy):
    rng = np.random.default_rng(3)
    params = [rng.standard_normal((3, 3)), rng.standard_normal(3), rng.standard_normal(2)]
    opt = Adam(params, lr=0.1, nonfinite=policy)
    opt.step([np.ones_like(p) for p in params])
    before = (_snapshot(params), _state_snapshot(opt.state))
    grads = [np.ones_like(p) for p in params]
    grads[2][0] = np.inf
    if policy == "raise":
        with pytest.raises(FloatingPointError, match="grads contain NaN or inf"):
            opt.step(grads)
        assert opt.state.skipped == 0
    else:
        opt.step(grads)
        assert opt.state.skipped == 1
    assert (_snapshot(params), _state_snapshot(opt.state._replace(skipped=0))) == before


def test_stateful_propagate_updates_every_array():
    params = [np.ones(2), np.ones(3)]
    opt = Adam(params, lr=0.1, nonfinite="propagate")
    opt.step([np.ones(2), np.array([1.0, np.nan, 1.0])])
    assert opt.state.step == 1
    np.testing.assert_allclose(params[0], 0.9)
    assert params[1][0] == pytest.approx(0.9) and np.isnan(params[1][1])


def test_stateful_step_checks_every_array_is_writeable_before_writing():
    params = [np.ones(2), np.ones(2)]
    opt = Adam(params, lr=0.1)
    params[1].flags.writeable = False  # made read-only after construction
    state = _state_snapshot(opt.state)
    with pytest.raises(ValueError, match=r"params\[1\] is not writeable"):
        opt.step([np.ones(2), np.ones(2)])
    np.testing.assert_array_equal(params[0], 1.0)  # params[0] was not written before the failure
    assert _state_snapshot(opt.state) == state


def test_float16_overflow_is_nonfinite():
    """A float16 gradient that overflowed (65504 * 2 -> inf) goes through the policy."""
    x = np.ones(3, dtype=np.float16)
    with np.errstate(over="ignore"):
        g = np.array([1.0, 65504.0, 1.0], dtype=np.float16) * np.float16(2)
    assert np.isinf(g[1])
    with pytest.raises(FloatingPointError):
        update(g, init(x), x, AdamConfig())
    new_x, state = update(g, init(x), x, AdamConfig(nonfinite="skip"))
    assert state.step == 0 and state.skipped == 1 and new_x is x


def test_policies_are_exported():
    assert adam_np.NONFINITE_POLICIES == ("raise", "skip", "propagate")
    with pytest.raises(ValueError, match="nonfinite must be one of"):
        AdamConfig(nonfinite="ignore")
