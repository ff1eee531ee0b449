"""adam_np.update against the 50-digit mpmath oracle of Algorithm 1, and the committed golden vectors.

Bounds (ulp of the dtype, at the scales of adam_np.verify.oracle.OracleStep; README "Accuracy" states
the same bounds):
- x_t: <= 2 ulp of max(|x|, |dx|) in float64 when the step is small against the parameter
  (|dx| <= |x|/4, the usual regime), <= 4 ulp for any inputs in float64 and float32: when |dx|
  dominates, the ~6 roundings inside dx (products, sqrt, +eps, divisions) show up in x_t.
- v_t, s_t: <= 2 ulp (float64), <= 4 ulp (float32) at the scale of their terms.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adam_np import EPS_MODES, AdamConfig, AdamState, bias_corrections, update
from adam_np.verify.oracle import adam_step_mp, ulp_errors

GOLDEN = sorted((Path(__file__).resolve().parents[1] / "golden").glob("adam_*.npz"))
BOUND_V_S = {np.float64: 2.0, np.float32: 4.0}


def magnitudes(lo, hi):
    return st.builds(lambda sign, e, m: sign * m * 10.0**e, st.sampled_from([-1.0, 1.0]), st.floats(lo, hi),
                     st.floats(1.0, 9.99))


@st.composite
def step_inputs(draw, dtype):
    n = draw(st.integers(1, 6))
    x = np.array(draw(st.lists(magnitudes(-4, 4) | st.just(0.0), min_size=n, max_size=n)), dtype=dtype)
    g = np.array(draw(st.lists(magnitudes(-8, 4) | st.just(0.0), min_size=n, max_size=n)), dtype=dtype)
    v = np.array(draw(st.lists(magnitudes(-8, 4) | st.just(0.0), min_size=n, max_size=n)), dtype=dtype)
    s = np.array([abs(float(a)) ** 2 * 10.0 ** draw(st.floats(-2, 2)) for a in v], dtype=dtype)
    config = AdamConfig(
        # beta1 = 0 or >= 1e-3: a tiny beta1 pushes beta1*v into float32's subnormals (no ulp guarantee there)
        lr=draw(st.floats(1e-5, 1.0)), beta1=draw(st.just(0.0) | st.floats(1e-3, 0.999)),
        beta2=draw(st.floats(0.5, 0.99999)),
        eps=draw(st.sampled_from([1e-8, 1e-6, 1e-3, 1e-12])), eps_mode=draw(st.sampled_from(EPS_MODES)),
        maximize=draw(st.booleans()),
    )
    return x, g, v, s, draw(st.integers(1, 100_000)), config


def _errors(x, g, v, s, t, config, coefficients="float64", fold=False):
    x1, state = update(g, AdamState(t - 1, v, s), x, config, fold_bias_correction=fold)
    exact = adam_step_mp(x, g, v, s, t, config, coefficients=coefficients)
    small = np.array([abs(d) <= abs(mpmath.mpf(float(a))) / 4 for a, d in zip(x, exact.dx)])
    return (ulp_errors(x1, exact.x, exact.scale_x), small, ulp_errors(state.v, exact.v, exact.scale_v),
            ulp_errors(state.s, exact.s, exact.scale_s))


@settings(max_examples=150)
@given(step_inputs(np.float64))
def test_float64_step_within_ulps_of_oracle(inputs):
    """The array arithmetic, with adam_np's own float64 coefficients (1 - beta^t, alpha_t) fed to the oracle."""
    ex, small, ev, es = _errors(*inputs)
    assert np.all(ex <= 4.0), ex
    assert np.all(ex[small] <= 2.0), (ex, small)
    assert np.all(ev <= 2.0) and np.all(es <= 2.0), (ev, es)


@settings(max_examples=150)
@given(step_inputs(np.float64))
def test_float64_step_against_exact_algorithm_1(inputs):
    """Against Algorithm 1 itself, with exact 1 - beta^t: the same bounds (bias_corrections does not cancel)."""
    ex, small, ev, es = _errors(*inputs, coefficients="exact")
    assert np.all(ex <= 4.0), ex
    assert np.all(ex[small] <= 2.0), (ex, small)
    assert np.all(ev <= 2.0) and np.all(es <= 2.0), (ev, es)


def test_bias_correction_does_not_cancel():
    # t = 2 and beta2 near 1: the textbook 1 - beta2**2 is ~60 ulp off and x with it (> 10 ulp).
    x, g, z = np.zeros(1), -np.ones(1), np.zeros(1)
    config = AdamConfig(lr=1.0, beta1=0.0, beta2=0.9989999999999999)
    ex, *_ = _errors(x, g, z, z, 2, config, coefficients="exact")
    assert ex[0] <= 2.0


@given(beta=st.one_of(st.floats(0.0, 1.0, exclude_max=True), st.floats(1e-12, 0.5).map(lambda e: 1.0 - e)),
       t=st.integers(1, 10**9))
def test_bias_corrections_within_two_ulp_of_exact(beta, t):
    with mpmath.workdps(60):
        exact = 1 - mpmath.mpf(beta) ** t
        for got in bias_corrections(beta, beta, t):
            if exact != 0:
                assert abs(mpmath.mpf(got) - exact) <= 2 * 2.0**-52 * abs(exact), (got, exact)


@settings(max_examples=150)
@given(step_inputs(np.float32))
def test_float32_step_within_ulps_of_oracle(inputs):
    ex, _, ev, es = _errors(*inputs)
    assert np.all(ex <= 4.0) and np.all(ev <= 4.0) and np.all(es <= 4.0), (ex, ev, es)


def test_oracle_weight_decay_and_errors():
    x, g, z = np.array([2.0]), np.array([0.5]), np.zeros(1)
    l2 = adam_step_mp(x, g, z, z, 1, AdamConfig(lr=0.1, weight_decay=0.5, eps=1e-300))
    assert float(l2.v[0]) == pytest.approx(0.1 * (0.5 + 0.5 * 2.0), rel=1e-15)
    dec = adam_step_mp(x, g, z, z, 1, AdamConfig(lr=0.1, weight_decay=0.5, weight_decay_mode="decoupled", eps=1e-300))
    assert float(dec.x[0]) == pytest.approx(2.0 * (1 - 0.05) - 0.1, rel=1e-15)
    with pytest.raises(ValueError, match="the oracle models plain Adam"):
        adam_step_mp(x, g, z, z, 1, AdamConfig(variant="yogi"))
    with pytest.raises(ValueError, match="step must be >= 1, got 0"):
        adam_step_mp(x, g, z, z, 0, AdamConfig())
    with pytest.raises(ValueError, match="coefficients must be 'exact' or 'float64', got 'float32'"):
        adam_step_mp(x, g, z, z, 1, AdamConfig(), coefficients="float32")


def test_golden_files_exist_for_every_mode_and_dtype():
    names = {p.name for p in GOLDEN}
    assert names == {f"adam_{d}_{m}.npz" for d in ("float64", "float32") for m in EPS_MODES}


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden_vectors(path):
    data = np.load(path)
    eps_mode = str(data["eps_mode"])
    dtype = data["x"].dtype.type
    for i in range(len(data["step"])):
        config = AdamConfig(lr=float(data["lr"][i]), beta1=float(data["beta1"][i]), beta2=float(data["beta2"][i]),
                            eps=float(data["eps"][i]), eps_mode=eps_mode)
        x1, state = update(data["g"][i], AdamState(int(data["step"][i]) - 1, data["v"][i], data["s"][i]),
                           data["x"][i], config)
        # the expected values are the oracle rounded to float64: allow that 0.5 ulp (float64) on top
        slack = 0.5 if dtype is np.float64 else 0.0
        for key, got, bound in (("x", x1, 4.0), ("v", state.v, BOUND_V_S[dtype]), ("s", state.s, BOUND_V_S[dtype])):
            ulp = np.spacing(np.abs(data[f"scale_{key}"][i]).astype(dtype)).astype(np.float64)
            err = np.abs(got.astype(np.float64) - data[f"expected_{key}"][i]) / ulp
            assert np.all(err <= bound + slack), (path.name, i, key, err.max())
        small = np.abs(data["dx"][i]) <= np.abs(data["x"][i].astype(np.float64)) / 4
        ulp = np.spacing(np.abs(data["scale_x"][i]).astype(dtype)).astype(np.float64)
        err = np.abs(x1.astype(np.float64) - data["expected_x"][i]) / ulp
        assert np.all(err[small] <= (2.0 if dtype is np.float64 else 4.0) + slack)


def test_golden_catches_a_regression():
    """A one-ulp-per-step perturbation of the update (e.g. a changed order of operations) is visible."""
    data = np.load(next(p for p in GOLDEN if p.name == "adam_float64_outside.npz"))
    i = 0
    config = AdamConfig(lr=float(data["lr"][i]), beta1=float(data["beta1"][i]), beta2=float(data["beta2"][i]),
                        eps=float(data["eps"][i]) * 1.01)  # a 1% wrong eps
    x1, _ = update(data["g"][i], AdamState(int(data["step"][i]) - 1, data["v"][i], data["s"][i]), data["x"][i],
                   config)
    ulp = np.spacing(np.abs(data["scale_x"][i]))
    assert np.max(np.abs(x1 - data["expected_x"][i]) / ulp) > 4.5


@pytest.mark.parametrize("step, exc, match", [
    (1.7, TypeError, r"step must be an int .*got float: 1.7"),
    (True, TypeError, r"step must be an int .*got bool: True"),
    (2.0, TypeError, r"step must be an int .*got float: 2.0"),
    (-1, ValueError, r"step must be >= 0, got -1"),
])
def test_oracle_step_must_be_an_int(step, exc, match):
    x, g, z = np.array([2.0]), np.array([0.5]), np.zeros(1)
    with pytest.raises(exc, match=match):
        adam_step_mp(x, g, z, z, step, AdamConfig())
    assert adam_step_mp(x, g, z, z, np.int64(2), AdamConfig()).x[0] < 2.0  # NumPy integers are ints


def test_ulp_errors_rejects_different_lengths():
    one = [mpmath.mpf(1)]
    with pytest.raises(ValueError, match=r"computed, exact and scale must have the same length, got 2, 1 and 1"):
        ulp_errors(np.array([1.0, 2.0]), one, one)
    with pytest.raises(ValueError, match=r"got 1, 2 and 1"):
        ulp_errors(np.array([1.0]), one * 2, one)


@settings(max_examples=150)
@given(inputs=step_inputs(np.float64) | step_inputs(np.float32))
def test_folded_bias_correction_within_the_same_ulps_of_exact_algorithm_1(inputs):
    """fold_bias_correction changes rounding only: against exact Algorithm 1, the bounds of the default."""
    x, g, v, s, t, config = inputs
    if config.eps_mode == "hat":
        config = dataclasses.replace(config, eps_mode="outside")
    ex, small, ev, es = _errors(x, g, v, s, t, config, coefficients="exact", fold=True)
    bound = BOUND_V_S[x.dtype.type]
    assert np.all(ex <= 4.0), ex
    if x.dtype == np.float64:
        assert np.all(ex[small] <= 2.0), (ex, small)
    assert np.all(ev <= bound) and np.all(es <= bound), (ev, es)


def test_folded_bias_correction_changes_rounding_not_the_update():
    """Same update within a few ulp in float64; at least one input where the last bit differs (not a no-op)."""
    rng = np.random.default_rng(3)
    x, g, v = (rng.normal(size=1000) for _ in range(3))
    s = rng.normal(size=1000) ** 2
    for mode in ("outside", "root"):
        plain = AdamConfig(lr=0.1, eps=1e-3, eps_mode=mode)
        a, _ = update(g, AdamState(4, v, s), x, plain)
        b, _ = update(g, AdamState(4, v, s), x, plain, fold_bias_correction=True)
        scale = np.maximum(abs(x), abs(a - x))
        assert np.all(abs(a - b) <= 4 * np.finfo(np.float64).eps * scale)
        assert np.any(a != b)
