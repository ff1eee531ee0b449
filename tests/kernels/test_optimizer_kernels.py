"""The stateful Adam on the kernels: in place on the caller's arrays, bit-for-bit the pure update, atomic."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import adam_np
from adam_np import Adam, AdamConfig
from adam_np.kernels import numpy_kernel

BACKENDS = ["numpy", "numba"]


def problem(dtype, shapes=((5, 1), (1,), (3, 4)), steps=200, seed=0):
    rng = np.random.default_rng(seed)
    params = [rng.normal(size=shape).astype(dtype) for shape in shapes]
    grads = [[(rng.normal(size=p.shape) * 10.0 ** rng.uniform(-2, 2)).astype(dtype) for p in params]
             for _ in range(steps)]
    return params, grads


def snapshot(opt):
    return [x.tobytes() for x in [*opt.params, *opt.state.v, *opt.state.s]] + [opt.state.step, opt.state.skipped]


def run_pure(params, grads, config, fold=False):
    params, state = [p.copy() for p in params], adam_np.init(params)
    for g in grads:
        params, state = adam_np.update(g, state, params, config, fold_bias_correction=fold)
    return params, state


def assert_same(opt, params, state):
    assert opt.state.step == state.step
    for a, b in zip([*opt.params, *opt.state.v, *opt.state.s], [*params, *state.v, *state.s]):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("config", [
    AdamConfig(),
    AdamConfig(lr=0.01, eps=1e-6, nonfinite="propagate"),
    AdamConfig(lr=lambda t: 0.05 / t ** 0.5, eps_mode="hat", eps=1e-7, weight_decay=0.01, maximize=True),
    AdamConfig(lr=0.02, eps_mode="root", eps=1e-12, beta1=0.5, nonfinite="skip"),
    (AdamConfig(lr=0.01, nonfinite="propagate"), True),
    (AdamConfig(lr=lambda t: 0.1 / t, eps_mode="root", eps=1e-6, weight_decay=0.1), True),
], ids=["defaults", "book", "schedule+hat+wd+maximize", "root", "folded", "folded-root+schedule+wd"])
def test_kernel_path_equals_pure_path_over_many_steps(backend, dtype, config):
    config, fold = config if isinstance(config, tuple) else (config, False)
    params, grads = problem(dtype)
    pure_params, state = run_pure(params, grads, config, fold)
    ids = [id(p) for p in params]
    opt = Adam(params, config=config, backend=backend, fold_bias_correction=fold)
    assert opt.backend == backend
    for g in grads:
        opt.step(g)
    assert [id(p) for p in opt.params] == ids  # the caller's own arrays, updated in place
    assert_same(opt, pure_params, state)


@pytest.mark.parametrize("backend", BACKENDS)
def test_large_arrays_over_threads(backend):
    params, grads = problem(np.float32, shapes=((numpy_kernel.PARALLEL_MIN * 2 + 3,), (7,)), steps=4)
    pure_params, state = run_pure(params, grads, AdamConfig())
    opt = Adam(params, backend=backend)
    for g in grads:
        opt.step(g)
    assert_same(opt, pure_params, state)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_flat_buffer_optimizer_is_one_buffer_and_matches_pure(backend, dtype):
    shapes = [(5, 1), (1,), (2, 3)]
    params, grads = problem(dtype, shapes=shapes, steps=50)
    pure_params, state = run_pure(params, grads, AdamConfig(lr=0.01))
    opt = Adam.from_shapes(shapes, dtype=dtype, lr=0.01, backend=backend)
    assert opt.backend == backend
    base = opt.params[0].base
    assert all(x.base is base for x in opt.params)  # views into one flat buffer
    assert all(np.shares_memory(g, opt.grads[0].base) for g in opt.grads)
    for x, x0 in zip(opt.params, params):
        x[...] = x0
    for i, g in enumerate(grads):
        if i % 2:
            for buf, gi in zip(opt.grads, g):
                buf[...] = gi
            opt.step(opt.grads)  # one kernel call over the flat buffers
        else:
            opt.step(g)  # any other gradient arrays: one call per array
    assert_same(opt, pure_params, state)


def test_from_shapes_validation():
    with pytest.raises(ValueError, match=r"shapes\[1\] must be a tuple of ints >= 0, got \(2, -1\)"):
        Adam.from_shapes([(1,), (2, -1)])
    with pytest.raises(TypeError, match="dtype must be a real floating dtype, got int64"):
        Adam.from_shapes([(1,)], dtype=np.int64)
    with pytest.raises(TypeError, match="shapes must be a list or tuple"):
        Adam.from_shapes(s for s in [(1,)])
    assert [x.shape for x in Adam.from_shapes([3, (2, 2)]).params] == [(3,), (2, 2)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad, error, message", [
    (lambda g: [g[0], g[1].astype(np.float32)], TypeError, r"grads\[1\] has dtype float32, expected float64"),
    (lambda g: [g[0], np.ones(2)], ValueError, r"grads\[1\] has shape \(2,\), expected \(1,\)"),
    (lambda g: [g[0]], ValueError, "grads"),
    (lambda g: [g[0], [1.0]], TypeError, r"grads\[1\]"),
    (lambda g: [g[0], torch.ones(1, dtype=torch.float64)], TypeError, "mix array libraries"),
    (lambda g: g[0], TypeError, "grads must be a list or tuple"),
], ids=["dtype", "shape", "count", "not-an-array", "library", "not-a-list"])
def test_bad_grads_change_nothing(backend, bad, error, message):
    params, grads = problem(np.float64, shapes=((5, 1), (1,)), steps=3)
    opt = Adam(params, lr=0.1, backend=backend)
    opt.step(grads[0])
    before = snapshot(opt)
    with pytest.raises(error, match=message):
        opt.step(bad(grads[1]))
    assert snapshot(opt) == before
    opt.step(grads[1])  # and the optimizer still works
    assert opt.state.step == 2


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("flat", [False, True])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_raise_changes_nothing_and_skip_is_atomic(backend, flat, bad):
    shapes = [(numpy_kernel.PARALLEL_MIN + 5,), (4,)]
    params, grads = problem(np.float32, shapes=shapes, steps=2)
    grads[1][1][3] = bad  # the LAST array holds the bad value: no earlier array may be written
    for policy in ("raise", "skip"):
        if flat:
            opt = Adam.from_shapes(shapes, dtype=np.float32, nonfinite=policy, backend=backend)
            for x, x0 in zip(opt.params, params):
                x[...] = x0
        else:
            opt = Adam([p.copy() for p in params], nonfinite=policy, backend=backend)

        def step(g, opt=opt, flat=flat):
            if flat:
                for buf, gi in zip(opt.grads, g):
                    buf[...] = gi
                g = opt.grads
            opt.step(g)

        step(grads[0])
        before = snapshot(opt)
        if policy == "raise":
            with pytest.raises(FloatingPointError, match="grads contain NaN or inf at step 2; nothing was updated"):
                step(grads[1])
            assert snapshot(opt) == before
        else:
            step(grads[1])
            assert snapshot(opt)[:-1] == before[:-1] and opt.state.skipped == 1 and opt.state.step == 1
        assert opt.backend == backend


@pytest.mark.parametrize("backend", BACKENDS)
def test_nonfinite_propagate_computes_like_pure(backend):
    params, grads = problem(np.float64, shapes=((6,),), steps=2)
    grads[1][0][2] = np.nan
    config = AdamConfig(nonfinite="propagate")
    pure_params, state = run_pure(params, grads, config)
    opt = Adam(params, config=config, backend=backend)
    for g in grads:
        opt.step(g)
    for a, b in zip([*opt.params, *opt.state.v], [*pure_params, *state.v]):
        np.testing.assert_array_equal(a, b)  # NaN where the pure path has NaN, equal elsewhere


@pytest.mark.parametrize("backend", BACKENDS)
def test_state_dict_round_trip_on_kernels(backend):
    shapes = [(5, 1), (1,)]
    params, grads = problem(np.float64, shapes=shapes, steps=20)
    pure_params, state = run_pure(params, grads, AdamConfig())
    a = Adam([p.copy() for p in params], backend=backend)
    for g in grads[:10]:
        a.step(g)
    b = Adam.from_shapes(shapes, backend=backend)  # flat buffers: load copies into them
    for x, y in zip(b.params, a.params):
        x[...] = y
    b.load_state_dict(a.state_dict())
    assert all(v.base is b.state.v[0].base for v in b.state.v)
    for g in grads[10:]:
        for buf, gi in zip(b.grads, g):
            buf[...] = gi
        b.step(b.grads)
    assert_same(b, pure_params, state)


def test_uncovered_arrays_and_configs_fall_back_to_the_pure_update():
    base = np.zeros((4, 2))
    strided = base[:, 0]  # not contiguous: no kernel, but still updated in place
    opt = Adam([strided], lr=0.5)
    assert opt.backend is None
    opt.step([np.ones(4)])
    np.testing.assert_allclose(base[:, 0], -0.5)
    assert opt.backend is None

    t = torch.zeros(3, dtype=torch.float64)
    opt = Adam([t], lr=0.5)
    assert opt.backend is None
    opt.step([torch.ones(3, dtype=torch.float64)])
    assert torch.allclose(t, torch.full((3,), -0.5, dtype=torch.float64))

    @dataclasses.dataclass(frozen=True)
    class VariantConfig(AdamConfig):
        amsgrad: bool = True

    opt = Adam([np.zeros(3)], config=VariantConfig())
    assert opt.backend is None
    with pytest.raises(ValueError, match="backend must be one of"):
        Adam([np.zeros(3)], backend="gpu")
    with pytest.raises(ValueError, match="backend='cupy' updates cupy arrays, got numpy arrays"):
        Adam([np.zeros(3)], backend="cupy")


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_contiguous_grad_step_keeps_the_kernel_path_and_the_values(backend):
    params, grads = problem(np.float64, shapes=((4, 3),), steps=6)
    pure_params, state = run_pure(params, grads, AdamConfig())
    opt = Adam(params, backend=backend)
    v_id = id(opt.state.v[0])
    for i, g in enumerate(grads):
        opt.step([np.asfortranarray(g[0])] if i == 2 else g)  # step 3 goes through the pure path
        assert opt.backend == backend and id(opt.state.v[0]) == v_id
    assert_same(opt, pure_params, state)


def test_replacing_config_or_state_is_honoured():
    x = np.ones(3)
    opt = Adam([x], lr=0.1)
    opt.step([np.ones(3)])
    opt.config = AdamConfig(lr=0.1, maximize=True)
    ref, state = [x.copy()], adam_np.AdamState(1, [v.copy() for v in opt.state.v], [s.copy() for s in opt.state.s])
    opt.step([np.ones(3)])
    (ref,), state = adam_np.update([np.ones(3)], state, ref, opt.config)
    assert x.tobytes() == ref.tobytes()
    opt.state = adam_np.init([x])
    opt.step([np.ones(3)])
    assert opt.state.step == 1


@pytest.mark.parametrize("config", [
    AdamConfig(variant="amsgrad"), AdamConfig(variant="nadam"), AdamConfig(variant="yogi", eps=1e-3),
    AdamConfig(weight_decay=0.01, weight_decay_mode="decoupled"), AdamConfig(eps_root=1e-8),
], ids=["amsgrad", "nadam", "yogi", "adamw", "eps_root"])
def test_variant_configs_fall_back_to_the_pure_update(config):
    params, grads = problem(np.float64, shapes=((3,), (2, 2)), steps=5)
    pure_params, state = [p.copy() for p in params], adam_np.init(params, config)
    opt = Adam(params, config=config)
    assert opt.backend is None
    for g in grads:
        opt.step(g)
        pure_params, state = adam_np.update(g, state, pure_params, config)
    for a, b in zip(opt.params, pure_params):
        assert a.tobytes() == b.tobytes()


def test_mixed_precision_state_falls_back_and_float16_moments_use_the_numpy_kernel():
    x = np.ones(4, dtype=np.float16)
    assert Adam([x]).backend is None  # float32 moments and master copy: the pure update
    opt = Adam([x], moment_dtype=np.float16, master=False)
    assert opt.backend == "numpy"  # auto: numba's loop has no float16, the NumPy kernel has
    ref, state = [x.copy()], adam_np.init([x.copy()], moment_dtype=np.float16, master=False)
    g = np.linspace(-2, 3, 4).astype(np.float16)
    for _ in range(20):
        opt.step([g])
        ref, state = adam_np.update([g], state, ref, opt.config)
    assert x.tobytes() == ref[0].tobytes()


@pytest.mark.parametrize("backend", BACKENDS)
def test_params_made_read_only_later_change_nothing(backend):
    params, grads = problem(np.float64, shapes=((3,), (2,)), steps=2)
    opt = Adam(params, backend=backend)
    opt.step(grads[0])
    params[1].flags.writeable = False
    before = snapshot(opt)
    with pytest.raises(ValueError, match=r"params\[1\] is not writeable in place"):
        opt.step(grads[1])
    assert snapshot(opt) == before


def test_numba_loops_are_compiled_when_the_optimizer_is_built():
    # The first step must not pay numba's specialisation inside a training loop's timer.
    from adam_np.kernels import numba_kernel

    def seven_float64(dispatcher):  # one loop for all arrays, specialised per dtype and number of arrays
        return [sig for sig in dispatcher.signatures if sig[0].count == 7 and str(sig[0].dtype.dtype) == "float64"]

    assert not seven_float64(numba_kernel._serial)
    xs = [np.ones((1, 1, 1, 1, 1, 2)) for _ in range(7)]
    opt = Adam(xs, backend="numba")
    assert opt.backend == "numba" and seven_float64(numba_kernel._serial)
    assert all(x.tolist() == np.ones((1, 1, 1, 1, 1, 2)).tolist() for x in xs)  # nothing written by the warm-up


def _pure_reference(params, grads_seq, config, state=None):
    params = [p.copy() for p in params]
    state = adam_np.init(params) if state is None else state
    for grads in grads_seq:
        params, state = adam_np.update(grads, state, params, config)
    return params, state


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_from_shapes_after_the_state_is_replaced_uses_the_new_moments(backend):
    opt = Adam.from_shapes([(3,)], lr=0.1, backend=backend)
    rng = np.random.default_rng(0)
    grads_seq = [[rng.normal(size=3)] for _ in range(4)]
    opt.state = adam_np.init(opt.params)._replace(v=[np.array([0.1, -0.2, 0.05])], s=[np.full(3, 0.01)])
    start = [p.copy() for p in opt.params]
    ref, ref_state = _pure_reference(start, grads_seq, opt.config, opt.state)
    for g in grads_seq:
        opt.grads[0][...] = g[0]
        opt.step(opt.grads)
    assert opt.params[0].tobytes() == ref[0].tobytes()
    assert opt.state.v[0].tobytes() == ref_state.v[0].tobytes()


def test_from_shapes_with_a_replaced_gradient_item_uses_it():
    opt = Adam.from_shapes([(3,)], lr=0.1)
    opt.grads[0] = np.full(3, 5.0)  # no longer a view of the flat gradient buffer
    opt.step(opt.grads)
    np.testing.assert_allclose(opt.params[0], -0.1)


def test_from_shapes_read_only_param_fails_and_writes_nothing():
    opt = Adam.from_shapes([(3,), (2,)], lr=0.1)
    opt.grads[0][...] = 1.0
    opt.grads[1][...] = 1.0
    opt.params[0].flags.writeable = False
    with pytest.raises(ValueError, match=r"params\[0\] is not writeable"):
        opt.step(opt.grads)
    assert opt.params[1].tolist() == [0.0, 0.0] and opt.state.step == 0


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_gradient_that_is_another_parameter_matches_the_pure_update(backend):
    a, b = np.array([1.0, -2.0]), np.array([3.0, 0.5])
    ref, _ = _pure_reference([a, b], [[b.copy(), a.copy()]], AdamConfig(lr=0.1))
    opt = Adam([a, b], lr=0.1, backend=backend)
    opt.step([b, a])  # each gradient is the other parameter's own memory
    assert a.tobytes() == ref[0].tobytes() and b.tobytes() == ref[1].tobytes()


def _unaligned_copy(a):
    """A writeable copy of ``a`` at an odd byte offset (numba types it as a different, unaligned array)."""
    raw = np.zeros(a.nbytes + 1, np.uint8)
    out = np.frombuffer(raw.data, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    out[...] = a
    return out


@pytest.mark.parametrize("kind", ["read-only", "unaligned"])
def test_numba_gradients_of_another_numba_type_take_the_dispatcher_with_the_same_values(kind):
    """A read-only or unaligned gradient (another numba type than the parameter's) gives the same bits."""
    params, grads = problem(np.float64, steps=8)
    config = AdamConfig(lr=0.01, nonfinite="propagate")
    pure_params, state = run_pure(params, grads, config)
    opt = Adam(params, config=config, backend="numba")
    for i, g in enumerate(grads):
        if i % 2:
            if kind == "read-only":
                g = [x.copy() for x in g]
                for x in g:
                    x.flags.writeable = False
            else:
                g = [_unaligned_copy(x) for x in g]
                assert not g[0].flags.aligned
        opt.step(g)
    assert_same(opt, pure_params, state)
