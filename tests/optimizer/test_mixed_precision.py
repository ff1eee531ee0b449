"""Mixed precision: float16/bfloat16 parameters, float32 moments and math, a float32 master copy.

Tolerances (normwise relative error against a float64 run on the same low-precision gradients):
the master copy is float32 arithmetic, so ≤ 1e-5 after 1000 steps; the parameters are the master
rounded to the parameter dtype, so ≤ half an ulp (2**-11 for float16, 2**-8 for bfloat16) plus that.
``PYTHONPATH=.:tests python tests/optimizer/test_mixed_precision.py`` prints the error table.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from adam_np import Adam, AdamConfig, init, update

from conftest import normwise_rel_err, to_numpy

LR, N = 1e-3, 512
HALF_ULP = {"float16": 2.0**-11, "bfloat16": 2.0**-8}


def _ref64(x0, grads, config):
    x, state = x0.astype(np.float64), init(x0.astype(np.float64))
    for g in grads:
        x, state = update(g.astype(np.float64), state, x, config)
    return x


def _problem(steps, seed=0):
    """Start point and gradient sequence, exactly representable in bfloat16 (hence in float16 too)."""
    rng = np.random.default_rng(seed)
    as_bf16 = (lambda a: torch.tensor(a, dtype=torch.bfloat16).float().numpy())
    x0 = as_bf16(rng.standard_normal(N))
    grads = [as_bf16(rng.standard_normal(N) + 0.1) for _ in range(steps)]
    return x0, grads


def _run_low(x0, grads, dtype, master, config):
    """Run in ``dtype`` ("float16" numpy, "bfloat16" torch); return float64 params and master."""
    if dtype == "float16":
        conv = (lambda a: np.asarray(a, dtype=np.float16))
    else:
        conv = (lambda a: torch.tensor(a, dtype=torch.bfloat16))
    x = conv(x0)
    state = init(x, master=master)
    for g in grads:
        x, state = update(conv(g), state, x, config)
    m = None if state.master is None else to_numpy(state.master).astype(np.float64)
    return to_numpy(x.float() if dtype == "bfloat16" else x).astype(np.float64), m, state


def error_table(steps_list=(10, 100, 1000)):
    config = AdamConfig(lr=LR)
    rows = []
    for steps in steps_list:
        x0, grads = _problem(steps)
        ref = _ref64(x0, grads, config)
        x32 = x0.astype(np.float32)
        s32 = init(x32)
        for g in grads:
            x32, s32 = update(g.astype(np.float32), s32, x32, config)
        rows.append(("float32 (baseline)", steps, normwise_rel_err(x32, ref), None))
        for dtype in ("float16", "bfloat16"):
            for master in (True, False):
                x, m, _ = _run_low(x0, grads, dtype, master, config)
                rows.append((f"{dtype}, master={master}", steps, normwise_rel_err(x, ref),
                             None if m is None else normwise_rel_err(m, ref)))
    return rows


@pytest.fixture(scope="module")
def table():
    return {(name, steps): (ep, em) for name, steps, ep, em in error_table()}


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("steps", [10, 100, 1000])
def test_master_copy_error_vs_float64(table, dtype, steps):
    err_params, err_master = table[(f"{dtype}, master=True", steps)]
    assert err_master <= 1e-5
    assert err_params <= HALF_ULP[dtype] + 1e-5


def test_without_master_error_grows(table):
    """Without the master copy the rounding loss accumulates (the reason for keeping one)."""
    for dtype in ("float16", "bfloat16"):
        assert table[(f"{dtype}, master=False", 1000)][0] > 3 * table[(f"{dtype}, master=True", 1000)][0]


def test_master_is_exactly_the_float32_run():
    x0, grads = _problem(50, seed=1)
    config = AdamConfig(lr=LR)
    x16, m, state = _run_low(x0, grads, "float16", None, config)
    x32, s32 = x0.astype(np.float32), init(x0.astype(np.float32))
    for g in grads:
        x32, s32 = update(g.astype(np.float32), s32, x32, config)
    assert m.astype(np.float32).tobytes() == x32.tobytes()
    assert x16.astype(np.float16).tobytes() == x32.astype(np.float16).tobytes()
    assert state.v.dtype == state.s.dtype == np.float32 and state.step == 50


def test_small_updates_are_not_lost_with_master():
    """lr=1e-3 at x=5: below half a float16 ulp (2**-9 there). Without master, x never moves."""
    config = AdamConfig(lr=1e-3)
    for master in (True, False):
        x = np.full(4, 5.0, dtype=np.float16)
        state = init(x, master=master)
        for _ in range(100):
            x, state = update(np.ones(4, dtype=np.float16), state, x, config)
        if master:
            assert abs(float(state.master[0]) - 4.9) < 1e-5 and x[0] == np.float16(state.master[0]) < 5.0
        else:
            assert state.master is None and x[0] == 5.0


def test_init_dtypes():
    s16 = init({"w": np.ones(3, np.float16), "b": np.ones(1, np.float32)})
    assert s16.v["w"].dtype == np.float32 and s16.v["b"].dtype == np.float32
    assert s16.master["w"].dtype == np.float32 and s16.master["b"].dtype == np.float32
    assert init(np.ones(2, np.float32)).master is None
    s = init(np.ones(2, np.float32), moment_dtype=np.float64)
    assert s.v.dtype == np.float64 and s.master.dtype == np.float64
    assert init(np.ones(2, np.float16), master=False).master is None
    bf = init(torch.ones(2, dtype=torch.bfloat16))
    assert bf.v.dtype == torch.float32 and bf.master.dtype == torch.float32


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"moment_dtype": np.int32}, TypeError, "moment_dtype must be a real floating dtype"),
        ({"moment_dtype": "nonsense"}, TypeError, "moment_dtype must be a dtype"),
        ({"master": 1}, TypeError, "master must be None or a bool"),
    ],
)
def test_init_rejects(kwargs, error, match):
    with pytest.raises(error, match=match):
        init(np.ones(2, np.float16), **kwargs)


def test_update_rejects_a_master_of_the_wrong_dtype():
    x = np.ones(2, np.float16)
    state = init(x)
    bad = state._replace(master=state.master.astype(np.float16))
    with pytest.raises(TypeError, match="state.master has dtype float16, expected float32"):
        update(np.ones(2, np.float16), bad, x)


def test_stateful_adam_float16_and_bfloat16_in_place():
    w = np.full(3, 5.0, dtype=np.float16)
    opt = Adam([w], lr=1e-3)
    for _ in range(100):
        opt.step([np.ones(3, dtype=np.float16)])
    assert w.dtype == np.float16 and opt.state.master[0].dtype == np.float32
    assert w[0] == np.float16(opt.state.master[0][0]) < 5.0
    b = torch.full((3,), 4.0, dtype=torch.bfloat16)
    opt = Adam([b], lr=1e-2)
    for _ in range(10):
        opt.step([torch.ones(3, dtype=torch.bfloat16)])
    assert b.dtype == torch.bfloat16 and abs(b[0].item() - 3.9) < 2**-6


if __name__ == "__main__":  # PYTHONPATH=.:tests python tests/optimizer/test_mixed_precision.py
    print("| params | steps | normwise rel. err. of params vs float64 | of the float32 master |")
    print("|---|---|---|---|")
    for name, steps, ep, em in error_table():
        print(f"| {name} | {steps} | {ep:.2e} | {'—' if em is None else f'{em:.2e}'} |")
