"""The optax presets against optax itself (inside jax.enable_x64): float64 to 1e-12 over 1000 steps."""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest
from _errors import worst_normwise

from adam_np.verify import presets
from adam_np.verify.crosscheck import FRAMEWORKS, crosscheck, problem, run_adam_np

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp

STEPS, N = 1000, 200


@pytest.mark.parametrize("variant", FRAMEWORKS["optax"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_optax_preset_matches_optax(variant, dtype):
    rows = crosscheck(against=["optax"], variants=[variant], steps=STEPS, n=N, dtype=dtype, windows=1)
    assert len(rows) == 1 and rows[0].status == "pass", rows
    assert rows[0].max_rel <= (1e-12 if dtype == "float64" else 1e-5)


def _optax_trajectory(tx, x0, grads):
    def body(carry, g):
        params, state = carry
        updates, state = tx.update(g, state, params)
        params = optax.apply_updates(params, updates)
        return (params, state), params

    with jax.enable_x64(True):
        p = jnp.asarray(x0)
        return np.asarray(jax.lax.scan(body, (p, tx.init(p)), jnp.asarray(grads))[1])


CASES = {
    "adam_eps_root": (optax.adam(1e-2, eps_root=1e-6), presets.optax("adam", lr=1e-2, eps_root=1e-6)),
    "adam_eps_root_only": (optax.adam(1e-2, eps=0.0, eps_root=1e-8),
                           presets.optax("adam", lr=1e-2, eps=1e-8, eps_mode="root")),
    "adamw_large_decay": (optax.adamw(1e-2, weight_decay=0.1), presets.optax("adamw", lr=1e-2, weight_decay=0.1)),
    "nadamw": (optax.nadamw(1e-2, weight_decay=0.1),
               presets.optax("nadam", lr=1e-2, weight_decay=0.1, weight_decay_mode="decoupled_add")),
    "amsgrad_eps_root": (optax.amsgrad(1e-2, eps_root=1e-6), presets.optax("amsgrad", lr=1e-2, eps_root=1e-6)),
    "yogi_betas": (optax.yogi(1e-2, b1=0.8, b2=0.99), presets.optax("yogi", lr=1e-2, beta1=0.8, beta2=0.99)),
    "radam_threshold": (optax.radam(1e-2, threshold=50.0), presets.optax("radam", lr=1e-2, threshold=50.0)),
    # optax calls the schedule with count = t - 1 (optax's own schedules compute in float32, so a plain one here)
    "adam_schedule": (optax.adam(lambda count: 1e-2 / (1.0 + 0.01 * count)),
                      presets.optax("adam", lr=lambda t: 1e-2 / (1.0 + 0.01 * (t - 1)))),
    "radam_schedule": (optax.radam(lambda count: 1e-2 / (1.0 + 0.01 * count)),
                       presets.optax("radam", lr=lambda t: 1e-2 / (1.0 + 0.01 * (t - 1)))),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_optax_options(case):
    tx, config = CASES[case]
    x0, grads = problem(N, STEPS, "float64", seed=5)
    ref = _optax_trajectory(tx, x0, grads)
    ours = run_adam_np(config, x0, grads)
    assert worst_normwise(ours, ref) <= 1e-12


def test_amsgrad_conventions_differ():
    """optax's max over the corrected s_hat is not torch's max over the raw s (the reason for two modes)."""
    x0, grads = problem(N, STEPS, "float64", seed=0)
    grads[500:] *= 1e-2  # gradients shrink: the running maximum matters
    ref = _optax_trajectory(optax.amsgrad(1e-2), x0, grads)
    corrected = run_adam_np(presets.optax("amsgrad", lr=1e-2), x0, grads)
    raw = run_adam_np(presets.torch("amsgrad", lr=1e-2), x0, grads)
    assert worst_normwise(corrected, ref) <= 1e-12
    assert worst_normwise(raw, ref) > 1e-6
