"""Mathematical properties of Adam (Kingma & Ba 2014; D2L 7.8), checked on every backend."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import adam_np
from adam_np import AdamConfig, bias_corrections

from conftest import to_numpy

betas = st.floats(0.0, 0.9999, exclude_max=False)
steps = st.integers(1, 400)
shapes = hnp.array_shapes(min_dims=1, max_dims=3, max_side=5)
EPS0 = 1e-300
"""ε for the "ε = 0" properties: AdamConfig refuses 0 (0/0 at a zero gradient), and next to the
√ŝ ≥ 1e-110 of these gradients 1e-300 changes no sum, so the results are those of ε = 0 exactly."""


def finite_arrays(shape, hi=1e3, nonzero=False):
    """Float64 arrays whose squares neither underflow nor overflow (|x| = 0 or 1e-100 ≤ |x| ≤ hi)."""
    magnitude = st.floats(1e-100, hi)
    elements = st.one_of(magnitude, magnitude.map(lambda x: -x))
    if not nonzero:
        elements = st.one_of(st.just(0.0), elements)
    return hnp.arrays(np.float64, shape, elements=elements)


def run(xp, grads, config, x0=None):
    """Feed the gradients ``grads`` (NumPy arrays) through ``adam_np.update`` on namespace ``xp``."""
    x = xp.asarray(np.zeros_like(grads[0]) if x0 is None else x0)
    state = adam_np.init(x)
    for g in grads:
        x, state = adam_np.update(xp.asarray(g), state, x, config)
    return to_numpy(x), state


@given(beta=betas, t=steps)
def test_bias_corrected_weights_sum_to_one_closed_form(beta, t):
    # Effective weight of g_i in v̂_t is (1-β)·β^(t-i)/(1-β^t); they sum to 1 for every β in [0,1), t ≥ 1.
    bc1, _ = bias_corrections(beta, 0.0, t)
    weights = [(1.0 - beta) * beta ** (t - i) / bc1 for i in range(1, t + 1)]
    assert math.fsum(weights) == pytest.approx(1.0, rel=1e-9)


@given(beta1=betas, beta2=betas, t=st.integers(1, 60))
def test_bias_corrected_weights_sum_to_one_unit_impulses(xp, beta1, beta2, t):
    # Run the real recurrences: at step i the gradient is the unit impulse e_i, so after t steps
    # v_t[i] is the weight of g_i; bias correction must make those weights sum to exactly 1.
    impulses = list(np.eye(t))
    _, state = run(xp, impulses, AdamConfig(beta1=beta1, beta2=beta2))
    bc1, bc2 = bias_corrections(beta1, beta2, t)
    v_hat, s_hat = to_numpy(state.v) / bc1, to_numpy(state.s) / bc2
    assert math.fsum(v_hat) == pytest.approx(1.0, rel=1e-9)
    assert math.fsum(s_hat) == pytest.approx(1.0, rel=1e-9)
    # ... and without bias correction they sum to 1 - β^t, the bias it removes.
    assert math.fsum(to_numpy(state.v)) == pytest.approx(bc1, rel=1e-9, abs=1e-300)


@given(data=st.data(), lr=st.floats(1e-4, 1.0), eps=st.floats(EPS0, 1e-2), beta1=betas, beta2=betas)
def test_first_step_is_lr_times_sign_like(xp, data, lr, eps, beta1, beta2):
    g = data.draw(finite_arrays(data.draw(shapes)))
    x0 = data.draw(finite_arrays(g.shape))
    x1, _ = run(xp, [g], AdamConfig(lr=lr, beta1=beta1, beta2=beta2, eps=eps), x0=x0)
    expected = x0 - lr * g / (np.abs(g) + eps)
    np.testing.assert_allclose(x1, expected, rtol=1e-12, atol=1e-12 * max(1.0, np.max(np.abs(x0))))


@pytest.mark.parametrize(
    "eps_mode, first_step",
    [
        ("outside", lambda g, eps, bc2: g / (np.abs(g) + eps)),
        ("root", lambda g, eps, bc2: g / np.sqrt(g * g + eps)),
        ("hat", lambda g, eps, bc2: g / (np.abs(g) + eps / math.sqrt(bc2))),
    ],
)
def test_first_step_per_eps_mode(xp, eps_mode, first_step):
    g = np.array([3.0, -1e-3, 2e-4, -50.0])
    x0 = np.array([1.0, 2.0, -3.0, 0.5])
    eps, lr = 1e-3, 0.1
    x1, _ = run(xp, [g], AdamConfig(lr=lr, eps=eps, eps_mode=eps_mode), x0=x0)
    _, bc2 = bias_corrections(0.9, 0.999, 1)
    np.testing.assert_allclose(x1, x0 - lr * first_step(g, eps, bc2), rtol=1e-13)


@given(data=st.data(), k=st.integers(-20, 20), t=st.integers(1, 20))
def test_power_of_two_gradient_scaling_is_exact_with_eps_zero(xp, data, k, t):
    # With ε = 0 the update is invariant to g → c·g; for c = 2^k every operation scales exactly.
    shape = data.draw(shapes)
    grads = [data.draw(finite_arrays(shape, nonzero=True)) for _ in range(t)]
    config = AdamConfig(lr=0.01, eps=EPS0)
    x_ref, _ = run(xp, grads, config)
    x_scaled, _ = run(xp, [g * 2.0**k for g in grads], config)
    np.testing.assert_array_equal(x_scaled, x_ref)


@given(data=st.data(), c=st.floats(1e-3, 1e3), t=st.integers(1, 20))
def test_gradient_scaling_invariance_with_eps_zero(xp, data, c, t):
    shape = data.draw(shapes)
    grads = [data.draw(finite_arrays(shape, nonzero=True)) for _ in range(t)]
    config = AdamConfig(lr=0.01, eps=EPS0)
    x_ref, _ = run(xp, grads, config)
    x_scaled, _ = run(xp, [g * c for g in grads], config)
    np.testing.assert_allclose(x_scaled, x_ref, rtol=1e-12, atol=1e-14)


@given(data=st.data(), beta1=betas, beta2=betas, t=st.integers(1, 200))
def test_constant_gradient_gives_unbiased_moments(xp, data, beta1, beta2, t):
    g = data.draw(finite_arrays(data.draw(shapes)))
    _, state = run(xp, [g] * t, AdamConfig(beta1=beta1, beta2=beta2))
    bc1, bc2 = bias_corrections(beta1, beta2, t)
    np.testing.assert_allclose(to_numpy(state.v) / bc1, g, rtol=1e-9, atol=1e-300)
    np.testing.assert_allclose(to_numpy(state.s) / bc2, g * g, rtol=1e-9, atol=1e-300)


def test_constant_gradient_moves_every_coordinate_by_lr(xp):
    # v̂ = g and ŝ = g² make the step -η·sign(g) when ε = 0, at every step.
    g = np.array([2.0, -0.5, 1e-3])
    x, _ = run(xp, [g] * 50, AdamConfig(lr=0.01, eps=EPS0))
    np.testing.assert_allclose(x, -50 * 0.01 * np.sign(g), rtol=1e-12)


def rmsprop_bias_corrected(grads, x0, lr, beta2, eps):
    """Reference: RMSProp with bias-corrected s, written independently of adam_np."""
    x, s = x0.copy(), np.zeros_like(x0)
    for t, g in enumerate(grads, start=1):
        s = beta2 * s + (1 - beta2) * g * g
        x = x - lr * g / (np.sqrt(s / (1 - beta2**t)) + eps)
    return x


@given(data=st.data(), beta2=betas, t=st.integers(1, 30), eps=st.floats(1e-8, 1e-2))
def test_beta1_zero_is_bias_corrected_rmsprop(xp, data, beta2, t, eps):
    shape = data.draw(shapes)
    grads = [data.draw(finite_arrays(shape)) for _ in range(t)]
    x0 = data.draw(finite_arrays(shape))
    x, _ = run(xp, grads, AdamConfig(lr=0.01, beta1=0.0, beta2=beta2, eps=eps), x0=x0)
    expected = rmsprop_bias_corrected(grads, x0, 0.01, beta2, eps)
    np.testing.assert_allclose(x, expected, rtol=1e-12, atol=1e-12 * max(1.0, np.max(np.abs(x0))))


@pytest.mark.parametrize("eps_mode", ["outside", "root", "hat"])
def test_float32_in_float32_out(xp, eps_mode):
    x = xp.asarray(np.array([1.0, -2.0], dtype=np.float32))
    g = xp.asarray(np.array([0.5, 3.0], dtype=np.float32))
    state = adam_np.init(x)
    config = AdamConfig(lr=0.1, eps_mode=eps_mode, weight_decay=0.01, maximize=True)
    x1, state = adam_np.update(g, state, x, config)
    for a in (x1, state.v, state.s):
        assert a.dtype == xp.float32
    assert isinstance(state.step, int) and state.step == 1


def test_weight_decay_is_l2_on_the_gradient(xp):
    # weight_decay = λ behaves exactly like adding λ·x to the gradient (torch Adam's L2).
    rng = np.random.default_rng(0)
    x0, g = rng.normal(size=6), rng.normal(size=6)
    x_wd, _ = run(xp, [g], AdamConfig(lr=0.1, weight_decay=0.3), x0=x0)
    x_l2, _ = run(xp, [g + 0.3 * x0], AdamConfig(lr=0.1), x0=x0)
    np.testing.assert_array_equal(x_wd, x_l2)


def test_maximize_ascends(xp):
    rng = np.random.default_rng(1)
    x0, g = rng.normal(size=5), rng.normal(size=5)
    x_max, _ = run(xp, [g], AdamConfig(lr=0.1, maximize=True), x0=x0)
    x_min, _ = run(xp, [-g], AdamConfig(lr=0.1), x0=x0)
    np.testing.assert_array_equal(x_max, x_min)
    assert np.all(np.sign(x_max - x0) == np.sign(g))


def test_lr_schedule_is_called_with_the_step(xp):
    seen = []

    def schedule(t):
        seen.append(t)
        return 0.1 / t

    g = np.array([1.0, -1.0])
    x, _ = run(xp, [g] * 3, AdamConfig(lr=schedule, eps=EPS0))
    assert seen == [1, 2, 3]
    np.testing.assert_allclose(x, -(0.1 + 0.05 + 0.1 / 3) * np.sign(g), rtol=1e-12)


@pytest.mark.parametrize("kind", ["single", "list", "tuple", "dict"])
def test_containers_keep_their_structure(xp, kind):
    w, b = np.ones((2, 3)), np.zeros(3)
    make = {
        "single": lambda a, c: a,
        "list": lambda a, c: [a, c],
        "tuple": lambda a, c: (a, c),
        "dict": lambda a, c: {"w": a, "b": c},
    }[kind]
    params = make(xp.asarray(w), xp.asarray(b))
    grads = make(xp.asarray(np.full((2, 3), 0.5)), xp.asarray(np.full(3, -1.0)))
    state = adam_np.init(params)
    new_params, state = adam_np.update(grads, state, params, AdamConfig(lr=0.1))
    assert type(new_params) is type(params)
    assert type(state.v) is type(params) and type(state.s) is type(params)
    first = new_params if kind == "single" else (new_params["w"] if kind == "dict" else new_params[0])
    np.testing.assert_allclose(to_numpy(first), w - 0.1)
