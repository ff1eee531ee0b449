r"""The NumPy kernel: one Adam step in place, in cache-sized chunks spread over a few threads.

Per chunk of ``CHUNK`` elements the kernel applies, with ``out=`` into the arrays themselves
or into preallocated per-thread scratch, exactly the IEEE operations of
:func:`adam_np.core.adam._adam_leaf` in its order (coefficients rounded to the array dtype first,
as NumPy does with a Python float), so the result is bit-for-bit the pure
:func:`adam_np.update`:

.. math::

    v \leftarrow \beta_1 v + (1-\beta_1) g, \quad
    s \leftarrow \beta_2 s + (1-\beta_2)(g\odot g), \quad
    x \leftarrow x - \eta\,(v/b_1) / (\sqrt{s/b_2} + \epsilon)

(:math:`b_i = 1-\beta_i^t`; ``eps_mode`` ``"root"`` and ``"hat"`` likewise). NumPy ufuncs
release the GIL, so the chunks of large arrays run on a small thread pool; no temporary
of the array's size is ever made (the scratch is three chunks per concurrently running span and
dtype, allocated on first use and reused: 768 KiB for float32, 1.5 MiB for float64). The calling
thread runs the first span itself.

Thread scaling is limited by the GIL: each ufunc releases it for its loop but takes it back
~14 times per chunk, and every hand-over between threads costs a wake-up (measured on a
2-vCPU VM: 1.3-1.5x from two threads at n = 1e7, none at 1e6).
"""

from __future__ import annotations

import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ._common import Coefficients

__all__ = [
    "CHUNK", "DTYPES", "PARALLEL_MIN", "all_finite", "finite_step", "finite_step_many", "get_num_threads", "prepare",
    "set_num_threads", "step", "step_many",
]

DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
"""The dtypes this kernel updates (NumPy's own float16 loops, so float16 is exact too)."""

CHUNK = 1 << 16
"""Elements per chunk: 65536 (256 KiB per float32 operand). Per chunk the kernel makes ~14 ufunc
calls on data that stays in L2/L3; smaller chunks pay more per-call overhead (measured at n = 1e7
float32, one thread: 16384 → 23 ms, 65536 → 20 ms, 262144 → 18 ms), larger ones more scratch."""

PARALLEL_MIN = 1 << 17
"""Arrays of at least this many elements are split over the thread pool."""

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_threads = max(1, min(int(os.environ.get("ADAM_NP_THREADS", "0")) or (os.cpu_count() or 1), 8))
_free_buffers: dict[np.dtype, list] = {}


def get_num_threads() -> int:
    """The number of threads large arrays are split over.

    Returns
    -------
    int

    Examples
    --------
    >>> get_num_threads() >= 1
    True
    """
    return _threads


def set_num_threads(n: int) -> int:
    """Split large arrays over ``n`` threads from now on (default: ``os.cpu_count()``, at most 8).

    Parameters
    ----------
    n : int
        Number of threads, ≥ 1 (1 runs every chunk in the calling thread).

    Returns
    -------
    int
        The previous number.

    Examples
    --------
    >>> old = set_num_threads(1); set_num_threads(old)
    1
    """
    global _threads, _pool
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    with _lock:
        old, _threads = _threads, n
        if _pool is not None and _pool_size < n:  # grow only: a running step never loses its pool
            _pool.shutdown(wait=True)
            _pool = None
    return old


def _get_pool() -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=_threads, thread_name_prefix="adam_np")
            _pool_size = _threads
        return _pool


def _take_buffers(dtype: np.dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three chunk-sized scratch arrays of ``dtype``: a free set if there is one, else a new one.

    Sets are handed back by :func:`_give_buffers` and reused, so once a step has run with a given
    number of threads no later step allocates, whichever pool thread runs which span (``list.pop``
    and ``list.append`` are atomic, so concurrent steps never share a set)."""
    try:
        return _free_buffers.setdefault(dtype, []).pop()
    except IndexError:
        return tuple(np.empty(CHUNK, dtype) for _ in range(3))


def _give_buffers(dtype: np.dtype, buffers: tuple) -> None:
    _free_buffers[dtype].append(buffers)


def _scalars(c: Coefficients, dtype: np.dtype) -> tuple:
    return tuple(dtype.type(f) for f in c.floats())


def _run(p, g, v, s, c: Coefficients, k: tuple, start: int, stop: int) -> None:
    """The step on elements [start, stop) of the flat arrays, chunk by chunk, on a scratch set of its own."""
    mode, maximize, decay = c.constants.mode, c.constants.maximize, c.constants.weight_decay != 0.0
    buffers = _take_buffers(p.dtype)
    try:
        _run_chunks(p, g, v, s, k, mode, maximize, decay, buffers, start, stop)
    finally:
        _give_buffers(p.dtype, buffers)


def _run_chunks(p, g, v, s, k: tuple, mode: int, maximize: bool, decay: bool, buffers: tuple, start: int,
                stop: int, out: tuple | None = None) -> bool:
    """The IEEE operations of :func:`adam_np.core.adam._adam_leaf`, in its order, chunk by chunk into ``buffers``.

    ``out`` None: the new p, v, s are written into ``p, v, s``. Else ``out`` holds three chunk-sized scratch
    arrays: each chunk's new v, s, p are computed there (``p, v, s`` unchanged) and checked; returns whether
    all were finite (stopping at the first chunk that is not)."""
    wd, b1, omb1, b2, omb2, lr, bc1, bc2, alpha, eps = k
    mul, add, div, sqrt = np.multiply, np.add, np.divide, np.sqrt
    ge_buf, t1_buf, t2_buf = buffers
    for lo in range(start, stop, CHUNK):
        hi = min(lo + CHUNK, stop)
        m = hi - lo
        x, gc, vc, sc = p[lo:hi], g[lo:hi], v[lo:hi], s[lo:hi]
        t1, t2 = t1_buf[:m], t2_buf[:m]
        vo, so, xo = (vc, sc, x) if out is None else (out[0][:m], out[1][:m], out[2][:m])
        if maximize or decay:
            ge = ge_buf[:m]
            if maximize:
                np.negative(gc, out=ge)
                gc = ge
            if decay:
                mul(x, wd, out=t1)  # wd * x
                add(gc, t1, out=ge)  # g + wd * x
            gc = ge
        # g is read completely before v, s, x are written, so g may be one of them (same elements).
        mul(gc, omb1, out=t1)  # (1 - beta1) * g
        mul(gc, gc, out=t2)  # g * g
        mul(vc, b1, out=vo)  # v = beta1 * v + (1 - beta1) * g
        add(vo, t1, out=vo)
        mul(t2, omb2, out=t2)  # s = beta2 * s + (1 - beta2) * (g * g)
        mul(sc, b2, out=so)
        add(so, t2, out=so)
        vc, sc = vo, so
        if mode >= 2:  # x - alpha * v / (sqrt(s) + eps), mode 3: x - alpha * v / sqrt(s + eps)
            mul(vc, alpha, out=t1)
            if mode == 3:
                add(sc, eps, out=t2)
                sqrt(t2, out=t2)
            else:
                sqrt(sc, out=t2)
                add(t2, eps, out=t2)
        else:
            div(vc, bc1, out=t1)  # v_hat = v / bc1
            mul(t1, lr, out=t1)  # lr * v_hat
            div(sc, bc2, out=t2)  # s_hat = s / bc2
            if mode == 1:  # x - lr * v_hat / sqrt(s_hat + eps)
                add(t2, eps, out=t2)
                sqrt(t2, out=t2)
            else:  # x - lr * v_hat / (sqrt(s_hat) + eps)
                sqrt(t2, out=t2)
                add(t2, eps, out=t2)
        div(t1, t2, out=t1)
        np.subtract(x, t1, out=xo)
        if out is not None and not _chunk_finite(vo, so, xo):
            return False
    return True


def _chunk_finite(*arrays: np.ndarray) -> bool:
    """Whether chunk-sized arrays are all finite: their sums (a finite sum proves it), else exactly."""
    with np.errstate(over="ignore", invalid="ignore"):
        if all(np.isfinite(np.add.reduce(a)) for a in arrays):
            return True
    return all(bool(np.isfinite(a).all()) for a in arrays)


def _check(p, g, v, s, c: Coefficients, k: tuple, start: int, stop: int) -> bool:
    """:func:`_run` computing elements [start, stop) into scratch: whether their new p, v, s are all finite."""
    mode, maximize, decay = c.constants.mode, c.constants.maximize, c.constants.weight_decay != 0.0
    buffers, out = _take_buffers(p.dtype), _take_buffers(p.dtype)
    try:
        with np.errstate(all="ignore"):  # what overflows is the answer, not a warning
            return _run_chunks(p, g, v, s, k, mode, maximize, decay, buffers, start, stop, out)
    finally:
        _give_buffers(p.dtype, out)
        _give_buffers(p.dtype, buffers)


def _spans(n: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous spans covering [0, n), cut at multiples of CHUNK."""
    chunks = -(-n // CHUNK)
    bounds = [min(n, (chunks * i // parts) * CHUNK) for i in range(parts + 1)]
    return [(a, b) for a, b in itertools.pairwise(bounds) if b > a]


def step(p: np.ndarray, g: np.ndarray, v: np.ndarray, s: np.ndarray, c: Coefficients) -> None:
    """One Adam step in place on flat (1-D, contiguous) arrays of one dtype in :data:`DTYPES`.

    Parameters
    ----------
    p, g, v, s : numpy.ndarray
        Parameters, gradient, first and second moment; ``p``, ``v``, ``s`` are overwritten.
        ``g`` may be one of them (the same elements), but must not partially overlap them.
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
    k = _scalars(c, p.dtype)
    n = p.shape[0]
    threads = _threads
    if n < PARALLEL_MIN or threads == 1:
        _run(p, g, v, s, c, k, 0, n)
        return
    spans = _spans(n, threads)
    futures = [_get_pool().submit(_run, p, g, v, s, c, k, a, b) for a, b in spans[1:]]
    try:
        _run(p, g, v, s, c, k, *spans[0])  # the calling thread takes the first span (one wake-up fewer)
    finally:
        for f in futures:
            f.result()


def prepare(k: Any) -> None:
    """No per-optimizer work array is needed here (see :func:`adam_np.kernels.numba_kernel.prepare`).

    Parameters
    ----------
    k : Constants

    Examples
    --------
    >>> prepare(None) is None
    True
    """
    return None


def step_many(ps: list, gs: list, vs: list, ss: list, c: Coefficients, work: Any = None) -> None:
    """:func:`step` on each ``(ps[i], gs[i], vs[i], ss[i])``, the coefficients converted once per dtype.

    Parameters
    ----------
    ps, gs, vs, ss : list of numpy.ndarray
        Flat arrays, as for :func:`step`.
    c : Coefficients
    work : None
        Unused (the numba kernel's per-optimizer work array; accepted for a uniform interface).

    Examples
    --------
    >>> import numpy as np
    >>> from adam_np import AdamConfig
    >>> from adam_np.kernels import coefficients
    >>> ps = [np.ones(2), np.ones(1, np.float32)]
    >>> step_many(ps, ps, [np.zeros(2), np.zeros(1, np.float32)], [np.zeros(2), np.zeros(1, np.float32)],
    ...           coefficients(AdamConfig(), 0.5, 1))
    >>> ps
    [array([0.5, 0.5]), array([0.5], dtype=float32)]
    """
    for p, g, v, s in zip(ps, gs, vs, ss):
        step(p, g, v, s, c)


def finite_step(p: np.ndarray, g: np.ndarray, v: np.ndarray, s: np.ndarray, c: Coefficients) -> bool:
    """Whether :func:`step` would leave ``p``, ``v``, ``s`` all finite; computes it in scratch, writes nothing.

    The same operations as :func:`step`, chunk by chunk into scratch (no O(n) temporary), the
    chunks of large arrays on the thread pool. A non-finite gradient makes the new ``v`` non-finite,
    so this is also the gradient's finiteness check.

    Parameters
    ----------
    p, g, v, s : numpy.ndarray
        As for :func:`step` (none is changed).
    c : Coefficients

    Returns
    -------
    bool

    Examples
    --------
    >>> import numpy as np
    >>> from adam_np import AdamConfig
    >>> from adam_np.kernels import coefficients
    >>> c = coefficients(AdamConfig(), 0.1, 1)
    >>> z = np.zeros(1, np.float16)
    >>> finite_step(z, np.array([200.0], np.float16), z, z, c), finite_step(z, np.array([300.0], np.float16), z, z, c)
    (True, False)
    """
    k = _scalars(c, p.dtype)
    n = p.shape[0]
    if n < PARALLEL_MIN or _threads == 1:
        return _check(p, g, v, s, c, k, 0, n)
    return all([f.result() for f in [_get_pool().submit(_check, p, g, v, s, c, k, a, b)
                                     for a, b in _spans(n, _threads)]])


def finite_step_many(ps: list, gs: list, vs: list, ss: list, c: Coefficients, work: Any = None) -> bool:
    """:func:`finite_step` for every ``(ps[i], gs[i], vs[i], ss[i])``: whether :func:`step_many` would stay finite.

    Parameters
    ----------
    ps, gs, vs, ss : list of numpy.ndarray
    c : Coefficients
    work : None
        Unused (as for :func:`step_many`).

    Returns
    -------
    bool

    Examples
    --------
    >>> from adam_np import AdamConfig
    >>> from adam_np.kernels import coefficients
    >>> finite_step_many([np.ones(2)], [np.array([1.0, np.nan])], [np.zeros(2)], [np.zeros(2)],
    ...                  coefficients(AdamConfig(), 0.1, 1))
    False
    """
    return all(finite_step(p, g, v, s, c) for p, g, v, s in zip(ps, gs, vs, ss))


def _sum(g: np.ndarray, start: int, stop: int) -> Any:
    with np.errstate(over="ignore", invalid="ignore"):
        return np.add.reduce(g[start:stop])


def _exact_all_finite(g: np.ndarray) -> bool:
    buffers = _take_buffers(g.dtype)
    buf = buffers[0]
    try:
        for lo in range(0, g.shape[0], CHUNK):
            hi = min(lo + CHUNK, g.shape[0])
            # g * 0 is 0 for finite g and NaN for NaN or ±inf; chunked into scratch, no O(n) temporary.
            np.multiply(g[lo:hi], 0, out=buf[: hi - lo])
            if not np.isfinite(np.add.reduce(buf[: hi - lo])):
                return False
        return True
    finally:
        _give_buffers(g.dtype, buffers)


def all_finite(g: np.ndarray) -> bool:
    """Whether a flat array holds no NaN and no ±inf, in one read and no O(n) temporary.

    A finite sum proves every element finite; only a non-finite sum (NaN/inf present, or an
    overflow of large finite values) triggers an exact, chunked check.

    Parameters
    ----------
    g : numpy.ndarray
        1-D contiguous floating array.

    Returns
    -------
    bool

    Examples
    --------
    >>> import numpy as np
    >>> all_finite(np.array([1.0, 2.0])), all_finite(np.array([1e308, 1e308])), all_finite(np.array([0, np.nan]))
    (True, True, False)
    """
    n = g.shape[0]
    with np.errstate(over="ignore", invalid="ignore"):
        if n < PARALLEL_MIN or _threads == 1:
            total = np.add.reduce(g)
        else:
            total = sum(f.result() for f in [_get_pool().submit(_sum, g, a, b) for a, b in _spans(n, _threads)])
        if np.isfinite(total):
            return True
        return _exact_all_finite(g)
