r"""RAdam's rectification threshold: which branch runs when :math:`\rho_t` equals it exactly (torch's rule:
rectify only if :math:`\rho_t > 5`), and a threshold other than 5 given to ``variants.radam`` changes the steps.

Each step's expected value is written out here from the documented formulas, for both branches:

- :math:`\rho_t \le` threshold: :math:`x \mathrel{-}= \eta\,v_t/(1-\beta_1^t)` (SGD with momentum),
- :math:`\rho_t >` threshold: :math:`x \mathrel{-}= \eta\,r_t\,\hat v_t/(\sqrt{\hat s_t}+\epsilon)` (ε outside).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import adam_np
from adam_np import Adam, AdamConfig, AdamState, variants
from adam_np.verify import presets

BETA1, LR, EPS = 0.9, 0.1, 1e-8

BETA2_RHO6_IS_5 = 0.8397685748659791
"""A β2 for which ρ_6 = ρ∞ − 12·β2⁶/(1 − β2⁶) is exactly 5.0 in float64."""


def _rho(beta2, t):
    """ρ∞ and ρ_t as documented (torch's expression)."""
    rho_inf = 2.0 / (1.0 - beta2) - 1.0
    return rho_inf, rho_inf - 2.0 * t * beta2**t / (1.0 - beta2**t)


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(6)
    g = rng.standard_normal(6)
    v = 0.3 * rng.standard_normal(6)
    s = 0.05 + rng.random(6)  # moments large enough that the two branches differ by far more than rounding
    return x, g, v, s


def _expected(x, g, v, s, beta2, t, rectified):
    v_new = BETA1 * v + (1.0 - BETA1) * g
    s_new = beta2 * s + (1.0 - beta2) * g * g
    bc1, bc2 = 1.0 - BETA1**t, 1.0 - beta2**t
    if not rectified:
        return x - LR * v_new / bc1
    rho_inf, rho_t = _rho(beta2, t)
    r_t = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
    return x - LR * r_t * (v_new / bc1) / (np.sqrt(s_new / bc2) + EPS)


def _step(config, x, g, v, s, t):
    """Step ``t`` from the state after step t-1 (moments v, s), by adam_np.update and by the stateful Adam."""
    new_x, _ = adam_np.update([g], AdamState(t - 1, [v], [s]), [x], config)
    p = x.copy()
    opt = Adam([p], config=config)
    opt.load_state_dict({**opt.state_dict(), "step": t - 1, "v": [v.copy()], "s": [s.copy()]})
    opt.step([g.copy()])
    np.testing.assert_array_equal(p, new_x[0])
    return new_x[0]


def _assert_branch(got, x, g, v, s, beta2, t, rectified):
    want = _expected(x, g, v, s, beta2, t, rectified)
    other = _expected(x, g, v, s, beta2, t, not rectified)
    assert np.max(np.abs(want - other)) > 1e-3 * np.max(np.abs(want))  # the branches are told apart
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14,
                               err_msg=f"step {t}: expected the {'rectified' if rectified else 'momentum'} branch")


@pytest.mark.parametrize("beta2, t", [(0.999, 6), (0.999, 12), (0.99, 8), (0.95, 40)])
def test_threshold_equal_to_rho_t_is_not_rectified(beta2, t):
    """ρ_t == threshold: momentum (rectify only when ρ_t > threshold); one ulp below: rectified."""
    _, rho_t = variants.radam_rho(beta2, t)
    assert rho_t >= 4.0 and rho_t == pytest.approx(_rho(beta2, t)[1], rel=1e-14)
    x, g, v, s = _problem(t)
    at = variants.radam(lr=LR, beta1=BETA1, beta2=beta2, eps=EPS, threshold=rho_t)
    below = variants.radam(lr=LR, beta1=BETA1, beta2=beta2, eps=EPS, threshold=math.nextafter(rho_t, 0.0))
    above = variants.radam(lr=LR, beta1=BETA1, beta2=beta2, eps=EPS, threshold=math.nextafter(rho_t, math.inf))
    _assert_branch(_step(at, x, g, v, s, t), x, g, v, s, beta2, t, rectified=False)
    _assert_branch(_step(below, x, g, v, s, t), x, g, v, s, beta2, t, rectified=True)
    _assert_branch(_step(above, x, g, v, s, t), x, g, v, s, beta2, t, rectified=False)
    assert variants.radam_rectification(beta2, t, rho_t) is None
    assert variants.radam_rectification(beta2, t, math.nextafter(rho_t, 0.0)) is not None


def test_rho_exactly_5_with_the_default_threshold_is_not_rectified():
    beta2 = BETA2_RHO6_IS_5
    assert _rho(beta2, 6)[1] == 5.0 == variants.radam_rho(beta2, 6)[1], "pick another beta2 with rho_6 == 5.0"
    x, g, v, s = _problem(1)
    config = variants.radam(lr=LR, beta1=BETA1, beta2=beta2, eps=EPS)
    assert config.variant.threshold == 5.0
    _assert_branch(_step(config, x, g, v, s, 6), x, g, v, s, beta2, 6, rectified=False)
    _assert_branch(_step(config, x, g, v, s, 7), x, g, v, s, beta2, 7, rectified=True)  # rho_7 > 5


def test_rho_exactly_5_agrees_with_torch():
    """torch.optim.RAdam takes the momentum step at ρ_t = 5 and rectifies from ρ_t > 5 (step 7 here)."""
    beta2 = BETA2_RHO6_IS_5
    rng = np.random.default_rng(4)
    x0 = rng.standard_normal(5)
    grads = [rng.standard_normal(5) for _ in range(8)]
    w = torch.tensor(x0.copy(), requires_grad=True)
    topt = torch.optim.RAdam([w], lr=LR, betas=(BETA1, beta2), eps=EPS, foreach=False)
    p = x0.copy()
    opt = Adam([p], config=presets.torch("radam", lr=LR, beta1=BETA1, beta2=beta2, eps=EPS))
    for t, g in enumerate(grads, start=1):
        w.grad = torch.tensor(g)
        topt.step()
        opt.step([g])
        ref = w.detach().numpy()
        assert np.max(np.abs(p - ref)) <= 1e-12 * np.max(np.abs(ref)), f"step {t}"


@pytest.mark.parametrize("make", [
    lambda th: variants.radam(lr=LR, beta1=BETA1, beta2=0.999, eps=EPS, threshold=th),
    lambda th: AdamConfig(lr=LR, beta1=BETA1, beta2=0.999, eps=EPS, variant=variants.RAdam(threshold=th)),
    lambda th: AdamConfig.from_dict(variants.radam(lr=LR, beta1=BETA1, beta2=0.999, eps=EPS,
                                                   threshold=th).to_dict()),
], ids=["variants.radam", "RAdam", "to_dict-from_dict"])
def test_non_default_threshold_changes_the_steps(make):
    """β2 = 0.999: ρ_6 ≈ 5.99, ρ_7 ≈ 6.99, ρ_8 ≈ 7.98. Threshold 6.5 moves the first rectified step from 6 to 7,
    threshold 7.5 to 8."""
    beta2 = 0.999
    x, g, v, s = _problem(2)
    default, later, latest = make(5.0), make(6.5), make(7.5)
    assert later.variant.threshold == 6.5
    _assert_branch(_step(default, x, g, v, s, 6), x, g, v, s, beta2, 6, rectified=True)
    _assert_branch(_step(later, x, g, v, s, 6), x, g, v, s, beta2, 6, rectified=False)
    _assert_branch(_step(later, x, g, v, s, 7), x, g, v, s, beta2, 7, rectified=True)
    _assert_branch(_step(latest, x, g, v, s, 7), x, g, v, s, beta2, 7, rectified=False)
    _assert_branch(_step(latest, x, g, v, s, 8), x, g, v, s, beta2, 8, rectified=True)


def test_threshold_survives_a_checkpoint(tmp_path):
    x, g, v, s = _problem(3)
    opt = Adam([x.copy()], config=variants.radam(lr=LR, beta1=BETA1, beta2=0.999, eps=EPS, threshold=6.5))
    for _ in range(5):
        opt.step([g.copy()])
    opt.save(tmp_path / "r.npz")
    other = Adam([np.zeros(6)], config=variants.radam(lr=LR, beta1=BETA1, beta2=0.999, eps=EPS))
    other.load(tmp_path / "r.npz")
    assert other.config.variant.threshold == 6.5
    other.step([g.copy()])
    opt.step([g.copy()])  # step 6: momentum under threshold 6.5, rectified under 5
    np.testing.assert_array_equal(other.params[0], opt.params[0])
