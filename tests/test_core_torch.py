"""adam_np.update against torch.optim.Adam (single-tensor path), float64, 1000 random steps.

torch's CPU sqrt is not correctly rounded and its lerp/addcmul use FMA, so the comparison is the
normwise relative error max|x - x_torch| / max|x_torch| per array (see ARCHITECTURE.md).
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch

import adam_np
from adam_np import AdamConfig

from conftest import normwise_rel_err

SHAPES = [(7,), (5, 1), (3, 4, 2)]
HYPER = {
    "torch-defaults": dict(lr=1e-3, eps=1e-8),
    "book": dict(lr=0.01, eps=1e-6),
    "weight-decay+maximize": dict(lr=0.003, eps=1e-8, weight_decay=0.05, maximize=True),
    "betas": dict(lr=0.02, beta1=0.5, beta2=0.9, eps=1e-7),
}
WORST: dict = {}


def torch_adam_trajectory(x0, grads, hyper):
    x = torch.tensor(x0, dtype=torch.float64)
    opt = torch.optim.Adam(
        [x], lr=hyper["lr"], betas=(hyper.get("beta1", 0.9), hyper.get("beta2", 0.999)), eps=hyper["eps"],
        weight_decay=hyper.get("weight_decay", 0.0), maximize=hyper.get("maximize", False), foreach=False,
    )
    for g in grads:
        x.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    st = opt.state[x]
    return x.numpy(), st["exp_avg"].numpy(), st["exp_avg_sq"].numpy()


@pytest.mark.parametrize("name", list(HYPER))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_matches_torch_adam_over_1000_steps(shape, name):
    hyper = HYPER[name]
    rng = np.random.default_rng(zlib.crc32(repr((shape, name)).encode()))
    x0 = rng.normal(size=shape)
    # Gradients that change scale over time, so s tracks a moving target and x crosses zero.
    grads = [rng.normal(size=shape) * 10.0 ** rng.uniform(-3, 1) for _ in range(1000)]
    x_t, v_t, s_t = torch_adam_trajectory(x0, grads, hyper)

    config = AdamConfig(**hyper)
    x, state = x0.copy(), adam_np.init(x0)
    for g in grads:
        x, state = adam_np.update(g, state, x, config)
    assert state.step == 1000
    errors = {"x": normwise_rel_err(x, x_t), "v": normwise_rel_err(state.v, v_t), "s": normwise_rel_err(state.s, s_t)}
    WORST[(shape, name)] = errors
    for array, err in errors.items():
        assert err <= 1e-12, f"{array}: normwise relative error {err:.3g} vs torch"


def test_matches_torch_adam_float32_to_float32_rounding():
    # float32 in float32 out; the two implementations differ only by float32 rounding.
    rng = np.random.default_rng(3)
    x0 = rng.normal(size=50).astype(np.float32)
    grads = [rng.normal(size=50).astype(np.float32) for _ in range(200)]
    x_t, _, _ = torch_adam_trajectory(x0.astype(np.float64), grads, dict(lr=0.01, eps=1e-6))
    config = AdamConfig(lr=0.01, eps=1e-6)
    x, state = x0.copy(), adam_np.init(x0)
    for g in grads:
        x, state = adam_np.update(g, state, x, config)
    assert x.dtype == np.float32
    assert normwise_rel_err(x, x_t) <= 1e-5


def test_report_worst_error(capsys):
    """Print the worst normwise error seen (shown with -s or -rA; the closing note quotes it)."""
    if not WORST:
        pytest.skip("run together with test_matches_torch_adam_over_1000_steps")
    worst = max(max(e.values()) for e in WORST.values())
    with capsys.disabled():
        print(f"\n[adam_np vs torch.optim.Adam float64, 1000 steps] worst normwise rel. error: {worst:.3e}")
    assert worst <= 1e-12
