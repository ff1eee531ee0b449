r"""The numba kernel: one fused loop per step, parallel (``prange``) for large arrays.

Each element is read once and written once: the loop body is the scalar form of
:func:`adam_np.adam._adam_leaf`, with the coefficients (passed as float64) rounded to the
array dtype once per call, as NumPy rounds a Python float. No ``fastmath``: LLVM then
neither contracts ``a*b + c`` into an FMA nor reassociates; ``error_model="numpy"`` makes
``x/0`` give ±inf/NaN as NumPy does (not ZeroDivisionError); and ``sqrt``/``/`` are the
correctly rounded IEEE operations, so the result is bit-for-bit that of :func:`adam_np.update`
on float32 and float64 (the tests check it). Compiled with ``cache=True`` on first use.

Importing this module imports numba (an optional dependency, the ``numba`` extra);
:mod:`adam_np.kernels` imports it only when the numba backend is asked for.
"""

from __future__ import annotations

import time

import numba
import numpy as np

from ._common import Coefficients, Constants

__all__ = ["DTYPES", "PARALLEL_MIN", "all_finite", "compile_all", "step", "step_many"]

DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
"""The dtypes this kernel updates."""

PARALLEL_MIN = 1 << 15
"""Arrays of at least this many elements run the ``prange`` loop, smaller ones the serial one."""


def _coefs(dtype_like, k, lr, bc1, bc2, alpha):  # pragma: no cover - compiled by numba
    """The coefficients rounded to the array dtype (float64 -> float32 rounds to nearest, as NumPy)."""
    out = np.empty(10, dtype_like.dtype)
    out[0], out[1], out[2], out[3], out[4] = k[3], k[4], k[5], k[6], k[7]
    out[5], out[6], out[7], out[8], out[9] = lr, bc1, bc2, alpha, k[8]
    return out


def _body(i, p, g, v, s, kk, mode, maximize, decay):  # pragma: no cover - compiled by numba
    wd, b1, omb1, b2, omb2 = kk[0], kk[1], kk[2], kk[3], kk[4]
    lr, bc1, bc2, alpha, eps = kk[5], kk[6], kk[7], kk[8], kk[9]
    x = p[i]
    gi = g[i]
    if maximize:
        gi = -gi
    if decay:
        gi = gi + wd * x
    vi = b1 * v[i] + omb1 * gi
    si = b2 * s[i] + omb2 * (gi * gi)
    v[i] = vi
    s[i] = si
    if mode == 2:
        p[i] = x - alpha * vi / (np.sqrt(si) + eps)
    elif mode == 1:
        p[i] = x - lr * (vi / bc1) / np.sqrt(si / bc2 + eps)
    else:
        p[i] = x - lr * (vi / bc1) / (np.sqrt(si / bc2) + eps)


_coefs_jit = numba.njit(inline="always", error_model="numpy")(_coefs)
_body_jit = numba.njit(inline="always", error_model="numpy")(_body)


@numba.njit(cache=True, error_model="numpy")
def _serial(p, g, v, s, k, lr, bc1, bc2, alpha):  # pragma: no cover - compiled by numba
    p, g, v, s = p.reshape(-1), g.reshape(-1), v.reshape(-1), s.reshape(-1)
    kk = _coefs_jit(p, k, lr, bc1, bc2, alpha)
    mode, maximize, decay = int(k[0]), k[1] != 0.0, k[2] != 0.0
    for i in range(p.shape[0]):
        _body_jit(i, p, g, v, s, kk, mode, maximize, decay)


@numba.njit(cache=True, error_model="numpy")
def _parallel(p, g, v, s, k, lr, bc1, bc2, alpha):  # pragma: no cover - compiled by numba
    kk = _coefs_jit(p, k, lr, bc1, bc2, alpha)
    _parallel_loop(p.reshape(-1), g.reshape(-1), v.reshape(-1), s.reshape(-1), kk,
                   int(k[0]), k[1] != 0.0, k[2] != 0.0)


# The prange loop sits in its own function on 1-D arrays: rebinding p, g, v, s to their 1-D
# views inside a parallel function produced wrong results with numba 0.68 (caught by the tests).
@numba.njit(cache=True, parallel=True, error_model="numpy")
def _parallel_loop(p, g, v, s, kk, mode, maximize, decay):  # pragma: no cover - compiled by numba
    for i in numba.prange(p.shape[0]):
        _body_jit(i, p, g, v, s, kk, mode, maximize, decay)


@numba.njit(cache=True, error_model="numpy")
def _finite_serial(g):  # pragma: no cover - compiled by numba
    g = g.reshape(-1)
    for i in range(g.shape[0]):
        if not np.isfinite(g[i]):
            return False
    return True


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _finite_parallel_loop(g):  # pragma: no cover - compiled by numba
    bad = 0
    for i in numba.prange(g.shape[0]):
        bad += 0 if np.isfinite(g[i]) else 1
    return bad == 0


@numba.njit(cache=True, error_model="numpy")
def _finite_parallel(g):  # pragma: no cover - compiled by numba
    return _finite_parallel_loop(g.reshape(-1))


_constant_arrays: dict = {}


def _constants_array(k: Constants) -> np.ndarray:
    """``(mode, maximize, decay, wd, beta1, 1-beta1, beta2, 1-beta2, eps)`` as float64, cached per Constants."""
    out = _constant_arrays.get(k)
    if out is None:
        if len(_constant_arrays) > 64:
            _constant_arrays.clear()
        out = _constant_arrays[k] = np.array(
            [k.mode, k.maximize, k.weight_decay != 0.0, k.weight_decay, k.beta1, k.one_minus_beta1, k.beta2,
             k.one_minus_beta2, k.eps], dtype=np.float64)
    return out


def step(p: np.ndarray, g: np.ndarray, v: np.ndarray, s: np.ndarray, c: Coefficients) -> None:
    """One Adam step in place on C-contiguous float32/float64 arrays of one shape and dtype.

    Parameters
    ----------
    p, g, v, s : numpy.ndarray
        Parameters, gradient, first and second moment (one dtype, one shape); ``p``, ``v``, ``s``
        are overwritten. ``g`` may be one of them (the same elements), but must not partially overlap them.
    c : Coefficients
        From :func:`adam_np.kernels.coefficients`.

    Examples
    --------
    >>> import numpy as np
    >>> from adam_np import AdamConfig
    >>> from adam_np.kernels import coefficients
    >>> p, v, s = np.array([1.0, -2.0]), np.zeros(2), np.zeros(2)
    >>> step(p, np.array([0.5, -4.0]), v, s, coefficients(AdamConfig(), 0.1, 1))
    >>> p
    array([ 0.9, -1.9])
    """
    step_many([p], [g], [v], [s], c)


def step_many(ps: list, gs: list, vs: list, ss: list, c: Coefficients) -> None:
    """:func:`step` on each ``(ps[i], gs[i], vs[i], ss[i])``.

    Parameters
    ----------
    ps, gs, vs, ss : list of numpy.ndarray
        C-contiguous arrays, as for :func:`step`.
    c : Coefficients

    Examples
    --------
    >>> import numpy as np
    >>> from adam_np import AdamConfig
    >>> from adam_np.kernels import coefficients
    >>> ps = [np.ones(2), np.ones((1, 1), np.float32)]
    >>> step_many(ps, ps, [np.zeros(2), np.zeros((1, 1), np.float32)], [np.zeros(2), np.zeros((1, 1), np.float32)],
    ...           coefficients(AdamConfig(), 0.5, 1))
    >>> ps
    [array([0.5, 0.5]), array([[0.5]], dtype=float32)]
    """
    k = _constants_array(c.constants)
    lr, bc1, bc2, alpha = c.lr, c.bc1, c.bc2, c.alpha
    for p, g, v, s in zip(ps, gs, vs, ss):
        (_parallel if p.size >= PARALLEL_MIN else _serial)(p, g, v, s, k, lr, bc1, bc2, alpha)


def all_finite(g: np.ndarray) -> bool:
    """Whether a C-contiguous float32/float64 array holds no NaN and no ±inf (one read, no temporary).

    Parameters
    ----------
    g : numpy.ndarray

    Returns
    -------
    bool

    Examples
    --------
    >>> import numpy as np
    >>> all_finite(np.array([1.0, 2.0])), all_finite(np.array([1.0, -np.inf]))
    (True, False)
    """
    return bool((_finite_parallel if g.size >= PARALLEL_MIN else _finite_serial)(g))


def compile_all() -> dict[str, float]:
    """Compile (or load from numba's cache) the 1-D and 2-D specialisations; seconds taken per dtype.

    Returns
    -------
    dict
        ``{"float32": seconds, "float64": seconds}``: the first-call cost the kernel would
        otherwise add to the first step.

    Examples
    --------
    >>> sorted(compile_all())
    ['float32', 'float64']
    """
    from ..adam import AdamConfig
    from ._common import coefficients

    out = {}
    for dtype in DTYPES:
        t0 = time.perf_counter()
        for shape in ((1,), (1, 1), (PARALLEL_MIN,), (PARALLEL_MIN, 1)):
            a = [np.zeros(shape, dtype) for _ in range(4)]
            step(*a, coefficients(AdamConfig(), 1e-3, 1))
            all_finite(a[1])
        out[dtype.name] = time.perf_counter() - t0
    return out
