"""The stateful, in-place Adam: torch semantics, agreement with the pure update, state_dict."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import adam_np
from adam_np import Adam, AdamConfig


def problem(dtype, seed=0, steps=300):
    rng = np.random.default_rng(seed)
    params = [rng.normal(size=shape).astype(dtype) for shape in [(5, 1), (1,), (3, 4)]]
    grads = [[(rng.normal(size=p.shape) * 10.0 ** rng.uniform(-2, 2)).astype(dtype) for p in params]
             for _ in range(steps)]
    return params, grads


def test_step_updates_the_callers_arrays_in_place():
    w, b = np.ones((5, 1)), np.zeros(1)
    w_id, b_id = id(w), id(b)
    opt = Adam([w, b], lr=0.1)
    opt.step([np.ones((5, 1)), -np.ones(1)])
    assert id(opt.params[0]) == w_id and id(opt.params[1]) == b_id
    np.testing.assert_allclose(w, 0.9)
    np.testing.assert_allclose(b, 0.1)


def test_step_updates_views_of_a_larger_buffer():
    buffer = np.zeros(6)
    w, b = buffer[:5].reshape(5, 1), buffer[5:]
    Adam([w, b], lr=0.5).step([np.ones((5, 1)), np.ones(1)])
    np.testing.assert_allclose(buffer, -0.5)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("config", [
    AdamConfig(),
    AdamConfig(lr=0.01, eps=1e-6),
    AdamConfig(lr=0.02, eps_mode="hat", eps=1e-7, weight_decay=0.01, maximize=True),
    AdamConfig(lr=0.02, eps_mode="root", eps=1e-12, beta1=0.5),
], ids=["defaults", "book", "hat+wd+maximize", "root"])
def test_in_place_path_equals_pure_path_bit_for_bit(dtype, config):
    params, grads = problem(dtype)
    pure_params, state = [p.copy() for p in params], adam_np.init(params)
    opt = Adam(params, config=config)
    for g in grads:
        pure_params, state = adam_np.update(g, state, pure_params, config)
        opt.step(g)
    assert opt.state.step == state.step == len(grads)
    for a, b in zip(params, pure_params):
        assert a.dtype == dtype
        assert a.tobytes() == b.tobytes()
    for a, b in zip(opt.state.v + opt.state.s, state.v + state.s):
        assert a.tobytes() == b.tobytes()


def test_torch_tensors_are_updated_in_place_like_torch_optim():
    x = torch.tensor([1.0, -2.0], dtype=torch.float64)
    ref = x.clone().requires_grad_(True)
    torch_opt = torch.optim.Adam([ref], lr=0.1, foreach=False)
    opt = Adam([x], lr=0.1)
    for _ in range(5):
        g = 2 * x.clone()
        ref.grad = 2 * ref.detach().clone()
        opt.step([g])
        torch_opt.step()
    torch.testing.assert_close(x, ref.detach(), rtol=1e-14, atol=1e-15)


def test_state_dict_round_trip_resumes_exactly():
    params, grads = problem(np.float64, seed=1, steps=40)
    opt = Adam(params, lr=0.01, eps=1e-6)
    for g in grads[:17]:
        opt.step(g)
    saved, saved_params = opt.state_dict(), [p.copy() for p in params]
    for g in grads[17:]:  # the uninterrupted run; must not leak into the saved copy
        opt.step(g)

    resumed = Adam(saved_params, lr=0.5)  # hyper-parameters come back from the state dict
    resumed.load_state_dict(saved)
    assert resumed.config == AdamConfig(lr=0.01, eps=1e-6) and resumed.state.step == 17
    for g in grads[17:]:
        resumed.step(g)
    assert resumed.state.step == 40
    for a, b in zip(saved_params + resumed.state.v + resumed.state.s, params + opt.state.v + opt.state.s):
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("mutate, exc, match", [
    (lambda sd: sd.pop("v"), ValueError, r"state_dict is missing keys \['v'\]"),
    (lambda sd: sd.update(version=99), ValueError, r"state_dict\['version'\] is 99, expected 1"),
    (lambda sd: sd.update(step=2.0), TypeError, r"state_dict\['step'\] must be an int .*, got float: 2.0"),
    (lambda sd: sd["v"].pop(), ValueError, r"state.v has 1 arrays, expected 2"),
    (lambda sd: sd["s"].__setitem__(0, np.zeros(4)), ValueError, r"state.s\[0\] has shape \(4,\), expected \(3,\)"),
    (lambda sd: sd["s"].__setitem__(1, np.zeros(1, np.float32)), TypeError, r"state.s\[1\] has dtype float32"),
    (lambda sd: sd["config"].update(beta1=2.0), ValueError, r"beta1 must be in \[0, 1\), got 2.0"),
    (lambda sd: sd.update(skipped=-3), ValueError, r"state_dict\['skipped'\] must be >= 0, got -3"),
])
def test_load_state_dict_rejects_bad_dicts_and_loads_nothing(mutate, exc, match):
    params = [np.ones(3), np.ones(1)]
    opt = Adam(params, lr=0.1)
    opt.step([np.ones(3), np.ones(1)])
    sd = opt.state_dict()
    mutate(sd)
    before = (opt.config, opt.state.step, [a.tobytes() for a in opt.state.v + opt.state.s])
    with pytest.raises(exc, match=match):
        opt.load_state_dict(sd)
    assert (opt.config, opt.state.step, [a.tobytes() for a in opt.state.v + opt.state.s]) == before


def test_skip_policy_skips_the_whole_step_atomically():
    params = [np.ones(3), np.ones(2)]
    opt = Adam(params, lr=0.1, nonfinite="skip")
    opt.step([np.ones(3), np.ones(2)])
    before = [p.copy() for p in params]
    opt.step([np.ones(3), np.array([1.0, np.inf])])
    assert opt.state.step == 1 and opt.state.skipped == 1
    for a, b in zip(params, before):
        np.testing.assert_array_equal(a, b)
