"""The in-place kernels compute exactly what the pure ``adam_np.update`` computes."""

from __future__ import annotations

import dataclasses
import importlib
import os
import subprocess
import sys
import tracemalloc
import types
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import adam_np
from adam_np import AdamConfig
from adam_np.core.adam import coefficients
from adam_np.kernels import get_kernel, numpy_kernel, resolve_backend

from conftest import CUPY_AVAILABLE, assert_bitwise, requires_gpu

CPU_BACKENDS = ["numpy", "numba"]


LARGE_CONFIGS = [  # (config, fold_bias_correction) or a config: each kernel's forms on large arrays
    AdamConfig(nonfinite="propagate"),
    AdamConfig(eps_mode="root", weight_decay=0.1, maximize=True, nonfinite="propagate"),
    AdamConfig(eps_mode="hat", lr=0.01, weight_decay=1e-3, nonfinite="propagate"),
    (AdamConfig(nonfinite="propagate"), True),
    (AdamConfig(eps_mode="root", eps=1e-3, maximize=True, nonfinite="propagate"), True),
]
LARGE_IDS = ["outside", "root+wd+max", "hat+wd", "folded", "folded-root+max"]


def split(config):
    """``(config, fold_bias_correction)``: a config, or ``(config, True)`` for a folded step."""
    return config if isinstance(config, tuple) else (config, False)


def coefs(config, step):
    config, fold = split(config)
    return coefficients(config, step, fold_bias_correction=fold)


def pure_step(p, g, v, s, config, step):
    """One step of adam_np.update from state (step-1, v, s): the reference."""
    config, fold = split(config)
    new_p, state = adam_np.update(g, adam_np.AdamState(step - 1, v, s), p, config, fold_bias_correction=fold)
    return new_p, state.v, state.s


def kernel_step(backend, p, g, v, s, config, step):
    p, v, s = p.copy(), v.copy(), s.copy()
    assert get_kernel(backend).step([p], [g], [v], [s], coefs(config, step), check=False)
    return p, v, s


configs = st.builds(
    AdamConfig,
    lr=st.sampled_from([1e-3, 0.1, 3.0]),
    beta1=st.sampled_from([0.0, 0.5, 0.9]),
    beta2=st.sampled_from([0.0, 0.9, 0.999]),
    eps=st.sampled_from([5e-324, 1e-8, 1e-3]),  # 5e-324: 0 in float32 (AdamConfig refuses eps=0), so 0/0 too
    eps_mode=st.sampled_from(adam_np.EPS_MODES),
    weight_decay=st.sampled_from([0.0, 1e-2, 0.5]),
    maximize=st.booleans(),
    nonfinite=st.just("propagate"),
).flatmap(lambda c: st.just(c) if c.eps_mode == "hat" else
          st.sampled_from([c, (c, True)]))
shapes = st.sampled_from([(), (1,), (6,), (5, 1), (3, 4), (2, 3, 5), (0,), (1000,)])


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@settings(max_examples=60)
@given(config=configs, shape=shapes, dtype=st.sampled_from(["float32", "float64"]), step=st.integers(1, 50),
       seed=st.integers(0, 2**32 - 1))
def test_kernel_equals_pure_update_bit_for_bit(backend, config, shape, dtype, step, seed):
    rng = np.random.default_rng(seed)
    p, g, v = (rng.normal(size=shape) * 10.0 ** rng.uniform(-3, 3) for _ in range(3))
    s = rng.normal(size=shape) ** 2
    p, g, v, s = (np.asarray(a, dtype=dtype) for a in (p, g, v, s))
    # zeros of both signs, to catch a sign-of-zero difference
    if p.size:
        p.reshape(-1)[0], g.reshape(-1)[-1] = -0.0, 0.0
    with np.errstate(all="ignore"):  # eps 5e-324 (0 in float32) with s = 0 gives 0/0 on both paths
        expected = pure_step(p, g, v, s, config, step)
        got = kernel_step(backend, p, g, v, s, config, step)
    for a, b in zip(got, expected):
        assert_bitwise(a, b)


@settings(max_examples=20)
@given(config=configs, step=st.integers(1, 20), seed=st.integers(0, 2**32 - 1))
def test_numpy_kernel_float16_bit_for_bit(config, step, seed):
    rng = np.random.default_rng(seed)
    p, g, v = (rng.normal(size=37).astype(np.float16) for _ in range(3))
    s = (rng.normal(size=37) ** 2).astype(np.float16)
    with np.errstate(all="ignore"):
        expected = pure_step(p, g, v, s, config, step)
        got = kernel_step("numpy", p, g, v, s, config, step)
    for a, b in zip(got, expected):
        assert_bitwise(a, b)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("config", LARGE_CONFIGS, ids=LARGE_IDS)
def test_kernels_on_arrays_split_over_threads_and_chunks(backend, dtype, config):
    n = 2 * numpy_kernel.PARALLEL_MIN + numpy_kernel.CHUNK // 3  # several threads, a partial last chunk
    rng = np.random.default_rng(1)
    p, g, v = (rng.normal(size=n).astype(dtype) for _ in range(3))
    s = (rng.normal(size=n) ** 2).astype(dtype)
    expected = pure_step(p, g, v, s, config, 7)
    for a, b in zip(kernel_step(backend, p, g, v, s, config, 7), expected):
        assert_bitwise(a, b)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("check", [False, True], ids=["propagate", "checked"])
def test_several_large_arrays_in_one_call_are_all_written(backend, check):
    """Two arrays above every kernel's threading threshold and a small one, in one call: each is stepped exactly
    (a parallel loop that silently wrote nothing for tuples of arrays passed the one-array tests)."""
    from adam_np.kernels import numba_kernel

    n = max(numba_kernel.PARALLEL_MIN, numpy_kernel.PARALLEL_MIN) + 1001
    rng = np.random.default_rng(5)
    arrays = [[rng.normal(size=m) for _ in range(3)] + [rng.random(m)] for m in (n, n + 7, 5)]
    config = AdamConfig(nonfinite="raise" if check else "propagate")
    expected = [pure_step(p, g, v, s, config, 4) for p, g, v, s in arrays]
    ps, gs, vs, ss = ([a[i].copy() for a in arrays] for i in range(4))
    assert get_kernel(backend).step(ps, gs, vs, ss, coefs(config, 4), check=check)
    for got, want in zip(zip(ps, vs, ss), expected):
        for a, b in zip(got, want):
            assert_bitwise(a, b)


def test_numpy_kernel_same_result_on_one_and_several_threads():
    n = 3 * numpy_kernel.PARALLEL_MIN + 5
    rng = np.random.default_rng(2)
    p, g, v, s = (rng.random(n) for _ in range(4))
    old = numpy_kernel.set_num_threads(1)
    try:
        one = kernel_step("numpy", p, g, v, s, AdamConfig(), 3)
        numpy_kernel.set_num_threads(3)
        three = kernel_step("numpy", p, g, v, s, AdamConfig(), 3)
    finally:
        numpy_kernel.set_num_threads(old)
    for a, b in zip(one, three):
        assert_bitwise(a, b)
    with pytest.raises(ValueError, match="n must be an int >= 1, got 0"):
        numpy_kernel.set_num_threads(0)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("alias", ["p", "v", "s"])
@pytest.mark.parametrize("options", [
    {},  # g used as given: the alias is visible (weight decay and maximize make a copy of g first)
    {"eps_mode": "hat"},
    {"eps_mode": "root", "fold": True},
    {"weight_decay": 0.1},
    {"maximize": True},
], ids=["plain", "hat", "root-folded", "weight-decay", "maximize"])
@pytest.mark.parametrize("n", [numpy_kernel.CHUNK + 17, 2 * numpy_kernel.PARALLEL_MIN + 3])  # serial, threaded
def test_gradient_may_be_one_of_the_updated_arrays(backend, alias, options, n):
    options = dict(options)
    rng = np.random.default_rng(3)
    p, v, s = rng.normal(size=n), rng.normal(size=n), rng.random(n)
    fold = options.pop("fold", False)
    config = (AdamConfig(nonfinite="propagate", **options), fold)
    arrays = {"p": p, "v": v, "s": s}
    expected = pure_step(p, arrays[alias], v, s, config, 2)
    p, v, s = p.copy(), v.copy(), s.copy()
    g = {"p": p, "v": v, "s": s}[alias]
    get_kernel(backend).step([p], [g], [v], [s], coefs(config, 2), check=False)
    for a, b in zip((p, v, s), expected):
        assert_bitwise(a, b)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("n", [1, 100, 3 * numpy_kernel.PARALLEL_MIN + 1])
def test_checked_step_writes_nothing_when_a_value_would_not_be_finite(backend, n):
    kernel = get_kernel(backend)
    for dtype in (np.float32, np.float64):
        g = np.ones(n, dtype)
        g[0] = g[-1] = np.finfo(dtype).max / 4  # large but finite, and g*g overflows: s would be inf
        for bad in (None, np.nan, np.inf, -np.inf):
            h = g.copy()
            if bad is not None:
                h[n // 2] = bad
            p, v, s = np.ones(n, dtype), np.zeros(n, dtype), np.zeros(n, dtype)
            assert not kernel.step([np.ones(1, dtype), p], [np.ones(1, dtype), h], [np.zeros(1, dtype), v],
                                   [np.zeros(1, dtype), s], coefficients(AdamConfig(), 1))
            assert (p == 1).all() and (v == 0).all() and (s == 0).all()
        ok = np.ones(n, dtype)
        assert kernel.step([p], [ok], [v], [s], coefficients(AdamConfig(), 1)) and (p < 1).all()


@pytest.mark.parametrize("backend, measured", [("numpy", "7 kB"), ("numba", "1.2 kB")])
def test_kernel_makes_no_temporary_of_the_array_size(backend, measured):
    """README's "peak extra memory" row (``measured`` there, < 16 kB tested). numba's allocator (NRT) goes through
    Python's raw allocator, so tracemalloc also sees an array allocated inside its compiled loops."""
    n = 2_000_000  # 16 MB per float64 array
    p, g, v, s = (np.full(n, 0.5) for _ in range(4))
    kernel = get_kernel(backend)
    c = coefficients(AdamConfig(), 1)
    kernel.step([p], [g], [v], [s], c)  # first calls: numba compiles, the NumPy kernel allocates its per-thread scratch
    tracemalloc.start()
    try:
        assert kernel.step([p], [g], [v], [s], c)  # the check and the step
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16_000, f"peak extra memory {peak} bytes ({backend}; README: {measured})"


def test_kernels_run_plain_adam_and_an_unknown_config_type_falls_back():
    assert AdamConfig(eps_mode="root", weight_decay=0.3, maximize=True, nonfinite="skip").is_plain_adam

    @dataclasses.dataclass(frozen=True)
    class AmsgradConfig(AdamConfig):
        amsgrad: bool = False

    assert adam_np.Adam([np.zeros(3)], config=AmsgradConfig()).backend is None
    assert adam_np.Adam([np.zeros(3)], config=AdamConfig()).backend == "numba"


def test_resolve_backend():
    assert resolve_backend("auto", "numpy") == "numba"  # numba is installed in the test environment
    assert resolve_backend("auto", "cupy") == "cupy"
    assert resolve_backend("auto", "torch") is None
    with pytest.raises(ValueError, match="backend must be one of .* got 'fast'"):
        resolve_backend("fast")
    with pytest.raises(ValueError, match="backend='cupy' updates cupy arrays, got numpy arrays"):
        resolve_backend("cupy", "numpy")
    with pytest.raises(ValueError, match="backend must be one of"):
        get_kernel("auto")


def test_auto_falls_back_to_numpy_without_numba(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "numba" else real(name, *a))
    assert resolve_backend("auto", "numpy") == "numpy"
    with pytest.raises(ValueError, match="needs numba, which is not installed"):
        resolve_backend("numba", "numpy")


def test_package_and_cupy_kernel_import_without_importing_cupy_or_numba():
    code = ("import sys, adam_np, adam_np.kernels, adam_np.kernels.cupy_kernel; "
            "print(sorted(m for m in ('cupy', 'numba') if m in sys.modules))")
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(__import__("pathlib").Path(__file__).parents[2]))
    assert out.stdout.strip() == "[]"


def _cupy_arrays(rng, shape, dtype):
    import cupy as cp

    p, g, v = (rng.normal(size=shape) for _ in range(3))
    s = rng.normal(size=shape) ** 2
    return [cp.asarray(a.astype(dtype)) for a in (p, g, v, s)]


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("config", LARGE_CONFIGS, ids=LARGE_IDS)
def test_cupy_kernel_equals_pure_update_bit_for_bit(dtype, config):
    from adam_np.kernels import cupy_kernel

    rng = np.random.default_rng(4)
    p, g, v, s = _cupy_arrays(rng, (1000, 3), dtype)
    expected = pure_step(p, g, v, s, config, 5)
    p, v, s = p.copy(), v.copy(), s.copy()
    cupy_kernel.step([p], [g], [v], [s], coefs(config, 5), check=False)
    for a, b in zip((p, v, s), expected):
        assert_bitwise(a.get(), b.get())
    g[3, 1] = float("nan")
    assert not cupy_kernel.step([p], [g], [v], [s], coefs(config, 6))


@pytest.mark.gpu
@requires_gpu
def test_cupy_kernel_float16_computes_in_float32():
    from adam_np.kernels import cupy_kernel

    rng = np.random.default_rng(5)
    p, g, v, s = _cupy_arrays(rng, (257,), "float16")
    config = AdamConfig(lr=0.01, nonfinite="propagate")
    expected = pure_step(*(a.astype("float32") for a in (p, g, v, s)), config, 3)
    cupy_kernel.step([p], [g], [v], [s], coefs(config, 3), check=False)
    for a, b in zip((p, v, s), expected):
        assert_bitwise(a.get(), b.astype("float16").get())


@pytest.mark.gpu
@requires_gpu
def test_adam_on_cupy_arrays_uses_one_kernel_and_matches_pure():
    rng = np.random.default_rng(6)
    p, g, _, _ = _cupy_arrays(rng, (64, 3), "float32")
    ref = p.copy()
    opt = adam_np.Adam([p], lr=0.01)
    assert opt.backend == "cupy"
    state = adam_np.init([ref])
    for _ in range(5):
        opt.step([g])
        (ref,), state = adam_np.update([g], state, [ref], opt.config)
    assert_bitwise(p.get(), ref.get())


@pytest.mark.gpu
@requires_gpu
def test_flat_cupy_optimizer_is_one_launch_and_matches_pure():
    import cupy as cp

    opt = adam_np.Adam.from_shapes([(5, 1), (1,)], dtype="float32", xp=cp, lr=0.01)
    assert opt.backend == "cupy" and isinstance(opt.params[0], cp.ndarray)
    rng = np.random.default_rng(7)
    ref = [cp.asarray(rng.normal(size=x.shape).astype("float32")) for x in opt.params]
    for x, r in zip(opt.params, ref):
        x[...] = r
    state = adam_np.init(ref)
    for _ in range(4):
        for buf in opt.grads:
            buf[...] = cp.asarray(rng.normal(size=buf.shape).astype("float32"))
        ref, state = adam_np.update([g.copy() for g in opt.grads], state, ref, opt.config)
        opt.step(opt.grads)
    for a, b in zip(opt.params, ref):
        assert_bitwise(a.get(), b.get())


class _FakeCuda:
    def __init__(self, answer):
        self.answer = answer

    def is_available(self):
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@pytest.mark.parametrize("cupy_module, expected", [
    (None, False),  # not installed
    (types.SimpleNamespace(cuda=_FakeCuda(False)), False),  # installed, no device (this machine)
    (types.SimpleNamespace(cuda=_FakeCuda(RuntimeError("cudaErrorNoDevice"))), False),  # broken runtime
    (types.SimpleNamespace(cuda=_FakeCuda(True)), True),
])
def test_gpu_detection(monkeypatch, cupy_module, expected):
    import conftest

    monkeypatch.setitem(sys.modules, "cupy", cupy_module)  # None in sys.modules makes the import fail
    assert conftest._cupy_available() is expected


def test_gpu_tests_skip_cleanly_without_a_device(tmp_path):
    """A test marked with requires_gpu, run by pytest here: it skips with the reason where CuPy has no device."""
    (tmp_path / "conftest.py").write_text((Path(__file__).parents[1] / "conftest.py").read_text())
    (tmp_path / "test_gpu_only.py").write_text(
        "from conftest import requires_gpu\n\n\n@requires_gpu\ndef test_a():\n    import cupy\n"
        "    assert cupy.cuda.is_available()\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False,
                          env={k: v for k, v in os.environ.items() if k != "ADAM_NP_CI_STRICT_SKIPS"})
    if CUPY_AVAILABLE:
        assert "1 passed" in proc.stdout, proc.stdout
    else:
        assert "1 skipped" in proc.stdout and "CuPy has no CUDA device on this machine" in proc.stdout, proc.stdout
    assert proc.returncode == 0, proc.stdout + proc.stderr


textbook_configs = st.builds(
    AdamConfig,
    lr=st.sampled_from([1e-3, 0.01, 0.1, 3.0]),
    beta1=st.sampled_from([0.0, 0.5, 0.9]),
    beta2=st.sampled_from([0.0, 0.9, 0.999]),
    eps=st.sampled_from([5e-324, 1e-8, 1e-6, 1e-3]),  # 5e-324: 0 in float32
    nonfinite=st.just("propagate"),
)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@settings(max_examples=60)
@given(config=textbook_configs, shape=shapes, dtype=st.sampled_from(["float32", "float64"]),
       step=st.integers(1, 50), seed=st.integers(0, 2**32 - 1))
def test_kernel_equals_adam_step_bit_for_bit(backend, config, shape, dtype, step, seed):
    """Every kernel computes Algorithm 1 exactly as the four lines of adam_np.core.adam.adam_step."""
    from adam_np.core._xp import namespace_for
    from adam_np.core.adam import adam_step

    rng = np.random.default_rng(seed)
    p, g, v = (rng.normal(size=shape) * 10.0 ** rng.uniform(-3, 3) for _ in range(3))
    s = rng.normal(size=shape) ** 2
    p, g, v, s = (np.asarray(a, dtype=dtype) for a in (p, g, v, s))
    with np.errstate(all="ignore"):
        expected = adam_step(p, g, v, s, step, lr=config.lr, beta1=config.beta1, beta2=config.beta2, eps=config.eps,
                             xp=namespace_for("numpy"))
        got = kernel_step(backend, p, g, v, s, config, step)
    for a, b in zip(got, expected):
        assert_bitwise(a, np.asarray(b, dtype=dtype))


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cupy_kernel_equals_adam_step_bit_for_bit(dtype):
    import array_api_compat.cupy as cxp

    from adam_np.core.adam import adam_step
    from adam_np.kernels import cupy_kernel

    config = AdamConfig(lr=0.01, eps=1e-6, nonfinite="propagate")
    rng = np.random.default_rng(5)
    p, g, v, s = _cupy_arrays(rng, (1000, 3), dtype)
    expected = adam_step(p, g, v, s, 7, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-6, xp=cxp)
    p, v, s = p.copy(), v.copy(), s.copy()
    cupy_kernel.step([p], [g], [v], [s], coefs(config, 7), check=False)
    for a, b in zip((p, v, s), expected):
        assert_bitwise(a.get(), b.get())


STEP_INTO_CONFIGS = [AdamConfig(lr=0.1), AdamConfig(lr=0.1, eps_mode="root"), AdamConfig(lr=0.1, eps_mode="hat"),
                     (AdamConfig(lr=0.1), True), AdamConfig(lr=0.1, maximize=True, weight_decay=0.3)]


@pytest.mark.parametrize("config", STEP_INTO_CONFIGS, ids=["outside", "root", "hat", "fold", "wd"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numba_step_into_equals_step_and_leaves_its_inputs(config, dtype):
    """The out-of-place loop of the Dask path (kernels.dask_chunks) writes what the in-place step writes."""
    numba_kernel = pytest.importorskip("adam_np.kernels.numba_kernel")
    rng = np.random.default_rng(3)
    p, g, v = (rng.normal(size=1000).astype(dtype) for _ in range(3))
    s = (rng.normal(size=1000) ** 2).astype(dtype)
    for a in (p, g, v, s):
        a.flags.writeable = False  # Dask hands read-only chunks to tasks; the loop only reads them
    c = coefs(config, 7)
    out = np.empty((3, 1000), dtype)
    numba_kernel.step_into(p, g, v, s, out, c)
    want = [p.copy(), v.copy(), s.copy()]
    numba_kernel.step([want[0]], [g], [want[1]], [want[2]], c, check=False)
    for got, w in zip(out, want):
        assert_bitwise(got, w)
    assert not np.array_equal(out[0], p)  # inputs unchanged, outputs moved
