r"""The numba kernel: one fused loop per step, parallel (``prange``) for large arrays.

Each element is read once and written once: the loop body is the scalar form of
:func:`adam_np.core.adam._adam_leaf`, with the coefficients (passed as float64) rounded to the
array dtype once per call, as NumPy rounds a Python float. No ``fastmath``: LLVM then
neither contracts ``a*b + c`` into an FMA nor reassociates; ``error_model="numpy"`` makes
``x/0`` give ±inf/NaN as NumPy does (not ZeroDivisionError); and ``sqrt``/``/`` are the
correctly rounded IEEE operations, so the result is bit-for-bit that of :func:`adam_np.update`
on float32 and float64 (the tests check it). Compiled with ``cache=True`` on first use.

Importing this module imports numba (an optional dependency, the ``numba`` extra);
:mod:`adam_np.kernels` imports it only when the numba backend is asked for.
"""

from __future__ import annotations

import numba
import numpy as np

from ._common import Coefficients, Constants

__all__ = [
    "DTYPES", "PARALLEL_MIN", "all_finite", "bind", "finite_step_many", "prepare", "select", "select_check",
    "set_num_threads", "set_step", "set_step_scalars", "step", "step_many", "warm_up",
]

DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
"""The dtypes this kernel updates."""

PARALLEL_MIN = 1 << 18
"""Arrays of at least this many elements run the ``prange`` loop, smaller ones the serial one."""


def _coefs(dtype_like, k):  # pragma: no cover - compiled by numba
    """The coefficients rounded to the array dtype (float64 -> float32 rounds to nearest, as NumPy)."""
    out = np.empty(10, dtype_like.dtype)
    for j in range(10):
        out[j] = k[3 + j]
    return out


def _body(i, p, g, v, s, po, vo, so, kk, mode, maximize, decay):  # pragma: no cover - compiled by numba
    # Reads p, g, v, s at i, writes po, vo, so at i: in place when they are p, v, s (every read comes first).
    vi, si, pi = _values_jit(i, p, g, v, s, kk, mode, maximize, decay)
    vo[i] = vi
    so[i] = si
    po[i] = pi


def _values(i, p, g, v, s, kk, mode, maximize, decay):  # pragma: no cover - compiled by numba
    # The new v, s, p of element i (what _body writes).
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
    if mode == 2:
        pi = x - alpha * vi / (np.sqrt(si) + eps)
    elif mode == 3:
        pi = x - alpha * vi / np.sqrt(si + eps)
    elif mode == 1:
        pi = x - lr * (vi / bc1) / np.sqrt(si / bc2 + eps)
    else:
        pi = x - lr * (vi / bc1) / (np.sqrt(si / bc2) + eps)
    return vi, si, pi


_coefs_jit = numba.njit(inline="always", error_model="numpy")(_coefs)
_values_jit = numba.njit(inline="always", error_model="numpy")(_values)
_body_jit = numba.njit(inline="always", error_model="numpy")(_body)


@numba.njit(cache=True, error_model="numpy")
def _serial(p, g, v, s, k):  # pragma: no cover - compiled by numba
    p, g, v, s = p.reshape(-1), g.reshape(-1), v.reshape(-1), s.reshape(-1)
    kk = _coefs_jit(p, k)
    mode, maximize, decay = int(k[0]), k[1] != 0.0, k[2] != 0.0
    for i in range(p.shape[0]):
        _body_jit(i, p, g, v, s, p, v, s, kk, mode, maximize, decay)


@numba.njit(cache=True, error_model="numpy")
def _serial_into(p, g, v, s, po, vo, so, k):  # pragma: no cover - compiled by numba
    p, g, v, s = p.reshape(-1), g.reshape(-1), v.reshape(-1), s.reshape(-1)
    po, vo, so = po.reshape(-1), vo.reshape(-1), so.reshape(-1)
    kk = _coefs_jit(p, k)
    mode, maximize, decay = int(k[0]), k[1] != 0.0, k[2] != 0.0
    for i in range(p.shape[0]):
        _body_jit(i, p, g, v, s, po, vo, so, kk, mode, maximize, decay)


@numba.njit(cache=True, error_model="numpy")
def _parallel(p, g, v, s, k):  # pragma: no cover - compiled by numba
    kk = _coefs_jit(p, k)
    _parallel_loop(p.reshape(-1), g.reshape(-1), v.reshape(-1), s.reshape(-1), kk,
                   int(k[0]), k[1] != 0.0, k[2] != 0.0)


# The prange loop sits in its own function on 1-D arrays: rebinding p, g, v, s to their 1-D
# views inside a parallel function produced wrong results with numba 0.68 (caught by the tests).
@numba.njit(cache=True, parallel=True, error_model="numpy")
def _parallel_loop(p, g, v, s, kk, mode, maximize, decay):  # pragma: no cover - compiled by numba
    for i in numba.prange(p.shape[0]):
        _body_jit(i, p, g, v, s, p, v, s, kk, mode, maximize, decay)


def _bad(vi, si, pi):  # pragma: no cover - compiled by numba
    # 1 if any of the three is NaN or ±inf (x - x is NaN exactly then), else 0; no branch, so it vectorizes.
    return not ((vi - vi) + (si - si) + (pi - pi) == 0.0)


_bad_jit = numba.njit(inline="always", error_model="numpy")(_bad)


@numba.njit(cache=True, error_model="numpy")
def _check_serial(p, g, v, s, k):  # pragma: no cover - compiled by numba
    p, g, v, s = p.reshape(-1), g.reshape(-1), v.reshape(-1), s.reshape(-1)
    kk = _coefs_jit(p, k)
    mode, maximize, decay = int(k[0]), k[1] != 0.0, k[2] != 0.0
    bad = 0
    for i in range(p.shape[0]):
        vi, si, pi = _values_jit(i, p, g, v, s, kk, mode, maximize, decay)
        bad += _bad_jit(vi, si, pi)
    return bad == 0


@numba.njit(cache=True, error_model="numpy")
def _check_parallel(p, g, v, s, k):  # pragma: no cover - compiled by numba
    kk = _coefs_jit(p, k)
    return _check_parallel_loop(p.reshape(-1), g.reshape(-1), v.reshape(-1), s.reshape(-1), kk,
                                int(k[0]), k[1] != 0.0, k[2] != 0.0)


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _check_parallel_loop(p, g, v, s, kk, mode, maximize, decay):  # pragma: no cover - compiled by numba
    bad = 0
    for i in numba.prange(p.shape[0]):
        vi, si, pi = _values_jit(i, p, g, v, s, kk, mode, maximize, decay)
        bad += _bad_jit(vi, si, pi)
    return bad == 0


@numba.njit(cache=True, error_model="numpy")
def _finite_serial(g):  # pragma: no cover - compiled by numba
    # A count without early exit: LLVM vectorizes it (6x faster than an early-return loop here).
    g = g.reshape(-1)
    bad = 0
    for i in range(g.shape[0]):
        bad += not np.isfinite(g[i])
    return bad == 0


def prepare(k: Constants) -> np.ndarray:
    """A float64 work array for :func:`step_many`: the config's constants, room for a step's scalars.

    Layout: ``mode, maximize, decay, weight_decay, beta1, 1-beta1, beta2, 1-beta2, lr, bc1, bc2,
    alpha, eps`` (the step's ``lr, bc1, bc2, alpha, eps`` are written by each :func:`step_many`), so one
    kernel call takes five arrays and nothing else (numba dispatches arrays fastest).

    Parameters
    ----------
    k : Constants

    Returns
    -------
    numpy.ndarray

    Examples
    --------
    >>> from adam_np import AdamConfig
    >>> from adam_np.kernels import constants
    >>> prepare(constants(AdamConfig()))[:5]
    array([0. , 0. , 0. , 0. , 0.9])
    """
    return np.array([k.mode, k.maximize, k.weight_decay != 0.0, k.weight_decay, k.beta1, k.one_minus_beta1,
                     k.beta2, k.one_minus_beta2, 0.0, 0.0, 0.0, 0.0, k.eps], dtype=np.float64)


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


def step_into(p: np.ndarray, g: np.ndarray, v: np.ndarray, s: np.ndarray, out: np.ndarray, c: Coefficients) -> None:
    """:func:`step` out of place: the new ``p, v, s`` into ``out[0], out[1], out[2]``, the inputs unchanged.

    One serial pass (read p, g, v, s; write out): for callers that own one thread each, such as
    the tasks of a Dask worker (:mod:`adam_np.kernels.dask_chunks`). Bit for bit what :func:`step` writes.

    Parameters
    ----------
    p, g, v, s : numpy.ndarray
        C-contiguous, one shape and dtype (read-only arrays are fine).
    out : numpy.ndarray
        C-contiguous, shape ``(3, *p.shape)``, same dtype, overlapping none of the inputs.
    c : Coefficients

    Examples
    --------
    >>> from adam_np import AdamConfig
    >>> from adam_np.kernels import coefficients
    >>> out = np.empty((3, 2))
    >>> step_into(np.array([1.0, -2.0]), np.array([0.5, -4.0]), np.zeros(2), np.zeros(2), out,
    ...           coefficients(AdamConfig(), 0.1, 1))
    >>> out[0]
    array([ 0.9, -1.9])
    """
    k = prepare(c.constants)
    set_step(k, c)
    _serial_into(p, g, v, s, out[0], out[1], out[2], k)


def step_many(ps: list, gs: list, vs: list, ss: list, c: Coefficients, work: np.ndarray | None = None) -> None:
    """:func:`step` on each ``(ps[i], gs[i], vs[i], ss[i])``.

    Parameters
    ----------
    ps, gs, vs, ss : list of numpy.ndarray
        C-contiguous arrays, as for :func:`step`.
    c : Coefficients
    work : numpy.ndarray, optional
        ``prepare(c.constants)``, kept by the caller between steps (saves building it; not
        thread-safe: one work array per optimizer).

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
    k = prepare(c.constants) if work is None else work
    set_step(k, c)
    for p, g, v, s in zip(ps, gs, vs, ss):
        select(p)(p, g, v, s, k)


def finite_step_many(ps: list, gs: list, vs: list, ss: list, c: Coefficients, work: np.ndarray | None = None) -> bool:
    """Whether :func:`step_many` would leave every ``p``, ``v``, ``s`` finite; computes it, writes nothing.

    One read of p, g, v, s per array, the loop body the step's own (so what it computes is what the
    step would write); a non-finite gradient makes the new ``v`` non-finite, so it checks the gradients too.

    Parameters
    ----------
    ps, gs, vs, ss : list of numpy.ndarray
    c : Coefficients
    work : numpy.ndarray, optional
        As for :func:`step_many` (its step scalars are written).

    Returns
    -------
    bool

    Examples
    --------
    >>> from adam_np import AdamConfig
    >>> from adam_np.kernels import coefficients
    >>> z = np.zeros(1, np.float32)
    >>> finite_step_many([z], [np.array([3e19], np.float32)], [z], [z], coefficients(AdamConfig(), 0.1, 1))
    False
    """
    k = prepare(c.constants) if work is None else work
    set_step(k, c)
    return all(select_check(p)(p, g, v, s, k) for p, g, v, s in zip(ps, gs, vs, ss))


def select_check(p: np.ndarray):
    """:func:`select`'s counterpart for the check of :func:`finite_step_many`: ``f(p, g, v, s, work) -> bool``.

    Parameters
    ----------
    p : numpy.ndarray

    Returns
    -------
    numba dispatcher

    Examples
    --------
    >>> select_check(np.zeros(3)) is select_check(np.zeros((2, 2)))
    True
    """
    return _check_serial if p.size < PARALLEL_MIN else _check_parallel


def set_step(work: np.ndarray, c: Coefficients) -> None:
    """Write the step's ``lr, bc1, bc2, alpha, eps`` into a :func:`prepare` work array.

    Parameters
    ----------
    work : numpy.ndarray
    c : Coefficients

    Examples
    --------
    >>> from adam_np import AdamConfig
    >>> from adam_np.kernels import coefficients
    >>> c = coefficients(AdamConfig(), 0.5, 1)
    >>> work = prepare(c.constants); set_step(work, c); work[8]
    np.float64(0.5)
    """
    set_step_scalars(work, c[1:])


def set_step_scalars(work: memoryview | np.ndarray, scalars: tuple) -> None:
    """:func:`set_step` from :func:`adam_np.kernels.step_scalars`'s tuple (a memoryview of the work array is fastest).

    Parameters
    ----------
    work : memoryview or numpy.ndarray
        A :func:`prepare` work array or ``memoryview`` of it.
    scalars : tuple of float
        ``(lr, bc1, bc2, alpha, eps)``.

    Examples
    --------
    >>> from adam_np import AdamConfig
    >>> from adam_np.kernels import constants
    >>> work = prepare(constants(AdamConfig())); set_step_scalars(memoryview(work), (0.5, 0.1, 0.001, 0.0, 1e-8))
    >>> work[8]
    np.float64(0.5)
    """
    work[8], work[9], work[10], work[11], work[12] = scalars


def select(p: np.ndarray):
    """The compiled loop for ``p``: serial below :data:`PARALLEL_MIN` elements, ``prange`` from there.

    Called as ``select(p)(p, g, v, s, work)`` with ``work`` from :func:`prepare`, its step scalars
    written (what :func:`step_many` does); :class:`adam_np.kernels._inplace.InPlaceStep` binds it
    once per array to save the per-step dispatch.

    Parameters
    ----------
    p : numpy.ndarray

    Returns
    -------
    numba dispatcher

    Examples
    --------
    >>> import numpy as np
    >>> select(np.zeros(3)) is select(np.zeros((2, 2)))
    True
    """
    return _serial if p.size < PARALLEL_MIN else _parallel


def bind(p: np.ndarray, work: np.ndarray, choose=None):
    """:func:`select`'s loop for ``p`` compiled now, with numba's type dispatch resolved once.

    Returns the compiled entry point of the specialisation for four arrays of ``p``'s exact
    numba type (dtype, dimensions, C layout, writeable, aligned) and the work array: calling it
    skips the per-call ``typeof`` of every argument (about 0.13 µs of a 0.34 µs call). The
    caller must pass a gradient of exactly that type (checked by
    :class:`adam_np.kernels._inplace.InPlaceStep`); anything else goes through :func:`select`.

    Parameters
    ----------
    p : numpy.ndarray
        A writeable, aligned, C-contiguous float32/float64 array.
    work : numpy.ndarray
        From :func:`prepare`.
    choose : callable, optional
        :func:`select_check` binds the check instead (default: :func:`select`).

    Returns
    -------
    callable
        ``f(p, g, v, s, work)``.

    Examples
    --------
    >>> from adam_np import AdamConfig
    >>> from adam_np.kernels import coefficients
    >>> p, g, v, s = np.ones(2), np.ones(2), np.zeros(2), np.zeros(2)
    >>> c = coefficients(AdamConfig(), 0.5, 1); work = prepare(c.constants); set_step(work, c)
    >>> bind(p, work)(p, g, v, s, work); p
    array([0.5, 0.5])
    """
    loop = (select if choose is None else choose)(p)
    e = np.empty((0,) * p.ndim, p.dtype)
    loop(e, e, e, e, work)  # compile, or load from numba's cache
    arg = numba.typeof(p)
    compiled = loop.overloads.get((arg, arg, arg, arg, numba.typeof(work)))
    return loop if compiled is None else compiled.entry_point


def all_finite(g: np.ndarray) -> bool:
    """Whether a C-contiguous float32/float64 array holds no NaN and no ±inf (one read, no temporary).

    One vectorized serial loop: it reads g at close to one core's bandwidth, and a ``prange``
    version was slower on a loaded two-core machine (barrier costs), so none is used.

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
    return bool(_finite_serial(g))


def warm_up(arrays: list, work: np.ndarray) -> None:
    """Compile (or load from numba's cache) the loops ``arrays`` will use, on empty arrays.

    Called when an optimizer is built, so that the first step (inside a training loop's timer)
    does not pay numba's type specialisation; nothing is read or written.

    Parameters
    ----------
    arrays : list of numpy.ndarray
        The parameters (their dtype, number of dimensions and size pick the loops).
    work : numpy.ndarray
        From :func:`prepare`.

    Examples
    --------
    >>> from adam_np import AdamConfig
    >>> from adam_np.kernels import constants
    >>> warm_up([np.ones((5, 1)), np.ones(1)], prepare(constants(AdamConfig())))
    """
    for a in arrays:
        e = np.empty((0,) * a.ndim, a.dtype)
        select(a)(e, e, e, e, work)
        select_check(a)(e, e, e, e, work)
        all_finite(e)


def set_num_threads(n: int) -> int:
    """Run the ``prange`` loops on ``n`` threads (at most numba's ``NUMBA_NUM_THREADS``).

    Parameters
    ----------
    n : int

    Returns
    -------
    int
        The previous number.

    Examples
    --------
    >>> old = set_num_threads(1); set_num_threads(old)
    1
    """
    old = numba.get_num_threads()
    numba.set_num_threads(n)
    return old
