"""Keras 3 and D2L presets against transcriptions of their formulas; the preset tables themselves.

Keras 3 is not installed (and must not be: too heavy), so the Keras preset is tested against a
small transcription of Keras 3's ``update_step`` code (keras/src/optimizers/{adam,adamw,adamax,nadam}.py
and ``BaseOptimizer._apply_weight_decay``), operation for operation, in NumPy float64. The D2L
preset is tested against the book's scratch code (sections 12.10 Adam and Yogi), transcribed with
torch tensors as the book writes it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _errors import worst_normwise

from adam_np import AdamConfig, presets
from adam_np.verify.crosscheck import problem, run_adam_np

STEPS, N = 1000, 200


def keras_trajectory(variant, x0, grads, lr=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7, weight_decay=None,
                     amsgrad=False):
    """Transcription of Keras 3 optimizers' update_step (iterations starts at 0)."""
    x = x0.copy()
    m, v, v_hat, u = np.zeros_like(x), np.zeros_like(x), np.zeros_like(x), np.zeros_like(x)
    u_product = 1.0
    out = np.empty_like(grads)
    for iterations, gradient in enumerate(grads):
        if weight_decay:  # BaseOptimizer._apply_weight_decay, before update_step
            x = x - x * weight_decay * lr
        local_step = iterations + 1
        beta_1_power = beta_1**local_step
        beta_2_power = beta_2**local_step
        if variant in ("adam", "adamw"):
            alpha = lr * np.sqrt(1 - beta_2_power) / (1 - beta_1_power)
            m = m + (gradient - m) * (1 - beta_1)
            v = v + (np.square(gradient) - v) * (1 - beta_2)
            denom_v = v
            if amsgrad:
                v_hat = np.maximum(v_hat, v)
                denom_v = v_hat
            x = x - (m * alpha) / (np.sqrt(denom_v) + epsilon)
        elif variant == "adamax":
            m = m + (gradient - m) * (1 - beta_1)
            u = np.maximum(beta_2 * u, np.abs(gradient))
            x = x - (lr * m) / ((1 - beta_1_power) * (u + epsilon))
        elif variant == "nadam":
            next_step = iterations + 2
            decay = 0.96
            u_t = beta_1 * (1.0 - 0.5 * (decay**local_step))
            u_t_1 = beta_1 * (1.0 - 0.5 * (decay**next_step))
            u_product_t = u_product * u_t
            u_product_t_1 = u_product_t * u_t_1
            u_product = u_product_t
            m = m + (gradient - m) * (1 - beta_1)
            v = v + (np.square(gradient) - v) * (1 - beta_2)
            m_hat = u_t_1 * m / (1 - u_product_t_1) + (1 - u_t) * gradient / (1 - u_product_t)
            v_hat_ = v / (1 - beta_2_power)
            x = x - (m_hat * lr) / (np.sqrt(v_hat_) + epsilon)
        out[iterations] = x
    return out


KERAS_CASES = {
    "adam": ({}, {}),
    "amsgrad": ({"amsgrad": True}, {}),
    "adamw": ({"weight_decay": 0.004}, {}),
    "adamax": ({}, {}),
    "nadam": ({}, {}),
}


@pytest.mark.parametrize("variant", sorted(KERAS_CASES))
def test_keras_preset_matches_keras_formulas(variant):
    kwargs, options = KERAS_CASES[variant]
    x0, grads = problem(N, STEPS, "float64", seed=1)
    lr = 1e-2
    ref = keras_trajectory("adam" if variant == "amsgrad" else variant, x0, grads, lr=lr, **kwargs)
    ours = run_adam_np(presets.keras(variant, lr=lr, **options), x0, grads)
    assert worst_normwise(ours, ref) <= 1e-12


def test_keras_adamw_large_decay():
    x0, grads = problem(N, STEPS, "float64", seed=2)
    ref = keras_trajectory("adamw", x0, grads, lr=1e-2, weight_decay=0.1)
    ours = run_adam_np(presets.keras("adamw", lr=1e-2, weight_decay=0.1), x0, grads)
    assert worst_normwise(ours, ref) <= 1e-12


def d2l_trajectory(variant, x0, grads, lr=0.01):
    """The book's scratch adam / yogi (d2l.ai 12.10), on torch tensors."""
    p = torch.tensor(x0)
    v, s = torch.zeros_like(p), torch.zeros_like(p)
    hyperparams = {"lr": lr, "t": 1}
    out = np.empty_like(grads)
    for i, g in enumerate(grads):
        grad = torch.tensor(g)
        if variant == "adam":
            beta1, beta2, eps = 0.9, 0.999, 1e-6
            v[:] = beta1 * v + (1 - beta1) * grad
            s[:] = beta2 * s + (1 - beta2) * torch.square(grad)
        else:
            beta1, beta2, eps = 0.9, 0.999, 1e-3
            v[:] = beta1 * v + (1 - beta1) * grad
            s[:] = s + (1 - beta2) * torch.sign(torch.square(grad) - s) * torch.square(grad)
        v_bias_corr = v / (1 - beta1 ** hyperparams["t"])
        s_bias_corr = s / (1 - beta2 ** hyperparams["t"])
        p[:] -= hyperparams["lr"] * v_bias_corr / (torch.sqrt(s_bias_corr) + eps)
        hyperparams["t"] += 1
        out[i] = p.numpy()
    return out


@pytest.mark.parametrize("variant", ["adam", "yogi"])
def test_d2l_preset_matches_book_code(variant):
    x0, grads = problem(N, STEPS, "float64", seed=6)
    ref = d2l_trajectory(variant, x0, grads)
    ours = run_adam_np(presets.d2l(variant), x0, grads)
    assert worst_normwise(ours, ref) <= 1e-12


@pytest.mark.parametrize("framework", sorted(presets.FRAMEWORKS))
def test_every_preset_builds_and_overrides(framework):
    make = getattr(presets, framework)
    for variant in presets.supported(framework):
        config = make(variant)
        assert isinstance(config, AdamConfig)
        assert make(variant, lr=0.5).lr == 0.5
    assert make().variant is None


def test_preset_errors():
    with pytest.raises(ValueError, match=r"variant must be one of \('adam', 'yogi'\) for d2l, got 'nadam'"):
        presets.d2l("nadam")
    with pytest.raises(ValueError, match="framework must be one of"):
        presets.supported("jax")
    with pytest.raises(ValueError, match="beta1 must be in"):
        presets.torch("radam", beta1=1.5)


def test_preset_defaults():
    assert presets.torch("adamw").weight_decay == 1e-2
    assert presets.optax("adamw").weight_decay == 1e-4 and presets.keras("adamw").weight_decay == 4e-3
    assert presets.torch("adamax").lr == 2e-3 and presets.torch("nadam").lr == 2e-3
    assert presets.keras("nadam").variant.momentum_decay == 1.0
    assert presets.optax("nadam").variant.schedule == "constant"
    assert presets.torch("amsgrad").variant.max == "raw" and presets.optax("amsgrad").variant.max == "corrected"


def test_worst_normwise_is_not_blind_to_nan():
    good, bad = np.ones(3), np.array([1.0, np.nan, 1.0])
    assert max(float(np.max(np.abs(a - b))) for a, b in zip([good, bad], [good, good])) == 0.0  # builtin max: blind
    with pytest.raises(AssertionError, match="non-finite normwise errors"):
        worst_normwise([good, bad], [good, good])
    with pytest.raises(AssertionError, match="non-finite normwise errors"):
        worst_normwise([bad, good], [good, good])
    assert worst_normwise([good, 2 * good], [good, good]) == 1.0
