r"""The NumPy kernel: one Adam step in place, in cache-sized chunks spread over a few threads.

Per chunk of ``CHUNK`` elements the kernel applies, with ``out=`` into the arrays themselves
or into preallocated per-thread scratch, exactly the IEEE operations of
:func:`adam_np.core.adam.adam_step` in its order (coefficients rounded to the array dtype first,
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

import contextlib
import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..core.adam import ROOT, SCALED, SCALED_ROOT, Coefficients

__all__ = ["CHUNK", "DTYPES", "PARALLEL_MIN", "get_num_threads", "set_num_threads", "step"]

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


def _chunks(p, g, v, s, c: Coefficients, start: int, stop: int, check: bool) -> bool:
    """The step on elements [start, stop) of flat arrays, chunk by chunk on scratch of its own: written in place,
    or (``check``) computed into scratch, returning whether all new values are finite (nothing written)."""
    weight_decay, beta1, one_minus_beta1, beta2, one_minus_beta2, _, bc1, bc2, step_size, eps_t = (
        p.dtype.type(f) for f in c[2:12])  # rounded to the array dtype, as NumPy rounds a Python float
    form, l2 = c.form, c.weight_decay != 0.0
    mul, add, div, sqrt = np.multiply, np.add, np.divide, np.sqrt
    scratch = _take_buffers(p.dtype)
    out = _take_buffers(p.dtype) if check else None
    errors = np.errstate(all="ignore") if check else contextlib.nullcontext()  # per thread: overflow is the answer
    try:
        with errors:
            g_buf, t1_buf, t2_buf = scratch
            for lo in range(start, stop, CHUNK):
                hi = min(lo + CHUNK, stop)
                m = hi - lo
                x, gc, vc, sc = p[lo:hi], g[lo:hi], v[lo:hi], s[lo:hi]
                t1, t2 = t1_buf[:m], t2_buf[:m]
                vo, so, xo = (vc, sc, x) if out is None else (out[0][:m], out[1][:m], out[2][:m])
                if c.maximize or l2:
                    gm = g_buf[:m]
                    if c.maximize:
                        np.negative(gc, out=gm)
                        gc = gm
                    if l2:
                        mul(x, weight_decay, out=t1)
                        add(gc, t1, out=gm)  # g + weight_decay * x
                    gc = gm
                # g is read completely before v, s, x are written, so g may be its own x.
                mul(gc, one_minus_beta1, out=t1)
                mul(gc, gc, out=t2)
                mul(vc, beta1, out=vo)  # v = beta1 * v + (1 - beta1) * g
                add(vo, t1, out=vo)
                mul(t2, one_minus_beta2, out=t2)  # s = beta2 * s + (1 - beta2) * (g * g)
                mul(sc, beta2, out=so)
                add(so, t2, out=so)
                if form in (SCALED, SCALED_ROOT):  # x - step_size * v / (sqrt(s) + eps_t), or / sqrt(s + eps_t)
                    mul(vo, step_size, out=t1)
                    if form == SCALED_ROOT:
                        sqrt(add(so, eps_t, out=t2), out=t2)
                    else:
                        add(sqrt(so, out=t2), eps_t, out=t2)
                else:  # x - step_size * (v / bc1) / (sqrt(s / bc2) + eps_t), or / sqrt(s / bc2 + eps_t)
                    mul(div(vo, bc1, out=t1), step_size, out=t1)
                    div(so, bc2, out=t2)
                    if form == ROOT:
                        sqrt(add(t2, eps_t, out=t2), out=t2)
                    else:
                        add(sqrt(t2, out=t2), eps_t, out=t2)
                div(t1, t2, out=t1)
                np.subtract(x, t1, out=xo)
                if out is not None and not _chunk_finite(vo, so, xo):
                    return False
            return True
    finally:
        _give_buffers(p.dtype, scratch)
        if out is not None:
            _give_buffers(p.dtype, out)


def _chunk_finite(*arrays: np.ndarray) -> bool:
    """Whether chunk-sized arrays are all finite: their sums (a finite sum proves it), else exactly."""
    if all(np.isfinite(np.add.reduce(a)) for a in arrays):
        return True
    return all(bool(np.isfinite(a).all()) for a in arrays)


def _spans(n: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous spans covering [0, n), cut at multiples of CHUNK."""
    chunks = -(-n // CHUNK)
    bounds = [min(n, (chunks * i // parts) * CHUNK) for i in range(parts + 1)]
    return [(a, b) for a, b in itertools.pairwise(bounds) if b > a]


def step(ps: list, gs: list, vs: list, ss: list, c: Coefficients, *, check: bool = True) -> bool:
    """One Adam step in place on each ``(ps[i], gs[i], vs[i], ss[i])``; all or nothing.

    Tested bit for bit against :func:`adam_np.core.adam.adam_step` and :func:`adam_np.update`.

    Parameters
    ----------
    ps, gs, vs, ss : list of numpy.ndarray
        C-contiguous arrays of one shape and a dtype of :data:`DTYPES` per ``i``; ``p``, ``v``, ``s`` are
        overwritten. ``g`` may be its own ``p`` (the same elements), but must not overlap another array.
    c : Coefficients
        From :func:`adam_np.core.adam.coefficients`.
    check : bool, default True
        First compute the step into scratch: if any new ``p``, ``v`` or ``s`` would be NaN or ±inf,
        write nothing and return False.

    Returns
    -------
    bool
        Whether the step was written.

    Examples
    --------
    >>> from adam_np import AdamConfig
    >>> from adam_np.core.adam import coefficients
    >>> p, v, s = np.array([1.0, -2.0]), np.zeros(2), np.zeros(2)
    >>> step([p], [np.array([0.5, -4.0])], [v], [s], coefficients(AdamConfig(lr=0.1), 1)), p
    (True, array([ 0.9, -1.9]))
    >>> z = np.zeros(1, np.float16)                          # 300**2 overflows float16
    >>> step([z], [np.array([300.0], np.float16)], [z], [z.copy()], coefficients(AdamConfig(), 1))
    False
    """
    for checking in (True, False) if check else (False,):
        futures, ok = [], True
        for p, g, v, s in zip(ps, gs, vs, ss):
            p, g, v, s = p.reshape(-1), g.reshape(-1), v.reshape(-1), s.reshape(-1)
            first, *rest = _spans(p.shape[0], 1 if p.shape[0] < PARALLEL_MIN else _threads) or [(0, 0)]
            futures += [_get_pool().submit(_chunks, p, g, v, s, c, a, b, checking) for a, b in rest]
            ok = _chunks(p, g, v, s, c, *first, checking) and ok  # the calling thread takes the first span
        ok = all([f.result() for f in futures]) and ok
        if not ok:
            return False
    return True
