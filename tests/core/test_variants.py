"""Variants on the shared core: plain path unchanged, validation, state handling, per-variant properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import adam_np
from adam_np import AdamConfig, AdamState, bias_corrections, init, update, variants
from adam_np.core.adam import adam_step

# ----------------------------------------------------------------------------- plain Adam is unchanged


def _adam_leaf_before_variants(x, g, v, s, config, lr, step, *, xp):
    """Frozen copy of adam_np.core.adam._adam_leaf as committed before the variants (commit 73db6be); since then
    the bias corrections come from ``bias_corrections``, which no longer cancels (same formula, fewer roundings)."""
    beta1, beta2, eps = config.beta1, config.beta2, config.eps
    if config.maximize:
        g = -g
    if config.weight_decay:
        g = g + config.weight_decay * x
    v = beta1 * v + (1.0 - beta1) * g
    s = beta2 * s + (1.0 - beta2) * (g * g)
    bc1, bc2 = bias_corrections(beta1, beta2, step)
    if config.eps_mode == "hat":
        alpha = lr * math.sqrt(bc2) / bc1
        return x - alpha * v / (xp.sqrt(s) + eps), v, s
    v_hat = v / bc1
    s_hat = s / bc2
    if config.eps_mode == "root":
        return x - lr * v_hat / xp.sqrt(s_hat + eps), v, s
    return x - lr * v_hat / (xp.sqrt(s_hat) + eps), v, s


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("eps_mode", adam_np.EPS_MODES)
@pytest.mark.parametrize("options", [{}, {"maximize": True}, {"weight_decay": 0.1}])
def test_plain_adam_bit_for_bit_unchanged(dtype, eps_mode, options):
    import array_api_compat.numpy as xp

    rng = np.random.default_rng(7)
    config = AdamConfig(lr=0.01, eps_mode=eps_mode, **options)
    assert config.is_plain_adam
    x = rng.standard_normal(300).astype(dtype)
    state = init(x)
    x_ref, v_ref, s_ref = x, state.v, state.s
    for t in range(1, 60):
        g = (rng.standard_normal(300) * 10.0 ** rng.uniform(-4, 3, 300)).astype(dtype)
        x, state = update(g, state, x, config)
        x_ref, v_ref, s_ref = _adam_leaf_before_variants(x_ref, g, v_ref, s_ref, config, 0.01, t, xp=xp)
        assert x.dtype == dtype
        assert np.array_equal(x, x_ref) and np.array_equal(state.v, v_ref) and np.array_equal(state.s, s_ref)
    assert state.s_max is None and state.mu_product == 1.0


def test_adam_step_is_the_frozen_copy_for_a_textbook_config():
    import array_api_compat.numpy as xp

    x, g = np.array([1.0, 2.0]), np.array([0.5, -1.0])
    z = np.zeros(2)
    out = adam_step(x, g, z, z, 1, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8, xp=xp)
    ref = _adam_leaf_before_variants(x, g, z, z, AdamConfig(lr=0.1), 0.1, 1, xp=xp)
    assert all(np.array_equal(a, b) for a, b in zip(out, ref))


def test_is_plain_adam():
    assert AdamConfig().is_plain_adam
    assert AdamConfig(weight_decay_mode="decoupled").is_plain_adam  # no decay to apply
    for config in (variants.amsgrad(), variants.adamw(), variants.adamax(), variants.nadam(), variants.radam(),
                   variants.yogi(), AdamConfig(eps_root=1e-8)):
        assert not config.is_plain_adam, config


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "options, message",
    [
        ({"variant": "adamw"}, "variant must be one of"),
        ({"weight_decay_mode": "coupled"}, "weight_decay_mode must be one of"),
        ({"variant": {"name": "amsgrad", "max": "max"}}, "AMSGrad.max must be one of"),
        ({"variant": {"name": "nadam", "schedule": "cosine"}}, "NAdam.schedule must be one of"),
        ({"variant": {"name": "nadam", "mu_product_dtype": "float16"}}, "NAdam.mu_product_dtype must be one of"),
        ({"variant": {"name": "nadam", "momentum_decay": -1e-3}}, "NAdam.momentum_decay must be >= 0, got -0.001"),
        ({"variant": {"name": "radam", "threshold": 3.0}}, "RAdam.threshold must be >= 4"),
        ({"variant": {"name": "yogi", "initial_accumulator": -1e-6}},
         "Yogi.initial_accumulator must be >= 0, got -1e-06"),
        ({"eps_root": -1.0}, "eps_root must be >= 0, got -1.0"),
        ({"variant": "adamax", "eps_mode": "hat"}, "eps_mode='hat' is not defined for variant AdaMax"),
        ({"variant": "adamax", "eps": 0.0}, "eps must be > 0 for variant AdaMax, got 0.0"),
        ({"variant": "adamax", "eps_root": 1e-8}, "eps_root=1e-08 is not defined for variant AdaMax"),
        ({"variant": {"name": "amsgrad", "max": "corrected"}, "eps_mode": "hat"}, "cannot be combined"),
    ],
)
def test_bad_variant_options_name_field_and_value(options, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        AdamConfig(**options)


@pytest.mark.parametrize("make, field, value", [
    (variants.amsgrad, "beta2", 1.0), (variants.adamw, "weight_decay", -0.1), (variants.adamax, "lr", 0.0),
    (variants.nadam, "beta1", -0.5), (variants.radam, "eps", -1e-8), (variants.yogi, "eps", -1e-3),
])
def test_bad_hyper_parameter_per_variant(make, field, value):
    with pytest.raises(ValueError, match=f"{field} must be .*got {value!r}"):
        make(**{field: value})


def test_momentum_decay_type_error():
    with pytest.raises(TypeError, match="NAdam.momentum_decay must be a real number, got str"):
        variants.NAdam(momentum_decay="0.004")


def test_config_dicts_of_todays_files_load_and_unknown_fields_are_refused():
    """Files written while fold_bias_correction was a config field still load (it is ignored: a speed switch)."""
    old = {**AdamConfig(lr=0.1).to_dict(), "fold_bias_correction": False}
    assert AdamConfig.from_dict(old) == AdamConfig(lr=0.1)
    with pytest.raises(TypeError, match="amsgrad_max"):
        AdamConfig.from_dict({"lr": 0.1, "amsgrad_max": "raw"})


def test_variant_round_trips_through_to_dict():
    for config in (variants.amsgrad(max="corrected"), variants.nadam(schedule="constant"),
                   variants.radam(threshold=6.0), variants.yogi(), variants.adamax(), variants.adamw(), AdamConfig()):
        assert AdamConfig.from_dict(config.to_dict()) == config


def _snapshot(*arrays):
    return [np.array(a, copy=True) for a in arrays]


@pytest.mark.parametrize("config", [variants.amsgrad(), variants.nadam(), variants.radam(lr=lambda t: -1.0),
                                    variants.yogi(lr=lambda t: math.nan)])
def test_failed_update_leaves_everything_untouched(config):
    x = np.array([1.0, -2.0, 3.0])
    state = init(x, config)
    x, state = update(np.ones(3), state, x, config) if config.variant_name in ("amsgrad", "nadam") else (x, state)
    if config.variant_name == "amsgrad":
        bad = state._replace(s_max=np.zeros(2))
        match = r"state.s_max has shape \(2,\), expected \(3,\)"
    elif config.variant_name == "nadam":
        bad = state._replace(mu_product=1.5)
        match = r"state.mu_product must be in \[0, 1\], got 1.5"
    else:
        bad = state
        match = r"lr\(1\) must be"
    before = _snapshot(x, bad.v, bad.s) + ([] if bad.s_max is None else _snapshot(bad.s_max))
    g = np.array([0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=match):
        update(g, bad, x, config)
    after = [x, bad.v, bad.s] + ([] if bad.s_max is None else [bad.s_max])
    assert all(np.array_equal(a, b) for a, b in zip(before, after))


def test_state_s_max_from_another_library_is_rejected():
    import torch

    config = variants.amsgrad()
    x = np.ones(2)
    state = init(x, config)._replace(s_max=torch.zeros(2, dtype=torch.float64))
    with pytest.raises(TypeError, match="params and state.s_max mix array libraries"):
        update(np.ones(2), state, x, config)


def test_init_rejects_non_config():
    with pytest.raises(TypeError, match="config must be an AdamConfig, got dict"):
        init(np.ones(2), {"variant": "yogi"})


# ----------------------------------------------------------------------------- state handling


def test_init_per_variant(xp):
    x = xp.asarray([1.0, 2.0], dtype=xp.float64)
    assert init(x, variants.amsgrad()).s_max is not None
    assert init(x).s_max is None
    state = init([x, x], variants.yogi())
    assert float(xp.max(state.v[0])) == 1e-6 and float(xp.min(state.s[1])) == 1e-6
    zero = init(x, variants.yogi(initial_accumulator=0.0))
    for m in (zero.v, zero.s):
        assert m.shape == x.shape and m.dtype == x.dtype and float(xp.max(xp.abs(m))) == 0.0
    filled = init([x, x[:1]], variants.yogi(initial_accumulator=0.25))
    for m in (*filled.v, *filled.s):
        assert m.dtype == x.dtype and float(xp.min(m)) == 0.25 == float(xp.max(m))
    assert [m.shape for m in filled.s] == [(2,), (1,)]
    s_max = init(x, variants.amsgrad()).s_max
    assert s_max.shape == x.shape and float(xp.max(xp.abs(s_max))) == 0.0


def test_variants_run_on_every_namespace(xp):
    """Every variant through update() on numpy, array_api_strict, torch (and cupy with a GPU)."""
    for config in (variants.amsgrad(lr=0.1), variants.adamw(lr=0.1), variants.adamax(lr=0.1),
                   variants.nadam(lr=0.1), variants.radam(lr=0.1), variants.yogi(lr=0.1),
                   variants.amsgrad(max="corrected", lr=0.1), variants.adamw(mode="decoupled_add", lr=0.1)):
        x = xp.asarray([1.0, -2.0], dtype=xp.float64)
        ref = np.asarray([1.0, -2.0])
        state, ref_state = init(x, config), init(ref, config)
        for _ in range(8):
            x, state = update(xp.asarray([0.5, 3.0], dtype=xp.float64), state, x, config)
            ref, ref_state = update(np.asarray([0.5, 3.0]), ref_state, ref, config)
        got = np.asarray([float(x[0]), float(x[1])])
        assert np.allclose(got, ref, rtol=1e-14, atol=0), config.variant_name


def test_amsgrad_without_s_max_starts_from_zeros():
    config = variants.amsgrad(lr=0.1)
    x = np.array([1.0, 2.0])
    a = update(np.array([0.3, -0.2]), init(x), x, config)
    b = update(np.array([0.3, -0.2]), init(x, config), x, config)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1].s_max, b[1].s_max)


def test_skip_keeps_variant_state():
    config = variants.nadam(nonfinite="skip")
    x = np.array([1.0, 2.0])
    x, state = update(np.array([0.1, 0.2]), init(x, config), x, config)
    x2, state2 = update(np.array([np.nan, 0.2]), state, x, config)
    assert x2 is x and state2.mu_product == state.mu_product and state2.step == 1 and state2.skipped == 1


def test_stateful_adam_accepts_variant_configs():
    x = np.array([1.0, -1.0])
    opt = adam_np.Adam([x], config=variants.yogi(lr=0.1))
    assert float(opt.state.s[0][0]) == 1e-6
    ref, state = np.array([1.0, -1.0]), init(np.array([1.0, -1.0]), variants.yogi(lr=0.1))
    for _ in range(3):
        opt.step([np.array([0.5, 0.5])])
        ref, state = update(np.array([0.5, 0.5]), state, ref, variants.yogi(lr=0.1))
    assert np.array_equal(x, ref)


def test_lr_schedule_per_variant():
    """A schedule is called with t = 1, 2, ... and used as eta_t by every variant (and AdamW's decay)."""
    calls = []

    def schedule(t):
        calls.append(t)
        return 0.1 / t

    for make in (variants.amsgrad, variants.adamw, variants.adamax, variants.nadam, variants.radam, variants.yogi):
        calls.clear()
        x = np.array([1.0, -2.0])
        y = x.copy()
        state_s, state_c = init(x, make(lr=schedule)), init(y, make(lr=0.1))
        for t in range(1, 8):
            g = np.array([0.3 * t, -0.7])
            x, state_s = update(g, state_s, x, make(lr=schedule))
            y_next, _ = update(g, state_c, y, make(lr=0.1 / t))
            y, state_c = y_next, update(g, state_c, y, make(lr=0.1))[1]
            assert np.array_equal(x, y), (make.__name__, t)
        assert calls == list(range(1, 8))


# ----------------------------------------------------------------------------- properties per variant

grads_seq = hnp.arrays(np.float64, st.tuples(st.integers(1, 12), st.integers(1, 5)),
                       elements=st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False))


@settings(max_examples=60)
@given(grads_seq, st.sampled_from(["raw", "corrected"]), st.floats(0.0, 0.99), st.floats(0.5, 0.999))
def test_amsgrad_max_never_decreases(grads, mode, beta1, beta2):
    config = variants.amsgrad(max=mode, beta1=beta1, beta2=beta2)
    x = np.zeros(grads.shape[1])
    state = init(x, config)
    previous = state.s_max
    for t, g in enumerate(grads, start=1):
        x, state = update(g, state, x, config)
        assert np.all(state.s_max >= previous)
        bc2 = bias_corrections(beta1, beta2, t)[1]
        assert np.all(state.s_max >= (state.s if mode == "raw" else state.s / bc2))
        previous = state.s_max


@settings(max_examples=60)
@given(grads_seq, st.sampled_from(["root", "outside"]), st.floats(1e-12, 1e-3))
def test_adamax_u_bounds_gradient(grads, eps_mode, eps):
    config = variants.adamax(eps_mode=eps_mode, eps=eps)
    x = np.zeros(grads.shape[1])
    state = init(x, config)
    for g in grads:
        x, state = update(g, state, x, config)
        assert np.all(state.s >= np.abs(g))
        if eps_mode == "root":
            assert np.all(state.s >= np.abs(g) + eps)


@settings(max_examples=60)
@given(grads_seq, st.floats(0.0, 0.99), st.floats(1e-4, 1.0))
def test_radam_is_sgd_with_momentum_while_rho_small(grads, beta1, lr):
    config = variants.radam(lr=lr, beta1=beta1, beta2=0.999)
    x = np.linspace(-1.0, 1.0, grads.shape[1])
    ref, m = x.copy(), np.zeros_like(x)
    state = init(x, config)
    for t, g in enumerate(grads[:5], start=1):  # rho_t <= 5 for t <= 5 when beta2 = 0.999
        assert variants.radam_rectification(0.999, t) is None
        x, state = update(g, state, x, config)
        m = beta1 * m + (1.0 - beta1) * g
        ref = ref - lr * (m / (1.0 - beta1**t))
        np.testing.assert_allclose(x, ref, rtol=1e-14, atol=1e-14 * lr * np.max(np.abs(grads)))
    if len(grads) > 5:  # step 6 is rectified: no longer plain momentum
        assert variants.radam_rectification(0.999, 6) is not None


@pytest.mark.parametrize("eps_mode", ["outside", "hat"])
def test_radam_first_rectified_step_is_not_momentum(eps_mode):
    """Step 6 (the first with rho_t > 5 for beta2 = 0.999) takes the rectified Adam step, not momentum SGD."""
    rng = np.random.default_rng(6)
    grads = rng.normal(size=(6, 4))
    lr, beta1, beta2, eps = 0.1, 0.9, 0.999, 1e-8
    config = variants.radam(lr=lr, beta1=beta1, beta2=beta2, eps=eps, eps_mode=eps_mode)
    x = np.linspace(-1.0, 1.0, 4)
    state = init(x, config)
    for g in grads[:5]:
        x, state = update(g, state, x, config)
    x6, _ = update(grads[5], state, x, config)
    v = beta1 * state.v + (1.0 - beta1) * grads[5]
    s = beta2 * state.s + (1.0 - beta2) * grads[5] ** 2
    bc1, bc2 = 1.0 - beta1**6, 1.0 - beta2**6
    rho_inf = 2.0 / (1.0 - beta2) - 1.0
    rho = rho_inf - 2.0 * 6 * beta2**6 / bc2
    assert 5.0 < rho and variants.radam_rectification(beta2, 5) is None
    r = math.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
    den = np.sqrt(s) / math.sqrt(bc2) + eps if eps_mode == "outside" else (np.sqrt(s) + eps) / math.sqrt(bc2)
    np.testing.assert_allclose(x6, x - lr * r * (v / bc1) / den, rtol=1e-13, atol=1e-15)
    momentum = x - lr * v / bc1
    assert np.all(np.abs(x6 - momentum) > 1e-3 * np.abs(x - momentum))


@settings(max_examples=60)
@given(grads_seq, st.floats(0.0, 1e-2), st.floats(0.5, 0.999))
def test_yogi_s_stays_nonnegative(grads, s0, beta2):
    config = variants.yogi(beta2=beta2, initial_accumulator=s0)
    x = np.zeros(grads.shape[1])
    state = init(x, config)
    for g in grads:
        x, state = update(g, state, x, config)
        assert np.all(state.s >= 0.0)
        assert np.all(np.isfinite(x))


@settings(max_examples=40)
@given(st.integers(1, 50), st.floats(0.0, 0.99))
def test_nadam_constant_schedule_is_optax_nesterov(step, beta1):
    config = variants.nadam(schedule="constant", beta1=beta1)
    _, c_g, c_v = variants.nadam_coefficients(config.beta1, config.variant, step, 1.0)
    assert c_g == pytest.approx((1 - beta1) / (1 - beta1**step), rel=1e-15)
    assert c_v == pytest.approx(beta1 / (1 - beta1 ** (step + 1)), rel=1e-15)


def test_nadam_mu_product_float32_matches_torch_tensor():
    import torch

    config = variants.nadam(mu_product_dtype="float32")
    product, ref = 1.0, torch.tensor(1.0, dtype=torch.float32)
    for t in range(1, 300):
        product, _, _ = variants.nadam_coefficients(config.beta1, config.variant, t, product)
        ref *= variants.nadam_mu(0.9, t, 4e-3)
        assert product == ref.item(), t


def test_state_fields_default_for_old_code():
    state = AdamState(0, np.zeros(1), np.zeros(1))
    assert state.skipped == 0 and state.s_max is None and state.mu_product == 1.0


@pytest.mark.parametrize("make", [variants.amsgrad, variants.nadam])
def test_stateful_adam_carries_variant_state(make):
    """The in-place Adam keeps s_max / mu_product between steps, like the pure update."""
    config = make(lr=0.1)
    w, b = np.array([1.0, -1.0]), np.array([0.5])
    opt = adam_np.Adam([w, b], config=config)
    ref, state = [w.copy(), b.copy()], init([w.copy(), b.copy()], config)
    for t in range(5):
        grads = [np.array([0.5 / (t + 1), 2.0]), np.array([-1.0])]
        opt.step(grads)
        ref, state = update(grads, state, ref, config)
    assert np.array_equal(w, ref[0]) and np.array_equal(b, ref[1])
    assert opt.state.mu_product == state.mu_product
    if config.variant_name == "amsgrad":
        assert np.array_equal(opt.state.s_max[0], state.s_max[0])


@pytest.mark.parametrize("options, what", [
    ({"variant": "amsgrad"}, "variant='amsgrad'"), ({"eps_mode": "hat"}, "eps_mode='hat'"),
    ({"eps_root": 1e-8}, "eps_root=1e-08"),
])
def test_fold_bias_correction_applies_to_plain_adam_only(options, what):
    with pytest.raises(ValueError, match=f"fold_bias_correction=True applies to plain Adam.*{what}"):
        adam_np.Adam([np.zeros(2)], fold_bias_correction=True, **options)
    with pytest.raises(ValueError, match="fold_bias_correction=True applies to plain Adam"):
        update(np.ones(2), init(np.zeros(2)), np.zeros(2), AdamConfig(**options), fold_bias_correction=True)
