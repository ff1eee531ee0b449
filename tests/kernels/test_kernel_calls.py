"""``Adam.from_shapes`` takes a whole step in one kernel call; the caller's-arrays optimizer, one per array."""

from __future__ import annotations

import numpy as np
import pytest

from adam_np import Adam
from adam_np.kernels import numba_kernel, numpy_kernel

SHAPES = [(5, 3), (3,), (2, 2, 2)]
N = sum(int(np.prod(s)) for s in SHAPES)


def _steps(opt, grads, count=3):
    for _ in range(count):
        opt.step(grads)


def _spy(monkeypatch, kernel):
    """Every kernel.step call, as the sizes of the arrays it steps (a checked step is one call)."""
    calls = []
    real = kernel.step

    def spy(ps, gs, vs, ss, c, *, check=True):
        calls.append([p.size for p in ps])
        return real(ps, gs, vs, ss, c, check=check)

    monkeypatch.setattr(kernel, "step", spy)
    return calls


@pytest.fixture
def numpy_calls(monkeypatch):
    return _spy(monkeypatch, numpy_kernel)


@pytest.fixture
def numba_calls(monkeypatch):
    return _spy(monkeypatch, numba_kernel)


def test_from_shapes_is_one_numpy_kernel_call_per_step(numpy_calls):
    opt = Adam.from_shapes(SHAPES, lr=0.1, backend="numpy")
    for g in opt.grads:
        g[...] = 1.0
    _steps(opt, opt.grads)
    assert numpy_calls == [[N]] * 3
    assert opt.state.step == 3 and all(float(p.reshape(-1)[0]) < 0 for p in opt.params)


def test_caller_arrays_are_one_numpy_kernel_call_per_array(numpy_calls):
    params = [np.zeros(s) for s in SHAPES]
    opt = Adam(params, lr=0.1, backend="numpy")
    _steps(opt, [np.ones(s) for s in SHAPES])
    assert numpy_calls == [[int(np.prod(s)) for s in SHAPES]] * 3


def test_from_shapes_is_one_numba_kernel_call_per_step(numba_calls):
    opt = Adam.from_shapes(SHAPES, lr=0.1, backend="numba")
    for g in opt.grads:
        g[...] = 1.0
    _steps(opt, opt.grads)
    assert numba_calls == [[N]] * 3
    assert opt.state.step == 3


def test_from_shapes_with_other_gradients_falls_back_to_one_call_per_array(numpy_calls):
    """Gradients that are not the optimizer's own buffer views cannot use the flat buffer."""
    opt = Adam.from_shapes(SHAPES, lr=0.1, backend="numpy")
    _steps(opt, [np.ones(s) for s in SHAPES], count=1)
    assert numpy_calls == [[int(np.prod(s)) for s in SHAPES]]


def test_caller_arrays_are_one_compiled_numba_call_per_checked_step(monkeypatch):
    """numba: the check and the write of all arrays in one call of the compiled loop (its dispatch costs ~1 µs)."""
    opt = Adam([np.zeros(s) for s in SHAPES], lr=0.1, backend="numba")  # nonfinite="raise": a checked step
    calls, real = [], numba_kernel._serial
    monkeypatch.setattr(numba_kernel, "_serial", lambda ps, *rest: calls.append(len(ps)) or real(ps, *rest))
    _steps(opt, [np.ones(s) for s in SHAPES])
    assert calls == [len(SHAPES)] * 3 and opt.state.step == 3
