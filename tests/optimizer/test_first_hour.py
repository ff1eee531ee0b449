"""Issue 18's library items: aliased parameters, state overflow, the int64 step, torch users' habits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import adam_np
from adam_np import Adam, AdamConfig
from adam_np.core._checks import INT64_MAX

PATHS = ["numpy", "numba", "pure"]  # the two CPU kernels, and update (a non-contiguous parameter)


def param(path, values, dtype=float):
    """A parameter holding ``values`` that takes ``path``: contiguous for a kernel, strided for update."""
    if path == "pure":
        x = np.zeros((len(values), 2), dtype)[:, 0]
        x[...] = values
        return x
    return np.array(values, dtype=dtype)


def optimizer(path, params, **kwargs):
    opt = Adam(params, backend="auto" if path == "pure" else path, **kwargs)
    assert opt.backend == (None if path == "pure" else path)
    return opt


def snapshot(opt):
    return [np.array(a, copy=True) for a in [*opt.params, *opt.state.v, *opt.state.s]], opt.state.step


def assert_unchanged(opt, before):
    arrays, step = before
    assert opt.state.step == step
    for a, b in zip([*opt.params, *opt.state.v, *opt.state.s], arrays):
        assert a.tobytes() == b.tobytes()


# Item 4: one array (or overlapping views) passed twice -------------------------------------------------------

@pytest.mark.parametrize("make, message", [
    (lambda w: [w, w], r"params\[0\] and params\[1\] are the same array"),
    (lambda w: [w[:3], w[2:]], r"params\[0\] and params\[1\] share memory \(overlapping views of one buffer\)"),
    (lambda w: [w[4:], np.ones(2), w.reshape(2, 3)], r"params\[0\] and params\[2\] share memory"),
])
def test_the_same_memory_twice_is_refused(make, message):
    # Before: Adam([w, w]) stepped w twice on the kernel path (0.8) and once on the pure path (0.9).
    with pytest.raises(ValueError, match=message + r".*a step would update the shared elements twice"):
        Adam(make(np.ones(6)), lr=0.1)


def test_the_same_tensor_twice_is_refused_for_torch():
    t = torch.ones(6)
    with pytest.raises(ValueError, match=r"params\[0\] and params\[1\] share memory"):
        Adam([t[:3], t[2:]])
    Adam([t[:3], t[3:]])  # disjoint views: fine


def test_disjoint_views_are_accepted():
    w = np.ones(8)
    Adam([w[:3], w[3:]])
    Adam([w[::2], w[1::2]])  # interleaved, no element in common
    opt = Adam.from_shapes([(2, 2), (3,), (1,)], lr=0.1)
    opt.grads[0][...] = 1.0
    opt.step(opt.grads)
    assert opt.params[0][0, 0] == pytest.approx(-0.1)


# Item 9: no step past the int64 counter, on every path --------------------------------------------------------

@pytest.mark.parametrize("path", PATHS)
def test_no_step_past_the_int64_counter_on_any_path(path):
    # Before: the kernels took step 2**63 (a checkpoint that cannot be loaded); update refused it.
    opt = optimizer(path, [param(path, [1.0, 2.0, 3.0])], lr=0.1)
    opt.state = opt.state._replace(step=INT64_MAX - 1)
    opt.step([np.ones(3)])
    assert opt.state.step == INT64_MAX
    before = snapshot(opt)
    with pytest.raises(ValueError, match=r"state.step must be <= 9223372036854775806 \(int64 counter\), "
                                         r"got 9223372036854775807"):
        opt.step([np.ones(3)])
    assert_unchanged(opt, before)


def test_a_checkpoint_at_the_last_int64_step_loads(tmp_path):
    """The counter may reach INT64_MAX; its checkpoint loads, and only the step after it is refused."""
    opt = Adam([np.ones(3)], lr=0.1)
    opt.state = opt.state._replace(step=INT64_MAX - 1)
    opt.step([np.ones(3)])
    opt.save(tmp_path / "last.npz")
    other = Adam([np.zeros(3)], lr=0.1)
    other.load(tmp_path / "last.npz")
    assert other.state.step == INT64_MAX and other.params[0].tolist() == opt.params[0].tolist()
    with pytest.raises(ValueError, match=r"state.step must be <= 9223372036854775806"):
        other.step([np.ones(3)])


# Item 17: torch users' habits ----------------------------------------------------------------------------------

def test_betas_as_torch_spells_them():
    opt = Adam([np.zeros(2)], lr=0.1, betas=(0.8, 0.99))
    assert (opt.config.beta1, opt.config.beta2) == (0.8, 0.99)
    with pytest.raises(TypeError, match=r"pass either betas or beta1/beta2, not both \(got betas=\(0.8, 0.99\) "
                                        r"and beta2=0.9\)"):
        Adam([np.zeros(2)], betas=(0.8, 0.99), beta2=0.9)
    with pytest.raises(ValueError, match=r"betas must hold 2 values \(beta1, beta2\), got 3: \(0.9, 0.9, 0.9\)"):
        Adam([np.zeros(2)], betas=(0.9, 0.9, 0.9))
    with pytest.raises(TypeError, match=r"betas must be a tuple \(beta1, beta2\), got float: 0.9"):
        Adam([np.zeros(2)], betas=0.9)
    with pytest.raises(ValueError, match=r"betas=\(0.9, 1.0\): beta2 must be in \[0, 1\), got 1.0"):
        Adam([np.zeros(2)], betas=(0.9, 1.0))


@pytest.mark.parametrize("path", PATHS)
def test_lr_is_read_and_set_on_the_optimizer_and_every_path_uses_it(path):
    # Before: Adam had no lr; `opt.lr = 0.01` made a new attribute and the steps kept the old rate.
    x = param(path, [1.0, -2.0, 3.0])
    opt = optimizer(path, [x], lr=0.1)
    ref, state = [np.array(x)], adam_np.init([np.array(x)])
    rng = np.random.default_rng(0)
    for lr in (0.1, 0.01, 0.5, lambda t: 1.0 / t):
        opt.lr = lr
        assert opt.lr is lr or opt.lr == lr
        g = rng.normal(size=3)
        opt.step([g])
        ref, state = adam_np.update([g], state, ref, AdamConfig(lr=lr))
        assert x.tobytes() == np.ascontiguousarray(ref[0]).tobytes()
        assert opt.backend == (None if path == "pure" else path)  # still on the kernel


def test_setting_a_bad_lr_changes_nothing():
    opt = Adam([np.zeros(2)], lr=0.1)
    for bad, error, message in [(-1.0, ValueError, r"lr must be > 0, got -1.0"),
                                (float("nan"), ValueError, r"lr must be finite, got nan"),
                                ("fast", TypeError, r"lr must be a real number, got str: 'fast'")]:
        with pytest.raises(error, match=message):
            opt.lr = bad
        assert opt.lr == 0.1 and opt.config.lr == 0.1


def test_repr_says_what_the_optimizer_holds():
    opt = Adam([np.zeros((2, 2)), np.zeros(2)], lr=0.01, backend="numpy", weight_decay=0.1)
    opt.step([np.ones((2, 2)), np.ones(2)])
    assert repr(opt) == ("Adam(2 params, 6 elements, float64, lr=0.01, betas=(0.9, 0.999), eps=1e-08, "
                         "weight_decay=0.1, step=1, backend='numpy')")
    assert repr(Adam([np.zeros(3, np.float32)], lr=lambda t: 0.1)).startswith(
        "Adam(1 param, 3 elements, float32, lr=<lambda>, ")


# Item 7: a step whose state would overflow -----------------------------------------------------------------------

OVERFLOWS = [(np.float16, 300.0), (np.float32, 1e20), (np.float64, 1e160)]  # g*g beyond the dtype's largest


@pytest.mark.parametrize("path, dtype, big", [(path, dtype, big) for path in PATHS for dtype, big in OVERFLOWS
                                              if not (path == "numba" and dtype == np.float16)])  # no float16 loop
def test_state_overflow_raises_and_changes_nothing(path, dtype, big):
    # Before: s became inf and the parameter froze for good, silently, even under nonfinite="raise".
    x = param(path, [1.0, 2.0, 3.0], dtype)
    opt = optimizer(path, [np.ones(2, dtype), x], lr=0.1, moment_dtype=dtype)
    opt.step([np.ones(2, dtype), np.ones(3, dtype)])
    before = snapshot(opt)
    with pytest.raises(FloatingPointError, match=rf"step 2 would make state.s\[1\] \({np.dtype(dtype)}\) NaN or inf "
                                                 r"although the gradients are finite: an overflow"):
        with np.errstate(over="ignore"):
            opt.step([np.ones(2, dtype), np.array([1.0, big, 1.0], dtype)])
    assert_unchanged(opt, before)


@pytest.mark.parametrize("path", PATHS)
def test_state_overflow_is_skipped_under_skip_and_applied_under_propagate(path):
    big = np.array([1.0, 1e20, 1.0], np.float32)
    x = param(path, [1.0, 2.0, 3.0], np.float32)
    opt = optimizer(path, [x], lr=0.1, nonfinite="skip")
    before = snapshot(opt)
    with np.errstate(over="ignore"):
        opt.step([big])
    assert_unchanged(opt, before)
    assert opt.state.skipped == 1
    opt.config = AdamConfig(lr=0.1, nonfinite="propagate")
    with np.errstate(over="ignore", invalid="ignore"):
        opt.step([big])
    assert opt.state.step == 1 and np.isinf(opt.state.s[0][1]) and x[1] == 2.0  # frozen: v / sqrt(inf) = 0


def test_state_overflow_raises_on_dask_update():
    da = pytest.importorskip("dask.array")
    x = da.from_array(np.ones(4, np.float32), chunks=2)
    state = adam_np.init(x)
    g = da.from_array(np.array([1.0, 1.0, 1e20, 1.0], np.float32), chunks=2)
    with pytest.raises(FloatingPointError, match=r"grads contain NaN or inf|would make"):
        with np.errstate(over="ignore"):
            adam_np.update(g, state, x, AdamConfig(lr=0.1))
