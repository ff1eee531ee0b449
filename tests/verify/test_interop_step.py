"""torch.optim.Adam state-dict import/export, and the int64 step counter (resume at 2**24 + 1)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from adam_np import Adam, AdamConfig, AdamState, checkpoint, init, update
from adam_np.verify.interop import from_torch_state_dict, to_torch_state_dict

from conftest import normwise_rel_err

SHAPES = ((5, 3), (3,), (2, 2))
HYPER = {"lr": 0.03, "betas": (0.8, 0.99), "eps": 1e-7, "weight_decay": 0.01, "maximize": True}


def _grad_seq(n, seed):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s) for s in SHAPES] for _ in range(n)]


def _torch_opt(values, **kw):
    ps = [torch.tensor(v, requires_grad=True) for v in values]
    return ps, torch.optim.Adam(ps, **kw)


def _torch_steps(ps, opt, grad_seq):
    for grads in grad_seq:
        for p, g in zip(ps, grads):
            p.grad = torch.tensor(g)
        opt.step()


def test_import_torch_state_and_continue():
    rng = np.random.default_rng(0)
    start = [rng.standard_normal(s) for s in SHAPES]
    ps, topt = _torch_opt(start, **HYPER)
    _torch_steps(ps, topt, _grad_seq(7, 1))
    params = [p.detach().numpy().copy() for p in ps]
    opt = from_torch_state_dict(topt.state_dict(), params)
    assert type(opt.state.step) is int and opt.state.step == 7
    cfg = opt.config
    hyper = (cfg.lr, cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay, cfg.maximize)
    assert hyper == (0.03, 0.8, 0.99, 1e-7, 0.01, True)
    more = _grad_seq(50, 2)
    _torch_steps(ps, topt, more)
    for grads in more:
        opt.step(grads)
    for x, p in zip(params, ps):
        assert normwise_rel_err(x, p.detach().numpy()) <= 1e-12


def test_export_to_torch_and_continue():
    rng = np.random.default_rng(3)
    params = [rng.standard_normal(s) for s in SHAPES]
    opt = Adam(params, lr=0.03, beta1=0.8, beta2=0.99, eps=1e-7, weight_decay=0.01, maximize=True)
    for grads in _grad_seq(9, 4):
        opt.step(grads)
    sd = to_torch_state_dict(opt)
    assert sd["state"][0]["step"].dtype == torch.float32 and sd["state"][0]["step"].item() == 9.0
    ps, topt = _torch_opt([p.copy() for p in params])
    topt.load_state_dict(sd)
    assert topt.param_groups[0]["betas"] == (0.8, 0.99) and topt.param_groups[0]["maximize"] is True
    more = _grad_seq(50, 5)
    _torch_steps(ps, topt, more)
    for grads in more:
        opt.step(grads)
    for x, p in zip(params, ps):
        assert normwise_rel_err(x, p.detach().numpy()) <= 1e-12


def test_round_trip_is_exact_and_torch_tensors_work():
    params = [torch.linspace(-1, 1, 6, dtype=torch.float64)]
    opt = Adam(params, lr=0.1)
    opt.step([torch.ones(6, dtype=torch.float64)])
    back = from_torch_state_dict(to_torch_state_dict(opt), [params[0].clone()])
    assert back.state.step == 1 and back.config == AdamConfig(lr=0.1, nonfinite="propagate")
    assert torch.equal(back.state.v[0], opt.state.v[0]) and torch.equal(back.state.s[0], opt.state.s[0])


def test_fresh_torch_optimizer_imports_as_step_zero():
    _, topt = _torch_opt([np.ones(3)], lr=0.5)
    opt = from_torch_state_dict(topt.state_dict(), [np.ones(3)])
    assert opt.state.step == 0 and not opt.state.v[0].any() and opt.config.lr == 0.5
    assert to_torch_state_dict(opt)["state"] == {}


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda ps: torch.optim.Adam(ps, amsgrad=True), "amsgrad"),
        (lambda ps: torch.optim.AdamW(ps), "decoupled_weight_decay"),
        (lambda ps: torch.optim.Adam(ps, capturable=True), "capturable"),
        (lambda ps: torch.optim.Adam(ps, differentiable=True), "differentiable"),
        (lambda ps: torch.optim.Adam([{"params": ps[:1]}, {"params": ps[1:], "lr": 0.5}]), "has hyper-parameters"),
    ],
)
def test_unrepresentable_torch_settings_are_rejected(make, match):
    ps = [torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)]
    topt = make(ps)  # the group settings are checked first: no step needed (capturable needs a GPU)
    with pytest.raises(ValueError, match=match):
        from_torch_state_dict(topt.state_dict(), [np.zeros(2), np.zeros(3)])


def test_mismatched_import_is_rejected():
    ps, topt = _torch_opt([np.zeros(2), np.zeros(3)])
    _torch_steps(ps, topt, [[np.ones(2), np.ones(3)]])
    sd = topt.state_dict()
    with pytest.raises(ValueError, match="list of 2 arrays"):
        from_torch_state_dict(sd, [np.zeros(2)])
    with pytest.raises(ValueError, match=r"sd\['state'\]\[1\]\['exp_avg'\] has shape \(3,\), expected \(4,\)"):
        from_torch_state_dict(sd, [np.zeros(2), np.zeros(4)])
    with pytest.raises(TypeError, match="dtype"):
        from_torch_state_dict(sd, [np.zeros(2, np.float32), np.zeros(3, np.float32)])
    sd["state"][1]["step"] = torch.tensor(4.0)
    with pytest.raises(ValueError, match=r"different steps \[1, 4\]"):
        from_torch_state_dict(sd, [np.zeros(2), np.zeros(3)])
    sd["state"][1]["step"] = torch.tensor(1.5)
    with pytest.raises(ValueError, match="whole number"):
        from_torch_state_dict(sd, [np.zeros(2), np.zeros(3)])
    del sd["state"][1]
    with pytest.raises(ValueError, match="missing while other parameters have state"):
        from_torch_state_dict(sd, [np.zeros(2), np.zeros(3)])


def test_unexportable_configs_are_rejected():
    for kw, match in (({"eps_mode": "hat"}, "eps_mode"), ({"lr": lambda t: 0.1}, "schedule"),
                      ({"weight_decay": 0.1, "weight_decay_mode": "decoupled"}, "weight_decay_mode is 'decoupled'"),
                      ({"variant": "amsgrad"}, "variant is 'amsgrad'"), ({"variant": "nadam"}, "variant is 'nadam'"),
                      ({"variant": "yogi", "eps": 1e-3}, "variant is 'yogi'"),
                      ({"eps_root": 1e-8}, "eps_root is 1e-08")):
        with pytest.raises(ValueError, match=match):
            to_torch_state_dict(Adam([np.zeros(2)], **kw))
    with pytest.raises(ValueError, match="master"):
        to_torch_state_dict(Adam([np.zeros(2, np.float16)]))


# ---- step counter -----------------------------------------------------------------------------

@pytest.mark.parametrize("step", [5, np.int64(5), np.int32(5), np.uint64(5)])
def test_integer_steps_are_accepted_and_become_int(step):
    x = np.ones(2)
    state = AdamState(step, np.zeros(2), np.zeros(2))
    _, new = update(np.ones(2), state, x)
    assert type(new.step) is int and new.step == 6
    opt = Adam([x])
    opt.load_state_dict({**opt.state_dict(), "step": step})
    assert type(opt.state.step) is int and opt.state.step == 5


@pytest.mark.parametrize(
    ("step", "error", "match"),
    [
        (5.0, TypeError, "state.step must be an int"),
        (np.float64(5), TypeError, "state.step must be an int"),
        (True, TypeError, "state.step must be an int"),
        (np.array(5), TypeError, "state.step must be an int"),
        (torch.tensor(5.0), TypeError, "state.step must be an int"),
        (-1, ValueError, "state.step must be >= 0"),
    ],
)
def test_bad_steps_are_rejected(step, error, match):
    x = np.ones(2)
    with pytest.raises(error, match=match):
        update(np.ones(2), AdamState(step, np.zeros(2), np.zeros(2)), x)
    opt = Adam([x])
    with pytest.raises(error, match=match.replace("state.step", r"state_dict\['step'\]")):
        opt.load_state_dict({**opt.state_dict(), "step": step})
    assert opt.state.step == 0


def test_the_int64_counter_edge():
    """No step past the int64 counter, but a state that reached its last value (INT64_MAX) loads."""
    x = np.ones(2)
    with pytest.raises(ValueError, match="state.step must be <= 9223372036854775806"):
        update(np.ones(2), AdamState(2**63 - 1, np.zeros(2), np.zeros(2)), x)
    opt = Adam([x])
    opt.load_state_dict({**opt.state_dict(), "step": 2**63 - 1})
    assert opt.state.step == 2**63 - 1
    with pytest.raises(ValueError, match=r"state_dict\['step'\] must be <= 9223372036854775807"):
        opt.load_state_dict({**opt.state_dict(), "step": 2**63})
    assert opt.state.step == 2**63 - 1


def _formula(x, g, v, s, t, lr, b1, b2, eps):
    """Algorithm 1 in float64 with an explicit t (an independent reference)."""
    v = b1 * v + (1 - b1) * g
    s = b2 * s + (1 - b2) * g * g
    v_hat = v / (1 - b1 ** float(t))
    s_hat = s / (1 - b2 ** float(t))
    return x - lr * v_hat / (np.sqrt(s_hat) + eps)


def test_resume_at_step_2_pow_24_plus_1_uses_exactly_that_t(tmp_path):
    """At t = 2**24 + 1 the bias corrections must use that t; torch's float32 step cannot count there."""
    b1, b2, lr, eps = 1 - 1e-7, 1 - 1e-8, 0.01, 1e-8  # decays so slow that 2**24 vs 2**24 + 1 is visible
    rng = np.random.default_rng(7)
    x0, g = rng.standard_normal(8), rng.standard_normal(8)
    v0, s0 = 0.1 * rng.standard_normal(8), rng.random(8)
    t0 = 2**24
    opt = Adam([x0.copy()], lr=lr, beta1=b1, beta2=b2, eps=eps)
    opt.load_state_dict({**opt.state_dict(), "step": np.int64(t0), "v": [v0.copy()], "s": [s0.copy()]})
    path = tmp_path / "big.npz"
    opt.save(path)  # and resume through a checkpoint, as a long run would
    x = x0.copy()
    resumed = Adam([x], lr=lr, beta1=b1, beta2=b2, eps=eps)
    checkpoint.load(path, resumed)
    resumed.step([g])
    assert resumed.state.step == t0 + 1 and type(resumed.state.step) is int
    right = _formula(x0, g, v0, s0, t0 + 1, lr, b1, b2, eps)
    wrong = _formula(x0, g, v0, s0, t0, lr, b1, b2, eps)
    # Compare the updates x - x0 (about lr in size): t and t - 1 differ there by ~1e-8 relatively.
    assert normwise_rel_err(x - x0, right - x0) <= 1e-13
    assert normwise_rel_err(wrong - x0, right - x0) > 1e-9  # the test can tell the two t apart
    # torch: its float32 step tensor stays at 2**24 (2**24 + 1 rounds back), so it uses t = 2**24.
    step32 = torch.tensor(float(t0), dtype=torch.float32)
    assert (step32 + 1).item() == t0
    p = torch.tensor(x0.copy(), requires_grad=True)
    topt = torch.optim.Adam([p], lr=lr, betas=(b1, b2), eps=eps)
    topt.load_state_dict({"state": {0: {"step": step32, "exp_avg": torch.tensor(v0), "exp_avg_sq": torch.tensor(s0)}},
                          "param_groups": topt.state_dict()["param_groups"]})
    p.grad = torch.tensor(g)
    topt.step()
    assert topt.state[p]["step"].item() == t0  # torch did not count the step
    assert normwise_rel_err(p.detach().numpy() - x0, wrong - x0) <= 1e-13
    assert normwise_rel_err(p.detach().numpy() - x0, right - x0) > 1e-9
    # Exported from adam_np, the step is float64 above 2**24 and torch then uses the right t.
    sd = to_torch_state_dict(resumed)
    assert sd["state"][0]["step"].dtype == torch.float64 and sd["state"][0]["step"].item() == t0 + 1
    p2 = torch.tensor(x.copy(), requires_grad=True)
    topt2 = torch.optim.Adam([p2])
    topt2.load_state_dict(sd)
    x1 = x.copy()
    p2.grad = torch.tensor(-g)
    topt2.step()
    resumed.step([-g])
    assert topt2.state[p2]["step"].item() == t0 + 2 == resumed.state.step
    assert normwise_rel_err(p2.detach().numpy() - x1, x - x1) <= 1e-12
    assert not math.isclose(float(np.float32(t0 + 1)), t0 + 1)


def test_init_step_is_python_int():
    assert type(init(np.ones(2)).step) is int
