"""Bad input: a clear TypeError/ValueError naming the argument, and nothing changed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import adam_np
from adam_np import Adam, AdamConfig, AdamState

from conftest import requires_gpu


@pytest.mark.parametrize(
    "field, value, exc, match",
    [
        ("lr", 0.0, ValueError, r"lr must be > 0, got 0.0"),
        ("lr", -1e-3, ValueError, r"lr must be > 0, got -0.001"),
        ("lr", float("nan"), ValueError, r"lr must be finite, got nan"),
        ("lr", "0.1", TypeError, r"lr must be a real number, got str: '0.1'"),
        ("lr", True, TypeError, r"lr must be a real number, got bool"),
        ("beta1", 1.0, ValueError, r"beta1 must be in \[0, 1\), got 1.0"),
        ("beta1", -0.1, ValueError, r"beta1 must be in \[0, 1\), got -0.1"),
        ("beta2", 1.5, ValueError, r"beta2 must be in \[0, 1\), got 1.5"),
        ("beta2", None, TypeError, r"beta2 must be a real number, got NoneType"),
        ("eps", -1e-8, ValueError, r"eps must be >= 0, got -1e-08"),
        ("eps", 0.0, ValueError, r"eps must be > 0, got 0.0: .* 0/0 is NaN"),
        ("eps", float("inf"), ValueError, r"eps must be finite, got inf"),
        ("eps", [1e-8], TypeError, r"eps must be a real number, got list"),
        ("weight_decay", -0.1, ValueError, r"weight_decay must be >= 0, got -0.1"),
        ("eps_mode", "inside", ValueError, r"eps_mode must be one of \('outside', 'root', 'hat'\), got 'inside'"),
        ("maximize", 1, TypeError, r"maximize must be a bool, got int: 1"),
        ("nonfinite", "ignore", ValueError, r"nonfinite must be one of .*got 'ignore'"),
    ],
)
def test_config_rejects_bad_hyper_parameters(field, value, exc, match):
    with pytest.raises(exc, match=match):
        AdamConfig(**{field: value})


def test_config_accepts_numpy_scalars_as_python_floats():
    config = AdamConfig(lr=np.float32(0.5), beta1=np.float64(0.8), eps=1)
    assert type(config.lr) is float and type(config.beta1) is float and type(config.eps) is float


@pytest.mark.parametrize("options", [{}, {"variant": "yogi"}, {"variant": adam_np.variants.AMSGrad(max="corrected")},
                                     {"eps_mode": "root"}, {"eps_mode": "hat"}, {"variant": "nadam"}])
def test_eps_zero_is_refused_where_the_denominator_can_be_zero(options):
    # Before: eps=0 was accepted and a zero gradient made the parameter NaN (0/0), even under nonfinite="raise".
    with pytest.raises(ValueError, match=r"^eps must be > 0, got 0\.0"):
        AdamConfig(eps=0.0, **options)
    assert AdamConfig(eps=0.0, eps_root=1e-8).eps == 0.0  # optax's eps_root-only form: the root is > 0


def test_config_is_frozen():
    with pytest.raises(AttributeError):
        AdamConfig().lr = 0.1


def test_lr_schedule_returning_bad_value_fails_before_any_change():
    x = np.ones(3)
    state = adam_np.init(x)
    with pytest.raises(ValueError, match=r"lr\(1\) must be > 0, got -1.0"):
        adam_np.update(np.ones(3), state, x, AdamConfig(lr=lambda t: -1.0))


def snapshot(*arrays):
    return [a.tobytes() if isinstance(a, np.ndarray) else a.numpy().tobytes() for a in arrays]


def good_inputs():
    params = [np.arange(6.0).reshape(2, 3), np.array([0.5])]
    grads = [np.full((2, 3), 0.25), np.array([-1.0])]
    state = adam_np.init(params)
    state = state._replace(step=3, v=[np.full((2, 3), 0.1), np.array([0.2])], s=[np.full((2, 3), 0.3), np.array([0.4])])
    return params, grads, state


BAD_UPDATES = {
    "grads shape": (lambda p, g, s: ([g[0][:, :2], g[1]], s, p), ValueError,
                    r"grads\[0\] has shape \(2, 2\), expected \(2, 3\) as params\[0\]"),
    "grads dtype": (lambda p, g, s: ([g[0].astype(np.float32), g[1]], s, p), TypeError,
                    r"grads\[0\] has dtype float32, expected float64 as params\[0\]"),
    "grads count": (lambda p, g, s: (g[:1], s, p), ValueError, r"grads has 1 arrays, expected 2 to match params"),
    "grads container": (lambda p, g, s: (tuple(g), s, p), TypeError, r"grads is a tuple but params is a list"),
    "grads not array": (lambda p, g, s: ([g[0], [1.0]], s, p), TypeError,
                        r"grads\[1\] must be an array, got list: \[1.0\]"),
    "mixed backends": (lambda p, g, s: ([g[0], torch.tensor([1.0], dtype=torch.float64)], s, p), TypeError,
                       r"grads mix array libraries: \['numpy', 'torch'\]"),
    "state shape": (lambda p, g, s: (g, s._replace(v=[s.v[0].T, s.v[1]]), p), ValueError,
                    r"state.v\[0\] has shape \(3, 2\), expected \(2, 3\) as params\[0\]"),
    "state dtype": (lambda p, g, s: (g, s._replace(s=[s.s[0], s.s[1].astype(np.float32)]), p), TypeError,
                    r"state.s\[1\] has dtype float32, expected float64"),
    "float step": (lambda p, g, s: (g, s._replace(step=3.0), p), TypeError,
                   r"state.step must be an int .*, got float: 3.0"),
    "negative step": (lambda p, g, s: (g, s._replace(step=-1), p), ValueError, r"state.step must be >= 0, got -1"),
    "state type": (lambda p, g, s: (g, tuple(s), p), TypeError, r"state must be an AdamState"),
}


@pytest.mark.parametrize("case", list(BAD_UPDATES))
def test_update_rejects_bad_input_and_changes_nothing(case):
    params, grads, state = good_inputs()
    make, exc, match = BAD_UPDATES[case]
    bad_grads, bad_state, bad_params = make(params, grads, state)
    before = snapshot(*params, *grads, *state.v, *state.s)
    with pytest.raises(exc, match=match):
        adam_np.update(bad_grads, bad_state, bad_params, AdamConfig())
    assert snapshot(*params, *grads, *state.v, *state.s) == before


def test_integer_arrays_are_rejected():
    x = np.arange(3)
    with pytest.raises(TypeError, match=r"params must have a real floating dtype, got int64"):
        adam_np.init(x)
    state = AdamState(0, np.zeros(3), np.zeros(3))
    with pytest.raises(TypeError, match=r"params must have a real floating dtype, got int64"):
        adam_np.update(np.ones(3), state, x)
    assert x.tolist() == [0, 1, 2]


def test_non_finite_gradient_raises_and_changes_nothing():
    params, grads, state = good_inputs()
    grads[1] = np.array([np.nan])
    before = snapshot(*params, *state.v, *state.s)
    with pytest.raises(FloatingPointError, match="grads contain NaN or inf at step 4"):
        adam_np.update(grads, state, params)
    assert snapshot(*params, *state.v, *state.s) == before


def test_optimizer_rejects_bad_params():
    with pytest.raises(TypeError, match="params must be a list or tuple of arrays, got ndarray"):
        Adam(np.ones(3))
    ro = np.ones(3)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"params\[0\] is not writeable"):
        Adam([ro])
    with pytest.raises(TypeError, match=r"params\[1\] must have a real floating dtype, got int64"):
        Adam([np.ones(2), np.arange(2)])
    with pytest.raises(TypeError, match="pass either config or hyper-parameters"):
        Adam([np.ones(2)], lr=0.1, config=AdamConfig())
    with pytest.raises(ValueError, match="beta2 must be in"):
        Adam([np.ones(2)], beta2=1.0)


@pytest.mark.parametrize("case", [k for k in BAD_UPDATES if k not in ("state type", "grads container")
                                  and not k.startswith(("state", "float", "negative"))])
def test_optimizer_step_rejects_bad_grads_and_changes_nothing(case):
    params, grads, _ = good_inputs()
    opt = Adam(params, lr=0.1)
    opt.step(grads)
    make, exc, match = BAD_UPDATES[case]
    bad_grads, _, _ = make(params, grads, opt.state)
    before = snapshot(*params, *opt.state.v, *opt.state.s)
    step = opt.state.step
    with pytest.raises(exc, match=match):
        opt.step(bad_grads)
    assert snapshot(*params, *opt.state.v, *opt.state.s) == before
    assert opt.state.step == step


def test_eps_root_with_eps_hat_is_rejected():
    with pytest.raises(ValueError, match=r"eps_root=1e-08 cannot be combined with eps_mode='hat'"):
        AdamConfig(eps_root=1e-8, eps_mode="hat")
    assert AdamConfig(eps_root=1e-8, eps_mode="outside").eps_root == 1e-8


@pytest.mark.parametrize("field, value", [("momentum_decay", 1e-2), ("mu_product_dtype", "float32")])
def test_nadam_constant_schedule_rejects_options_it_ignores(field, value):
    with pytest.raises(ValueError, match=rf"NAdam.{field}={value!r} has no effect with schedule='constant'"):
        AdamConfig(variant=adam_np.variants.NAdam(schedule="constant", **{field: value}))
    AdamConfig(variant=adam_np.variants.NAdam(schedule="decay", **{field: value}))  # used there


def test_lr_schedule_with_wrong_signature_names_lr_and_changes_nothing():
    params, grads, state = good_inputs()
    before = snapshot(*params, *state.v, *state.s)
    with pytest.raises(TypeError, match=r"lr schedule must be callable as lr\(t\) with the step t .*: .*argument"):
        adam_np.update(grads, state, params, AdamConfig(lr=lambda: 0.1))
    assert snapshot(*params, *state.v, *state.s) == before


def test_lr_schedule_is_not_called_on_skipped_steps():
    params, grads, state = good_inputs()
    grads[1] = np.array([np.inf])
    calls = []
    config = AdamConfig(lr=lambda t: calls.append(t) or 0.1, nonfinite="skip")
    new_params, new_state = adam_np.update(grads, state, params, config)
    assert calls == [] and new_state.step == 3 and new_state.skipped == 1
    grads[1] = np.array([1.0])
    adam_np.update(grads, state, params, config)
    assert calls == [4]


@pytest.mark.parametrize("where", ["grads", "state.v", "state.s"])
def test_arrays_on_another_device_than_params_are_rejected(where):
    import array_api_strict as xps

    dev = xps.Device("device1")
    params = [xps.asarray([1.0, 2.0], device=dev)]
    state = adam_np.init(params)
    grads = [xps.asarray([0.5, 0.5], device=dev)]
    cpu = [xps.asarray([0.0, 0.0])]
    if where == "grads":
        grads = cpu
    else:
        state = state._replace(**{where.split(".")[1]: cpu})
    with pytest.raises(ValueError, match=rf"{where}\[0\] is on device .*CPU_DEVICE.*, but params\[0\] is on device "
                                         r".*device1"):
        adam_np.update(grads, state, params)


def test_amsgrad_s_max_on_another_device_is_rejected():
    import array_api_strict as xps

    dev = xps.Device("device1")
    params = [xps.asarray([1.0, 2.0], device=dev)]
    config = AdamConfig(variant="amsgrad")
    state = adam_np.init(params, config)._replace(s_max=[xps.asarray([0.0, 0.0])])
    with pytest.raises(ValueError, match=r"state.s_max\[0\] is on device .*, but params\[0\] is on device"):
        adam_np.update([xps.asarray([0.5, 0.5], device=dev)], state, params, config)


@pytest.mark.gpu
@requires_gpu
def test_cupy_broadcast_param_is_rejected_before_writing():
    import cupy as cp

    good, bad = cp.zeros(3), cp.broadcast_to(cp.zeros(1), (2, 3))  # stride 0: elements overlap
    with pytest.raises(ValueError, match=r"params\[1\] is not writeable in place \(ndarray: its elements overlap"):
        Adam([good, bad])
    assert float(cp.abs(good).max()) == 0.0
