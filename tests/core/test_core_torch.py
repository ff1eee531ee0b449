"""adam_np.update against torch.optim.Adam (single-tensor path), float64, 1000 random steps.

torch's CPU sqrt is not correctly rounded and its lerp/addcmul use FMA, so the comparison is the
normwise relative error max|x - x_torch| / max|x_torch| per array (README, "Accuracy").
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


def _expanded():
    return torch.ones(3, dtype=torch.float64).expand(2, 3)  # stride 0 on an axis of length 2


def _inference():
    with torch.inference_mode():
        return torch.ones(3, dtype=torch.float64)


@pytest.mark.parametrize("make, why", [
    (_expanded, r"elements overlap in memory \(stride 0"),
    (_inference, r"inference tensor"),
    (lambda: torch.ones(3, dtype=torch.float64, requires_grad=True), r"requires grad; pass p\.detach\(\) or p\.data"),
])
def test_torch_params_that_cannot_be_updated_in_place_are_rejected_up_front(make, why):
    good = torch.zeros(3, dtype=torch.float64)
    bad = make()
    with pytest.raises(ValueError, match=r"params\[1\] is not writeable in place \(Tensor: .*" + why):
        adam_np.Adam([good, bad])
    assert torch.equal(good, torch.zeros(3, dtype=torch.float64))


def test_torch_writeable_cases_stay_writeable():
    from adam_np.core._xp import is_writeable

    with torch.inference_mode():
        inf = torch.ones(3)
        assert is_writeable(inf)  # inside inference mode torch allows in-place updates of it
    assert not is_writeable(inf)
    assert is_writeable(torch.ones(1).expand(1, 1))  # stride 0 on axes of length 1: no overlap
    assert is_writeable(torch.ones(3, 4).t())  # non-contiguous but non-overlapping
    assert is_writeable(torch.ones(2, requires_grad=True) * 2)  # non-leaf: torch allows it
    assert is_writeable(torch.ones(2, requires_grad=True).detach())


def test_stateful_step_rejects_a_param_expanded_after_construction_before_writing():
    good, other = torch.zeros(3, dtype=torch.float64), torch.zeros(2, 3, dtype=torch.float64)
    opt = adam_np.Adam([good, other], lr=0.1)
    opt.params[1] = _expanded()
    with pytest.raises(ValueError, match=r"params\[1\] is not writeable in place .*overlap"):
        opt.step([torch.ones(3, dtype=torch.float64), torch.ones(2, 3, dtype=torch.float64)])
    assert torch.equal(good, torch.zeros(3, dtype=torch.float64))
