"""The torch presets against torch.optim itself (CPU, foreach=False): float64 to 1e-12 over 1000 steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _errors import worst_normwise

from adam_np.verify import presets
from adam_np.verify.crosscheck import FRAMEWORKS, crosscheck, problem, run_adam_np

STEPS, N = 1000, 200


@pytest.mark.parametrize("variant", FRAMEWORKS["torch"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_torch_preset_matches_torch(variant, dtype):
    rows = crosscheck(against=["torch"], variants=[variant], steps=STEPS, n=N, dtype=dtype, windows=1)
    assert len(rows) == 1 and rows[0].status == "pass", rows
    assert rows[0].max_rel <= (1e-12 if dtype == "float64" else 1e-5)


def _torch_trajectory(make, x0, grads, schedule=None):
    p = torch.tensor(x0)
    opt = make([p])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule) if schedule else None
    out = np.empty_like(grads)
    for i, g in enumerate(grads):
        p.grad = torch.tensor(g)
        opt.step()
        if sched:
            sched.step()
        out[i] = p.numpy()
    return out


def _schedule(epoch):  # LambdaLR: lr_t = lr0 * schedule(t - 1)
    return 1.0 / (1.0 + 0.01 * epoch)


CASES = {
    "adam_l2": (lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=0.1, foreach=False),
                presets.torch("adam", lr=1e-2, weight_decay=0.1)),
    "adam_maximize": (lambda p: torch.optim.Adam(p, lr=1e-2, maximize=True, foreach=False),
                      presets.torch("adam", lr=1e-2, maximize=True)),
    "adamw_amsgrad": (lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.05, amsgrad=True, foreach=False),
                      presets.torch("amsgrad", lr=1e-2, weight_decay=0.05, weight_decay_mode="decoupled")),
    "nadam_decoupled": (lambda p: torch.optim.NAdam(p, lr=1e-2, weight_decay=0.05, decoupled_weight_decay=True,
                                                    foreach=False),
                        presets.torch("nadam", lr=1e-2, weight_decay=0.05, weight_decay_mode="decoupled")),
    "nadam_l2_psi": (lambda p: torch.optim.NAdam(p, lr=1e-2, weight_decay=0.05, momentum_decay=0.02, foreach=False),
                     presets.torch("nadam", lr=1e-2, weight_decay=0.05, momentum_decay=0.02)),
    "radam_decoupled": (lambda p: torch.optim.RAdam(p, lr=1e-2, weight_decay=0.05, decoupled_weight_decay=True,
                                                    foreach=False),
                        presets.torch("radam", lr=1e-2, weight_decay=0.05, weight_decay_mode="decoupled")),
    "adamax_l2_betas": (lambda p: torch.optim.Adamax(p, lr=1e-2, betas=(0.8, 0.99), weight_decay=0.1, foreach=False),
                        presets.torch("adamax", lr=1e-2, beta1=0.8, beta2=0.99, weight_decay=0.1)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_torch_options(case):
    make, config = CASES[case]
    x0, grads = problem(N, STEPS, "float64", seed=3)
    ref = _torch_trajectory(make, x0, grads)
    ours = run_adam_np(config, x0, grads)
    assert worst_normwise(ours, ref) <= 1e-12


@pytest.mark.parametrize("variant", ["adam", "nadam", "radam"])
def test_torch_lr_schedule(variant):
    """A callable lr(t) reproduces torch's LambdaLR (lr_t = lr0 * f(t - 1))."""
    make = {"adam": torch.optim.Adam, "nadam": torch.optim.NAdam, "radam": torch.optim.RAdam}[variant]
    x0, grads = problem(N, 300, "float64", seed=4)
    ref = _torch_trajectory(lambda p: make(p, lr=1e-2, foreach=False), x0, grads, schedule=_schedule)
    ours = run_adam_np(presets.torch(variant, lr=lambda t: 1e-2 * _schedule(t - 1)), x0, grads)
    assert worst_normwise(ours, ref) <= 1e-12


def test_nadam_float64_product_would_not_match_torch():
    """Keeping the mu-product in float64 (instead of torch's float32) is visible at the 1e-12 level."""
    x0, grads = problem(N, STEPS, "float64", seed=0)
    ref = _torch_trajectory(lambda p: torch.optim.NAdam(p, lr=1e-2, foreach=False), x0, grads)
    ours = run_adam_np(presets.torch("nadam", lr=1e-2, mu_product_dtype="float64"), x0, grads)
    assert worst_normwise(ours, ref) > 1e-12
